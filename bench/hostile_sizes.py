"""What hostile sizes cost (figures only, no pass/fail): the inputs of hostile round 3 that were memory or time
bombs, each run in a fresh process whose peak RSS (ru_maxrss) and wall time are printed.

    python bench/hostile_sizes.py [--model models/fusion]

- `predict` on a 400 KB WAV whose header says 1 Hz (before the header check: ~27 GB, killed);
- `predict-csv` on a folder holding one such file beside a normal recording (one run for the folder);
- `predict-csv` on 6 rows of 300,000 characters with `trim_overlap` (before: 61 s, 920 MB) — run with the model's
  own processor when it trims overlaps, else the rule alone (`text.words.trim_repeated`) is timed.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from child_process import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/fusion")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "turnfusion.serving.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio = tmp / "audio"
        audio.mkdir()
        sf.write(audio / "bomb.wav", np.zeros(200_000, np.int16), 1)  # 400 KB, "1 Hz"
        sf.write(audio / "ok.wav", (np.sin(np.arange(48_000) * 0.05) * 0.3).astype(np.float32), 16000)
        long_text = " ".join(["so i went to the market and then"] * 9_000)[:300_000]
        rows = [("ok", "ok_0", "so i went there", 0, 0.0, 1.0, 0), ("bomb", "bomb_0", "so loud", 0, 0.0, 1.0, 0)]
        rows += [("ok", f"long_{k}", long_text, 0, 1.0 + 0.3 * k, 1.2 + 0.3 * k, k % 2) for k in range(6)]
        columns = ["video_id", "sentence_id", "text", "label", "start", "end", "speaker"]
        pd.DataFrame(rows[:2], columns=columns).to_csv(tmp / "bomb.csv", index=False)
        pd.DataFrame([rows[0], *rows[2:]], columns=columns).to_csv(tmp / "long.csv", index=False)
        cases = [
            ("predict, 400 KB WAV saying 1 Hz", [*cli, "predict", "--model", args.model, "--text", "hi", "--audio",
                                                 str(audio / "bomb.wav")]),
            ("predict-csv, folder with that file", [*cli, "predict-csv", "--model", args.model, "--csv",
                                                    str(tmp / "bomb.csv"), "--audio-dir", str(audio), "--out",
                                                    str(tmp / "p1.csv")]),
            ("predict-csv, 6 rows of 300k characters", [*cli, "predict-csv", "--model", args.model, "--csv",
                                                        str(tmp / "long.csv"), "--audio-dir", str(audio), "--out",
                                                        str(tmp / "p2.csv")]),
        ]
        trims = json.loads((Path(args.model) / "preprocessor_config.json").read_text()).get("trim_overlap")
        print(f"model {args.model} (trim_overlap: {trims})")
        print("| case | seconds | peak RSS MB | last line |\n|---|---|---|---|")
        for name, command in cases:
            seconds, peak, last = run(command)
            print(f"| {name} | {seconds:.1f} | {peak:.0f} | {last[:110]} |")
    from turnfusion.text.words import trim_repeated

    for chars in (100_000, 300_000):
        text = " ".join(["so i went to the market and then"] * (chars // 32))
        started = time.perf_counter()
        trim_repeated(text, text[len(text) // 2:])
        print(f"trim_repeated on two texts of {chars:,} characters: {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
