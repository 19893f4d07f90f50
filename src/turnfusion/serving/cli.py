"""`turnfusion` command line: predictions from a trained model directory.

    turnfusion predict --model models/fusion --text "do you know the museum" --audio current.wav \
        --context "0:i went there last week:prev.wav" --speaker 1
    turnfusion predict --backend onnx --model models/fusion-onnx --text ... (int8 graphs on onnxruntime, no torch)
    turnfusion predict-csv --model models/fusion --csv utterances.csv --audio-dir data/raw --out predictions.csv
    turnfusion predict-csv --backend onnx --model models/fusion-onnx ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from turnfusion.audio import RECORDING_SUFFIXES
from turnfusion.errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")


def _context(spec: str) -> dict:
    """'SPEAKER:TEXT[:AUDIO]' -> a context utterance. The part after the last colon is the audio only when it
    names an audio file (by its suffix), so a text may hold colons ("0:it is 10:30")."""
    speaker, _, rest = spec.partition(":")
    if speaker not in ("0", "1") or not rest:
        raise DataError(f"--context {spec!r}: expected SPEAKER:TEXT[:AUDIO] with SPEAKER 0 or 1")
    text, _, audio = rest.rpartition(":")
    if not audio.lower().endswith(AUDIO_SUFFIXES):
        text, audio = rest, ""
    elif not text:
        raise DataError(f"--context {spec!r}: empty text before the audio file; every utterance needs its words")
    return {"speaker": int(speaker), "text": text, "audio": audio or None}


def check_csv_paths(csv: Path, out: Path, model: Path, audio_dir: Path) -> None:
    """`--csv` an existing file; `--out` a new file (or a plain one of its own) in an existing folder, checked before
    any work: never the input CSV, never inside the model folder, never a file of the audio folder or a recording's
    name there, never a link (writing through it would change the file it shares), and a name the file system
    takes."""
    if not csv.is_file():
        raise DataError(f"--csv {csv}: {'a folder, not a file' if csv.is_dir() else 'not found'}")
    folder = out.absolute().parent
    if not folder.is_dir():
        raise DataError(f"--out {out}: its folder does not exist")
    if len(os.fsencode(out.name)) > os.pathconf(folder, "PC_NAME_MAX"):
        raise DataError(f"--out {str(out)[:80]}...: a file name longer than this file system takes")
    if out.is_dir():
        raise DataError(f"--out {out}: a folder; give the path of the CSV to write")
    if out.exists() and out.samefile(csv):
        raise DataError(f"--out {out}: the input CSV itself; write the predictions elsewhere")
    place = folder.resolve() / out.name
    if model.is_dir() and place.is_relative_to(model.resolve()):
        raise DataError(f"--out {out}: inside --model {model}, which this run reads; write the predictions elsewhere")
    if audio_dir.is_dir() and place.is_relative_to(audio_dir.resolve()) and (
            out.exists() or out.suffix.lower() in RECORDING_SUFFIXES):
        raise DataError(f"--out {out}: a recording's place inside --audio-dir {audio_dir}, which this run reads; "
                        "write the predictions elsewhere")
    if out.is_symlink() or (out.exists() and out.stat().st_nlink > 1):
        raise DataError(f"--out {out}: a link to another file; writing would change that file")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turnfusion",
                                     description="Turn-taking prediction: keep / shift / backchannel")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("predict", help="one utterance with up to two previous utterances")
    one.add_argument("--model", required=True,
                     help="trained model directory (models/fusion), or an exported one with --backend onnx")

    one.add_argument("--text", required=True)
    one.add_argument("--audio", help="wav/flac file of the utterance (any sample rate, mono or stereo)")
    one.add_argument("--speaker", type=int, default=0, choices=[0, 1])
    one.add_argument("--context", action="append", default=[], help="SPEAKER:TEXT[:AUDIO], oldest first; repeatable")
    many = sub.add_parser("predict-csv", help="every row of an MM-F2F CSV")
    many.add_argument("--model", required=True)
    many.add_argument("--csv", required=True)
    many.add_argument("--audio-dir", required=True, help="folder with <video_id>.flac or .wav recordings")
    many.add_argument("--out", required=True, help="CSV of probabilities, prediction and skip reasons")
    for command in (one, many):
        command.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                             help="onnx: an exported directory (models/fusion-onnx) on onnxruntime, without torch")
        command.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="of the onnx backend")
        command.add_argument("--no-verify", action="store_true",
                             help="onnx backend: skip the sha256 check of the export's files (for edited exports)")
    args = parser.parse_args(argv)
    onnx = args.backend == "onnx"
    if not onnx:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    try:
        if args.no_verify and not onnx:
            raise DataError("--no-verify checks an ONNX export's files: it goes with --backend onnx")
        if args.command == "predict-csv":
            check_csv_paths(Path(args.csv), Path(args.out), Path(args.model), Path(args.audio_dir))
        if onnx:
            from turnfusion.serving.onnx_backend import OnnxTurnModel

            predictor = OnnxTurnModel(args.model, args.precision, verify=not args.no_verify)
        else:
            from turnfusion.serving.predict import TurnPredictor

            predictor = TurnPredictor(args.model)
        if args.command == "predict":
            context = [_context(c) for c in args.context]
            if len(context) > predictor.context_length:
                raise DataError(f"--context given {len(context)} times, but this model uses at most "
                                f"{predictor.context_length} previous utterance(s)")
            print(json.dumps(predictor.predict(args.text, args.audio, args.speaker, context), allow_nan=False))
        else:
            result = predictor.predict_csv(args.csv, args.audio_dir)
            try:
                result.to_csv(args.out, index=False)
            except OSError as exc:
                raise DataError(f"--out {args.out}: cannot be written ({exc.strerror or exc})") from None
            skipped = result.skipped[result.skipped != ""].str.split(":").str[0].value_counts()
            reasons = "".join(f"; {n} {reason}" for reason, n in skipped.items())
            print(f"{len(result) - skipped.sum()} of {len(result)} rows predicted{reasons}; written to {args.out}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
