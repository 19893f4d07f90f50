"""Training the barge-in onset gate (`live.onset_gate`): which speech onsets are a listener's backchannel and which
begin an utterance, from two-channel recordings, where each speaker's channel holds their own onsets.

Examples: every utterance's start on its speaker's channel is a turn onset (over an agent it would be a barge-in);
every listener response is a backchannel onset: the source's own (`listener_start`, the demo) or those the label
stage derived from voice activity (`overlaps.csv`, outcome backchannel: a user's own calls). Mono recordings mix
both speakers and give none (counted). The windows are cut by the live tracker (`first_window`); the splits are the
segment stage's, by conversation; the threshold is chosen on val, the test split only reports.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from turnfusion.audio import read_resampled, recording_path
from turnfusion.config import OnsetGateConfig
from turnfusion.errors import DataError
from turnfusion.live.onset_gate import OnsetGate, OnsetTracker, feature_count, first_window, logistic, onset_features
from turnfusion.live.streaming import VAD_RATE, is_number
from turnfusion.training.forked import run_forked

log = logging.getLogger(__name__)
BACKCHANNEL, TURN = 1, 0
SEARCH_BEFORE_S, SEARCH_AFTER_S = 0.1, 0.2  # the VAD's onset may come this much before / after the table's start
LEAD_S = 0.3  # audio the tracker hears before that: the VAD's state, and a non-speech frame before the onset
# each train window gets white noise at a random SNR before its features: a recording's noise floor, like its level,
# says nothing of what is said, yet the demo mixes its backchannels 4.4 dB quieter into one noise floor, and a gate
# trained without this read that
NOISE_SNR_DB = (0.0, 30.0)


@dataclass(frozen=True)
class OnsetExample:
    video_id: str
    channel: int
    start: float  # seconds, the table's onset
    kind: int  # BACKCHANNEL or TURN
    split: str


OVERLAP_COLUMNS_READ = ["video_id", "listener", "start", "outcome"]  # of data.label.OVERLAP_COLUMNS, what is read here


def onset_examples(segments: pd.DataFrame, overlaps: pd.DataFrame) -> tuple[list[OnsetExample], dict]:
    """The onsets of the stereo recordings (see the module's docstring) and how many were left out, by reason: rows
    of mono recordings, and onsets whose time is not a finite number or whose speaker is no channel (0 or 1)."""
    kept = segments[~segments.excluded]
    stereo = kept[kept.stereo.astype(bool)]
    split_of = kept.groupby("video_id").split.first().to_dict()
    candidates = [(r.video_id, r.speaker, r.start, TURN, r.split) for r in stereo.itertuples()]
    if "listener_start" in stereo.columns:
        given = stereo.dropna(subset=["listener_start"])
        candidates += [(r.video_id, 1 - r.speaker if _is_channel(r.speaker) else r.speaker, r.listener_start,
                        BACKCHANNEL, r.split) for r in given.itertuples()]
    derived = overlaps[(overlaps.outcome == "backchannel") & overlaps.video_id.isin(set(stereo.video_id))]
    candidates += [(r.video_id, r.listener, r.start, BACKCHANNEL, split_of[r.video_id]) for r in derived.itertuples()]
    examples, bad = [], 0
    for video_id, channel, start, kind, split in candidates:
        if _is_channel(channel) and _is_time(start):
            examples.append(OnsetExample(video_id, int(channel), float(start), kind, split))
        else:
            bad += 1
    mono = kept[~kept.stereo.astype(bool)]
    return examples, {"mono_recordings": int(mono.video_id.nunique()), "mono_utterances": len(mono),
                      "bad_time_or_speaker": bad}


def _is_channel(value) -> bool:
    return is_number(value) and value in (0, 1)


def _is_time(value) -> bool:
    return is_number(value) and value >= 0


def example_windows(examples: list[OnsetExample], audio_dir: Path, window_s: float, seed: int,
                    workers: int = 1) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Features of each example's window, a train example's with noise at a random SNR (rows, NOISE_SNR_DB; from
    `seed` and the example's index), its level (dB), and the indices of the examples that have one: the VAD found
    an onset within SEARCH_BEFORE_S / SEARCH_AFTER_S of the table's start, still speaking `window_s` later. The
    recordings are shared out over `workers` forked processes (the VAD is one thread a frame); the result is the
    same for any count."""
    by_video: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_video.setdefault(ex.video_id, []).append(i)
    videos = sorted(by_video)
    workers = max(1, min(workers, len(videos)))
    shares = [videos[len(videos) * k // workers: len(videos) * (k + 1) // workers] for k in range(workers)]
    tasks = [functools.partial(_windows_of, examples, by_video, share, Path(audio_dir), window_s, seed)
             for share in shares]
    parts = run_forked(tasks) if workers > 1 else [task() for task in tasks]
    rows = [row for part in parts for row in part[0]]
    return ((np.array(rows) if rows else np.zeros((0, feature_count()))),
            np.array([level for part in parts for level in part[1]]), [i for part in parts for i in part[2]])


def _windows_of(examples, by_video, videos, audio_dir: Path, window_s: float, seed: int) -> tuple[list, list, list]:
    rows, levels, found = [], [], []
    tracker = OnsetTracker(VAD_RATE, window_s)
    for video_id in videos:
        wave = read_resampled(recording_path(audio_dir, video_id), VAD_RATE)
        for i in by_video[video_id]:
            ex = examples[i]
            if not 0 <= ex.channel < wave.shape[1]:  # a speaker index past the recording's channels: no window
                continue
            lo = max(0.0, ex.start - SEARCH_BEFORE_S - LEAD_S)
            stretch = wave[int(lo * VAD_RATE):int((ex.start + SEARCH_AFTER_S + window_s + 0.1) * VAD_RATE),
                           ex.channel]
            window = first_window(tracker, stretch, ex.start - SEARCH_BEFORE_S - lo,
                                  ex.start + SEARCH_AFTER_S - lo)
            if window is not None:
                if ex.split == "train":  # val chooses the threshold, and test reports, on the audio as recorded
                    window = with_noise(window, np.random.default_rng([seed, i]))
                rows.append(onset_features(window))
                levels.append(10 * np.log10(np.mean(window.astype(np.float64) ** 2) + 1e-10))
                found.append(i)
    return rows, levels, found


def with_noise(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rms = np.sqrt(np.mean(window.astype(np.float64) ** 2))
    snr_db = rng.uniform(*NOISE_SNR_DB)
    return (window + rng.standard_normal(len(window)) * rms * 10 ** (-snr_db / 20)).astype(np.float32)


def fit_gate(features: np.ndarray, kinds: np.ndarray, splits: np.ndarray, cfg: OnsetGateConfig) -> OnsetGate:
    """A logistic regression on the train split's windows (classes weighted equally: backchannels are the fewer),
    its threshold chosen on val (`choose_threshold`); `trained_on` holds each split's figures."""
    scaler, model, threshold, trained_on = _fit(features, kinds, splits, cfg)
    return OnsetGate(
        window_s=cfg.window_s, mean=tuple(scaler.mean_.tolist()), scale=tuple(scaler.scale_.tolist()),
        coef=tuple(model.coef_[0].tolist()), intercept=float(model.intercept_[0]), threshold=threshold,
        max_false_stop=cfg.max_false_stop, trained_on=trained_on)


def level_floor(levels: np.ndarray, kinds: np.ndarray, splits: np.ndarray, cfg: OnsetGateConfig) -> dict:
    """The same gate on the window's level alone (dB; the feature the gate is denied, as a recording's gain says
    nothing of what is said): each split's figures."""
    return _fit(levels[:, None], kinds, splits, cfg)[3]


def _fit(features, kinds, splits, cfg) -> tuple[StandardScaler, LogisticRegression, float, dict]:
    for split in ("train", "val"):
        counts = [int(((splits == split) & (kinds == k)).sum()) for k in (TURN, BACKCHANNEL)]
        if min(counts) == 0:
            raise DataError(f"onset gate: the {split} split has {counts[0]} turn and {counts[1]} backchannel "
                            "onsets in stereo recordings; it needs both")
    train = splits == "train"
    scaler = StandardScaler().fit(features[train])
    model = LogisticRegression(C=cfg.c, max_iter=5000, class_weight="balanced")
    model.fit(scaler.transform(features[train]), kinds[train])
    p = model.predict_proba(scaler.transform(features))[:, list(model.classes_).index(BACKCHANNEL)]
    val = splits == "val"
    threshold = choose_threshold(p[val & (kinds == TURN)], p[val & (kinds == BACKCHANNEL)], cfg.max_false_stop)
    trained_on = {split: figures(p[splits == split], kinds[splits == split], threshold)
                  for split in ("train", "val", "test")}
    return scaler, model, threshold, trained_on


def choose_threshold(p_turns: np.ndarray, p_backchannels: np.ndarray, max_false_stop: float) -> float:
    """The val threshold: at most `max_false_stop` of the backchannels below it (the bound is the k-th lowest
    P(backchannel), k = floor(max_false_stop x n)), and as far from them as the turn onsets it catches allow: halfway
    (in log-odds) between the highest of those turns and the bound. No turn below the bound: 0 (never interrupt)."""
    ordered = np.sort(p_backchannels)
    bound = float(ordered[min(int(np.floor(max_false_stop * len(ordered))), len(ordered) - 1)])
    caught = p_turns[p_turns < bound]
    if len(caught) == 0:
        return 0.0
    return logistic((_logit(float(caught.max())) + _logit(bound)) / 2)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


def figures(p: np.ndarray, kinds: np.ndarray, threshold: float) -> dict:
    """What the gate does to a split's onsets: the share of turn onsets it interrupts on (the rest wait for words or
    the duration gate) and of backchannels it stops the agent on."""
    turns, backchannels = p[kinds == TURN], p[kinds == BACKCHANNEL]
    return {"turn_onsets": len(turns), "backchannel_onsets": len(backchannels),
            "turns_interrupted": round(float((turns < threshold).mean()), 4) if len(turns) else None,
            "backchannels_stopping": round(float((backchannels < threshold).mean()), 4) if len(backchannels) else None}
