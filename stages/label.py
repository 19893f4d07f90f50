"""Stage `label`: the utterance table the pipeline trains on, with turn labels derived from who speaks when in each
recording (or the source's own labels, passed on unchanged), the overlaps table, and the agreement report."""

import argparse
import logging
import shutil
from pathlib import Path

from stages.common import config, run, write_csv, write_json
from turnfusion.config import LabelConfig
from turnfusion.data.label import OVERLAP_COLUMNS, label_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="the source stage's folder")
    parser.add_argument("--audio", required=True, help="the downloaded recordings")
    parser.add_argument("--out", required=True, help="folder for utterances.csv and overlaps.csv")
    parser.add_argument("--report", required=True)
    parser.add_argument("--skipped", required=True, help="CSV of the utterances and recordings left unlabelled")
    args = parser.parse_args()
    source, out = Path(args.source), Path(args.out)
    table, overlaps, skipped, report = label_source(source, Path(args.audio), config(LabelConfig))
    out.mkdir(parents=True, exist_ok=True)
    if table is None:  # the source's own labels, byte for byte
        (out / "utterances.csv").unlink(missing_ok=True)
        shutil.copyfile(source / "utterances.csv", out / "utterances.csv")
    else:
        write_csv(out / "utterances.csv", table)
    write_csv(out / "overlaps.csv", overlaps[OVERLAP_COLUMNS])
    write_csv(args.skipped, skipped)
    write_json(args.report, report)
    logging.getLogger("label").info("labels: %s; %s", report["labels"],
                                    {k: report[k] for k in ("utterances", "per_label") if k in report})


if __name__ == "__main__":
    run(main)
