"""The code each stage runs, from the import graph, against the code `deps` of dvc.yaml.

    python -m tools.code_deps            # check: one line per stage whose code deps differ; exit 1 if any
    python -m tools.code_deps --write    # rewrite the code deps of dvc.yaml from the import graph

A stage's code is its entry module (`-m stages.X` in its `cmd`) and every project module it imports, at any
depth and wherever the import stands (a function's lazy import runs too), with the `__init__.py` of each package
on the way; imports under `if TYPE_CHECKING:` never run and are left out. Code deps are the dvc.yaml deps under
`src/` and `stages/`; the others (data, models) are kept as they are. tests/test_code_deps.py fails when dvc.yaml
is out of date, so a stage depends on the code that can change its outputs and on nothing else.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOTS = {"turnfusion": Path("src"), "stages": Path(".")}  # top-level package -> folder holding it
CODE_PREFIXES = ("src/", "stages/")


def module_file(name: str, root: Path) -> Path | None:
    """The file of a project module (`turnfusion.text.words` -> src/turnfusion/text/words.py), or None for other
    modules."""
    top = name.split(".")[0]
    if top not in ROOTS:
        return None
    base = root / ROOTS[top] / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
                or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def imported_modules(path: Path, module: str) -> set[str]:
    """Names of the modules `path` (module `module`) imports; for `from a import b`, both `a` and `a.b` (b may be
    a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def code_of(entry: str, root: Path) -> list[str]:
    """Every project file the module `entry` runs, as paths relative to `root`, sorted."""
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # a module's packages run their __init__ first
            prefix = ".".join(parts[:k])
            path = module_file(prefix, root)
            if path is not None and prefix not in seen:
                seen[prefix] = path
                todo += sorted(imported_modules(path, prefix))
    return sorted({p.relative_to(root).as_posix() for p in seen.values()})


def _stages(dvc: dict):
    """(name, the mapping that holds its cmd and deps) for every stage, foreach stages by their `do`."""
    for name, stage in dvc["stages"].items():
        yield name, stage["do"] if "do" in stage else stage


def entry_module(cmd: str) -> str:
    found = re.search(r"-m\s+(stages\.\w+)", cmd)
    if not found:
        raise ValueError(f"cmd does not run a stage module (-m stages.X): {cmd}")
    return found.group(1)


def differences(dvc: dict, root: Path) -> list[str]:
    problems = []
    for name, stage in _stages(dvc):
        want = code_of(entry_module(stage["cmd"]), root)
        have = [d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith(CODE_PREFIXES)]
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        if missing or extra:
            problems.append(f"{name}: code deps {'missing ' + str(missing) if missing else ''}"
                            f"{' ' if missing and extra else ''}{'not run ' + str(extra) if extra else ''}")
    return problems


def write(dvc, root: Path) -> None:
    """Code deps first, from the import graph; the other deps after them, as they were."""
    for _, stage in _stages(dvc):
        others = [d for d in stage.get("deps", []) if not (isinstance(d, str) and d.startswith(CODE_PREFIXES))]
        stage["deps"] = [*code_of(entry_module(stage["cmd"]), root), *others]


def main(argv: list[str] | None = None) -> int:
    from ruamel.yaml import YAML  # DVC's own YAML library: comments and layout survive --write

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    parser.add_argument("--root", default=".", help="the repository root")
    args = parser.parse_args(argv)
    root = Path(args.root)
    yaml = YAML()
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096
    dvc = yaml.load(root / "dvc.yaml")
    if args.write:
        write(dvc, root)
        yaml.dump(dvc, root / "dvc.yaml")
        return 0
    problems = differences(dvc, root)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
