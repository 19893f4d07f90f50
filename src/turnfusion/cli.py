"""`turnfusion` command line: predictions from a trained model directory.

    turnfusion predict --model models/fusion --text "do you know the museum" --audio current.wav \
        --context "0:i went there last week:prev.wav" --speaker 1
    turnfusion predict-csv --model models/fusion --csv utterances.csv --audio-dir data/raw --out predictions.csv
"""

from __future__ import annotations

import argparse
import json
import sys

from turnfusion.schema import DataError


def _context(spec: str) -> dict:
    """'SPEAKER:TEXT[:AUDIO]' -> a context utterance."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[0] not in ("0", "1"):
        raise DataError(f"--context {spec!r}: expected SPEAKER:TEXT[:AUDIO] with SPEAKER 0 or 1")
    return {"speaker": int(parts[0]), "text": parts[1], "audio": parts[2] if len(parts) == 3 and parts[2] else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turnfusion",
                                     description="Turn-taking prediction: keep / shift / backchannel")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("predict", help="one utterance with up to two previous utterances")
    one.add_argument("--model", required=True, help="trained model directory (e.g. models/fusion)")
    one.add_argument("--text", required=True)
    one.add_argument("--audio", help="wav/flac file of the utterance (any sample rate, mono or stereo)")
    one.add_argument("--speaker", type=int, default=0, choices=[0, 1])
    one.add_argument("--context", action="append", default=[], help="SPEAKER:TEXT[:AUDIO], oldest first; repeatable")
    many = sub.add_parser("predict-csv", help="every row of an MM-F2F CSV")
    many.add_argument("--model", required=True)
    many.add_argument("--csv", required=True)
    many.add_argument("--audio-dir", required=True, help="folder with <video_id>.wav recordings")
    many.add_argument("--out", required=True, help="CSV of probabilities, prediction and skip reasons")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        from turnfusion.predict import TurnPredictor

        predictor = TurnPredictor(args.model)
        if args.command == "predict":
            print(json.dumps(predictor.predict(args.text, args.audio, args.speaker,
                                               [_context(c) for c in args.context])))
        else:
            result = predictor.predict_csv(args.csv, args.audio_dir)
            result.to_csv(args.out, index=False)
            print(f"{(result.skipped == '').sum()} of {len(result)} rows predicted; written to {args.out}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
