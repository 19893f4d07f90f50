"""Stage `export`: the trained fusion model as ONNX graphs (text path, audio path per segment, head), fp32 and
int8, with its tokenizer and a manifest: one directory that `turnfusion.serving.onnx_backend` runs without torch."""

import argparse
import logging

from stages.common import config, run, write_json
from turnfusion.config import ExportConfig
from turnfusion.serving.export import calibration_waveforms, export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="trained model directory (models/fusion)")
    parser.add_argument("--out", required=True, help="export directory")
    parser.add_argument("--segments", required=True, help="segment store (calibration of the int8 audio path)")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    cfg = config(ExportConfig)
    manifest = export(args.model, args.out, calibration_waveforms(args.segments, cfg) or None)
    report = {f"size_mb_{precision}": size for precision, size in manifest["size_mb"].items()}
    write_json(args.report, report)
    logging.getLogger("export").info("%s: %s", args.out, report)


if __name__ == "__main__":
    run(main)
