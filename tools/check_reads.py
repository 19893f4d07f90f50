"""Check that every stage declares what it reads: `python -m tools.check_reads READS_DIR`.

Two checks, both against the stages as DVC resolves them from dvc.yaml:
- the command line: every path argument of `cmd` that exists is one of the stage's `deps` or `outs`;
- what the stage did (a run of `dvc repro` with TURNFUSION_READS_LOG=READS_DIR, see tools/reads_log.py):
  every project file it opened or imported lies under a `deps` or `outs` path, and every param it read
  is covered by its `params` (the key itself or its whole section).
Prints one line per undeclared read and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Stage:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    params: list[str]  # "section" or "section.key"


def _covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def undeclared(stage: Stage, reads: list[str], root: Path) -> list[str]:
    """Undeclared reads of `stage`: `reads` are lines `file PATH` / `param SECTION.KEY` from its reads log."""
    problems = []
    for token in shlex.split(stage.cmd):
        value = token.split("=", 1)[-1]  # mode=directory pairs
        if not value.startswith("-") and "/" in value and (root / value).exists():
            output_folder = any(o.startswith(value.rstrip("/") + "/") for o in stage.outs)
            if not _covered(value, stage.deps + stage.outs) and not output_folder:
                problems.append(f"{stage.name}: command argument {value} is not in deps")
    for line in reads:
        kind, _, what = line.partition(" ")
        if kind == "file" and what != "params.yaml" and not _covered(what, stage.deps + stage.outs):
            problems.append(f"{stage.name}: reads {what}, not in deps")
        if kind == "param" and not any(what == p or what.startswith(p + ".") for p in stage.params):
            problems.append(f"{stage.name}: reads param {what}, not in params")
    return problems


def dvc_stages(root: Path) -> list[Stage]:
    from dvc.repo import Repo

    stages = []
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            params = [key for dep in stage.deps if hasattr(dep, "params") for key in (dep.params or [])]
            deps = [Path(d.def_path).as_posix() for d in stage.deps if not hasattr(d, "params")]
            stages.append(Stage(stage.addressing, stage.cmd, deps, [Path(o.def_path).as_posix() for o in stage.outs],
                                params))
    return stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reads_dir", help="folder of <stage>.txt reads logs")
    parser.add_argument("--missing", action="store_true",
                        help="only print the stages with no reads log, one per line (to run them with `dvc repro -f`)")
    args = parser.parse_args()
    root = Path.cwd()
    if args.missing:
        print("\n".join(s.name for s in dvc_stages(root) if not (Path(args.reads_dir) / f"{s.name}.txt").exists()))
        return 0
    problems, missing = [], []
    for stage in dvc_stages(root):
        log = Path(args.reads_dir) / f"{stage.name}.txt"
        if not log.exists():
            missing.append(stage.name)
            continue
        problems += undeclared(stage, log.read_text().splitlines(), root)
    for line in problems:
        print(line)
    if missing:
        print(f"no reads log for {', '.join(missing)}: run `dvc repro -f` with TURNFUSION_READS_LOG set")
    print(f"check_reads: {len(problems)} undeclared read(s)")
    return 1 if problems or missing else 0


if __name__ == "__main__":
    sys.exit(main())
