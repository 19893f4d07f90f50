"""Pitch trackers compared on the demo corpus, where each utterance's final pitch move is known from the
generator (`final_pitch_pct`: the SSML pitch change of its last two words, -40 % fall ... +40 % rise).

    python bench/pitch_trackers.py [--segments data/segments] [--limit 600]

For each tracker: the final pitch (median of the last 0.35 s, in semitones re. the utterance's median) of
every segment, its Spearman correlation with `final_pitch_pct`, how often it tells a rise (> +20 %) from a
fall (< -20 %) by sign, the share of segments with no voiced final frame, and the time per utterance.
"""

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from turnfusion.data.stores import SegmentStore
from turnfusion.training.prosody import f0_track, final_semitones


def autocorrelation_f0_track(samples: np.ndarray, sample_rate: int, frame_s: float = 0.04, hop_s: float = 0.01,
                             fmin: float = 60.0, fmax: float = 400.0, voicing: float = 0.3) -> np.ndarray:
    """Frame-wise F0 in Hz by normalised autocorrelation (NaN where unvoiced): turnfusion's own tracker before
    Praat's, kept here as the comparison."""
    frame, hop = int(frame_s * sample_rate), int(hop_s * sample_rate)
    lag_min, lag_max = int(sample_rate / fmax), int(sample_rate / fmin)
    n = 1 + max(0, (len(samples) - frame) // hop)
    if len(samples) < frame:
        return np.full(0, np.nan)
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop][:n].astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, : lag_max + 1]
    energy = ac[:, :1] + 1e-12
    normalised = ac[:, lag_min:] / energy
    best = normalised.argmax(axis=1)
    f0 = sample_rate / (best + lag_min)
    f0[normalised[np.arange(n), best] < voicing] = np.nan
    return f0


TRACKERS = {"hand-written autocorrelation": autocorrelation_f0_track, "Praat (parselmouth)": f0_track}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", default="data/segments")
    parser.add_argument("--limit", type=int, default=600, help="segments (spread over the corpus)")
    args = parser.parse_args()
    store = SegmentStore.open(args.segments)
    rows = np.linspace(0, len(store.index) - 1, min(args.limit, len(store.index))).astype(int)
    target = store.index.final_pitch_pct.to_numpy()[rows]
    waves = [store.waveform(i) for i in rows]
    print(f"{len(rows)} segments; final_pitch_pct from the generator")
    for name, track in TRACKERS.items():
        started = time.perf_counter()
        finals = np.array([final_semitones(track(w, store.sample_rate)) for w in waves])
        per_utterance_ms = 1000 * (time.perf_counter() - started) / len(rows)
        ok = np.isfinite(finals)
        rho = spearmanr(finals[ok], target[ok]).statistic
        clear = ok & (np.abs(target) > 20)
        sign = np.mean(np.sign(finals[clear]) == np.sign(target[clear]))
        print(f"{name}: Spearman {rho:.3f}, rise/fall sign right {sign:.1%} ({clear.sum()} clear cases), "
              f"no voiced final frame {1 - ok.mean():.1%}, {per_utterance_ms:.1f} ms per utterance")


if __name__ == "__main__":
    main()
