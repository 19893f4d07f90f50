"""The experiment table of docs/experiments.md: every DVC experiment on the current commit, what it changed and its
macro F1 on val (the best epoch, what selection uses) and on test (what is reported).

    dvc exp run --queue -n audio-last25 -S model.last_k=25     # queue variants ...
    dvc queue start -j 1                                        # ... run them one after another
    python bench/exp_table.py [--rev COMMIT]                    # then print the table (markdown)

`--rev` names the commit the experiments were queued on, when it is no longer HEAD. Experiments that differ
only in their seeds (`train.seed`, `model.seed`; the baseline is seed 0) are also summarised as mean ± standard
deviation over their seeds, the way to compare variants whose difference is within one seed's noise:

    dvc exp run --queue -n ema-s1 -S train.ema_decay=0.99 -S train.seed=1 -S model.seed=1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

MODES = ("text", "audio", "fusion")
SEED_PARAMS = ("train.seed", "model.seed")


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def scores(data: dict) -> dict:
    metrics = data.get("metrics", {})
    test = metrics.get("reports/evaluate/metrics.json", {}).get("data", {})
    row = {}
    for mode in MODES:
        val = metrics.get(f"dvclive/{mode}/metrics.json", {}).get("data", {}).get("best_val_macro_f1")
        row[mode] = (val, test.get(mode, {}).get("macro_f1"))
    row["floor"] = test.get("skeleton_only", {}).get("macro_f1")  # the no-cue floor of the same run
    return row


def cell(pair: tuple) -> str:
    return " / ".join("-" if v is None else f"{v:.3f}" for v in pair)


def spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def seed_table(rows: list[tuple[str, dict]]) -> None:
    """Mean ± standard deviation over the rows that differ only in their seeds (groups of two or more)."""
    groups: dict[str, list[dict]] = {}
    for changes, row in rows:
        kept = [c for c in changes.split(", ") if c != "-" and c.split("=")[0] not in SEED_PARAMS]
        key = ", ".join(kept) or "baseline"
        groups.setdefault(key, []).append(row)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    if not groups:
        return
    print("\n| variant (over seeds) | seeds | text val / test | audio val / test | fusion val / test |")
    print("|---|---|---|---|---|")
    for key, members in groups.items():
        cells = [" / ".join(spread([m[mode][k] for m in members]) for k in (0, 1)) for mode in MODES]
        print(f"| {key} | {len(members)} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="the experiments' base commit (default: HEAD)")
    args = parser.parse_args()
    command = ["dvc", "exp", "show", "--json", "--no-fetch", *(["--rev", args.rev] if args.rev else [])]
    shown = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    print("| experiment | changes | text val / test | audio val / test | fusion val / test | skeleton floor (test) |")
    print("|---|---|---|---|---|---|")
    for commit in shown:
        if commit["rev"] == "workspace" or not commit.get("data"):
            continue
        base = flatten(commit["data"]["params"]["params.yaml"]["data"])
        rows = [(f"baseline {commit['rev'][:7]}", commit["data"])]
        for experiment in commit.get("experiments") or []:
            rev = experiment["revs"][0]
            if rev.get("data") and rev["data"].get("metrics"):
                rows.append((rev.get("name") or rev["rev"][:7], rev["data"]))
        scored = []
        for name, data in rows:
            params = flatten(data["params"]["params.yaml"]["data"])
            changes = ", ".join(f"{k}={v}" for k, v in params.items() if base.get(k) != v) or "-"
            row = scores(data)
            scored.append((changes, row))
            floor = "-" if row["floor"] is None else f"{row['floor']:.3f}"
            print(f"| {name} | {changes} | {cell(row['text'])} | {cell(row['audio'])} | {cell(row['fusion'])} "
                  f"| {floor} |")
        seed_table(scored)


if __name__ == "__main__":
    main()
