"""Stage `download`: fetch every recording of the manifest with yt-dlp, as wav; failures are recorded."""

import argparse
import logging
from pathlib import Path

import pandas as pd
from common import params, run, write_csv, write_json

from turnfusion.download import download_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True, help="metrics JSON with counts")
    parser.add_argument("--failures", required=True, help="CSV with one row per failed download")
    args = parser.parse_args()
    p = params("download")
    results = download_all(pd.read_csv(args.manifest, dtype=str), Path(args.out), p["retries"], p["timeout_s"])
    failed = results[results.status == "failed"]
    write_csv(args.failures, failed)
    counts = results.status.value_counts()
    write_json(args.report, {"recordings": len(results), "downloaded": int(counts.get("downloaded", 0)),
                             "already_present": int(counts.get("present", 0)), "failed": len(failed)})
    message = f"{len(results) - len(failed)} of {len(results)} recordings available, {len(failed)} failed"
    if len(failed):
        # group by the error itself, without yt-dlp's "[extractor] <id>: " prefix
        reasons = failed.error.str.replace(r"^\[\w+\] [^:]+: ", "", regex=True).str.slice(0, 120).value_counts()
        message += "; most common errors: " + "; ".join(f"{n}x {r}" for r, n in reasons.head(3).items())
    logging.getLogger("download").info(message)


if __name__ == "__main__":
    run(main)
