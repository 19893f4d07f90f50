"""Peak memory of `turnfusion predict-csv` against the number of rows (figures only, no pass/fail): predictions are
made in bounded batches as the rows are read, so the peak should not grow with the CSV.

    python bench/predict_csv_memory.py [--model models/fusion] [--backend torch|onnx] [--rows 1000 10000]

Each size runs in a fresh process on a generated corpus (100 rows per conversation, 1.5 s per row, noise-like
audio at 16 kHz in a temp folder); the figure is that process's peak RSS (ru_maxrss).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

ROWS_PER_VIDEO, ROW_S, RATE = 100, 1.5, 16000
WORDS = ["so i went to the market", "yeah", "and then we saw the museum", "did you like it", "it was nice you know"]


def corpus(folder: Path, rows: int) -> Path:
    """`rows` utterances in conversations of ROWS_PER_VIDEO, with one recording each in `folder/audio`."""
    rng = np.random.default_rng(0)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    table = []
    for v in range(int(np.ceil(rows / ROWS_PER_VIDEO))):
        n = min(ROWS_PER_VIDEO, rows - v * ROWS_PER_VIDEO)
        video = f"video{v:05d}"
        if not (folder / "audio" / f"{video}.wav").exists():
            audio = (0.1 * rng.standard_normal(int(ROWS_PER_VIDEO * ROW_S * RATE))).astype(np.float32)
            sf.write(folder / "audio" / f"{video}.wav", audio, RATE, subtype="PCM_16")
        table += [{"video_id": video, "sentence_id": f"{video}_{k}", "text": WORDS[k % len(WORDS)], "label": k % 3,
                   "start": k * ROW_S, "end": (k + 1) * ROW_S - 0.1, "speaker": k % 2} for k in range(n)]
    csv = folder / f"rows{rows}.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    return csv


def measure(model: str, backend: str, csv: Path, audio: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one `turnfusion predict-csv` run in a fresh process."""
    code = ("import resource, sys; from turnfusion.serving.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(rc)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "predict-csv", "--model", model, "--backend", backend,
                           "--csv", str(csv), "--audio-dir", str(audio), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fusion")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    print(f"predict-csv peak RSS, {args.backend} backend, {args.model} "
          f"({ROWS_PER_VIDEO} rows per conversation, {ROW_S} s each)")
    print("| rows | peak RSS MB | seconds |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            csv = corpus(Path(tmp), rows)
            rss, seconds = measure(args.model, args.backend, csv, Path(tmp) / "audio", Path(tmp) / "out.csv")
            print(f"| {rows} | {rss:.0f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
