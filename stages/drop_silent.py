"""Stage `drop_silent`: drop recordings that are missing, empty, unreadable, too short or silent, and their rows."""

import argparse
import logging
from pathlib import Path

from common import params, run, write_csv, write_json

from turnfusion.quality import check_recordings
from turnfusion.schema import DataError, read_utterances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--download-failures", required=True)
    parser.add_argument("--out", required=True, help="utterance table of the kept recordings")
    parser.add_argument("--report", required=True, help="metrics JSON with counts per reason")
    parser.add_argument("--details", required=True, help="CSV with one row per recording and its verdict")
    args = parser.parse_args()
    p = params("drop_silent")
    table = read_utterances(args.utterances)
    checks = check_recordings(sorted(table.video_id.unique()), Path(args.audio), p["min_seconds"],
                              p["vad_threshold_db"], p["min_active_fraction"])
    write_csv(args.details, checks)
    kept_ids = set(checks.video_id[checks.keep])
    kept = table[table.video_id.isin(kept_ids)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    reasons = {r: int(n) for r, n in checks.reason.value_counts().items()}
    write_json(args.report, {"recordings": len(checks), "kept": len(kept_ids),
                             **{f"dropped_{r}": n for r, n in reasons.items() if r != "ok"},
                             "utterances_in": len(table), "utterances_kept": len(kept),
                             "seconds_kept": round(float(checks.seconds[checks.keep].sum()), 1)})
    if not kept_ids:
        n_failed = sum(1 for _ in open(args.download_failures)) - 1
        raise DataError(f"no usable recording: all {len(checks)} dropped ({reasons}); "
                        f"{n_failed} download(s) failed, see {args.download_failures}")
    write_csv(args.out, kept)
    logging.getLogger("drop_silent").info("kept %d of %d recordings (%s)", len(kept_ids), len(checks), reasons)


if __name__ == "__main__":
    run(main)
