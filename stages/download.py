"""Stage `download`: fetch every recording of the manifest with yt-dlp, as FLAC; failures are recorded."""

import argparse
import logging

import pandas as pd

from stages.common import config, run, write_csv, write_json
from turnfusion.config import DownloadConfig
from turnfusion.data.download import download_all, failure_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True, help="metrics JSON with counts")
    parser.add_argument("--failures", required=True, help="CSV with one row per failed download")
    args = parser.parse_args()
    cfg = config(DownloadConfig)
    manifest = pd.read_csv(args.manifest, dtype=str, keep_default_na=False)
    results = download_all(manifest, args.out, cfg)
    failed = results[results.status == "failed"]
    write_csv(args.failures, failed)
    counts = results.status.value_counts()
    write_json(args.report, {"recordings": len(results), "downloaded": int(counts.get("downloaded", 0)),
                             "already_present": int(counts.get("present", 0)), "failed": len(failed)})
    logging.getLogger("download").info(failure_summary(results))


if __name__ == "__main__":
    run(main)
