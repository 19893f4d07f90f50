"""Peak memory, time and disk of every stage at 1x, 2x and 4x the demo corpus: does memory stay flat (streaming)
while disk grows linearly?

    python bench/scaling.py --factors 1 2 4 --work /tmp/scaling

Each factor is a fresh clone of this repository (the committed code) in `--work`, with `demo.n_conversations`
scaled and short training (the epochs change time, not memory or disk), run with `dvc repro` under
`TURNFUSION_RESOURCES_LOG` (each stage's wall time and peak RSS, logged by `stages/common.py`). Disk is what each
stage's outputs take. Prints a markdown table and writes `scaling.json` in `--work`.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHORT = {"teacher": {"epochs": 1, "crossfit_folds": 2}, "pretrain_audio": {"epochs": 1}, "train": {"epochs": 2}}


def outputs_of(stage: dict) -> list[str]:
    stage = stage.get("do", stage)  # a foreach stage's outputs are under `do`
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]
    return [o for o in outs if not o.startswith("reports/") and not o.startswith("dvclive/")]


def disk_mb(paths: list[Path]) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
        total += sum(p.stat().st_size for p in files)
    return total / 2**20


def run_factor(factor: int, work: Path) -> dict:
    clone = work / f"x{factor}"
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["demo"]["n_conversations"] *= factor
    for section, values in SHORT.items():
        params[section].update(values)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = clone / "resources.jsonl"
    log.unlink(missing_ok=True)
    env = {**os.environ, "TURNFUSION_RESOURCES_LOG": str(log),
           "PYTHONPATH": f"{clone / 'src'}:{clone}", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["dvc", "repro", "-q"], cwd=clone, env=env, check=True)
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    rows = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        name = entry["stage"]
        base = name.split("@")[0]
        outs = [o.replace("${item}", name.split("@")[1]) for o in outputs_of(stages[base])] if "@" in name else \
            outputs_of(stages[base])
        rows[name] = {**entry, "disk_mb": round(disk_mb([clone / o for o in outs]), 1)}
    segments = json.loads((clone / "reports/segment.json").read_text())
    return {"factor": factor, "utterances": segments["utterances"], "audio_hours": round(segments["seconds"] / 3600, 2),
            "stages": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--work", default="/tmp/scaling")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = [run_factor(f, work) for f in args.factors]
    (work / "scaling.json").write_text(json.dumps(results, indent=2))
    names = list(results[0]["stages"])
    head = " | ".join(f"{r['factor']}x ({r['utterances']} utt.)" for r in results)
    print(f"| stage | peak RSS MB: {head} | disk MB: {head} | wall s: {head} |")
    print("|---|" + "---|" * 3 * len(results))
    for name in names:
        cells = [[r["stages"].get(name, {}).get(k, "") for r in results] for k in ("peak_rss_mb", "disk_mb", "seconds")]
        print(f"| {name} | " + " | ".join(" / ".join(str(v) for v in c) for c in cells) + " |")


if __name__ == "__main__":
    main()
