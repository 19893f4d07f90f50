"""Stage `drop_silent`: drop recordings that are missing, empty, unreadable, too short or silent, and their rows."""

import argparse
import logging

from stages.common import config, run, write_csv, write_json
from turnfusion.config import DropSilentConfig
from turnfusion.data.drop_silent import drop_silent
from turnfusion.errors import DataError
from turnfusion.schema import read_utterances
from turnfusion.threads import usable_cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--download-failures", required=True)
    parser.add_argument("--out", required=True, help="utterance table of the kept recordings")
    parser.add_argument("--report", required=True, help="metrics JSON with counts per reason")
    parser.add_argument("--details", required=True, help="CSV with one row per recording and its verdict")
    args = parser.parse_args()
    kept, checks, report = drop_silent(read_utterances(args.utterances), args.audio, config(DropSilentConfig),
                                       workers=usable_cores())
    write_csv(args.details, checks)
    write_json(args.report, report)
    reasons = checks.reason.value_counts().to_dict()
    if not report["kept"]:
        n_failed = sum(1 for _ in open(args.download_failures)) - 1
        raise DataError(f"no usable recording: all {len(checks)} dropped ({reasons}); "
                        f"{n_failed} download(s) failed, see {args.download_failures}")
    write_csv(args.out, kept)
    logging.getLogger("drop_silent").info("kept %d of %d recordings (%s)", report["kept"], len(checks), reasons)


if __name__ == "__main__":
    run(main)
