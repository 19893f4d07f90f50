"""Stage `segment`: cut utterances out of recordings into one packed store, `audio.npy` (int16 PCM) +
`segments.parquet`, with train/val/test splits by conversation.

The index keeps conversation order (`position` within each video), so every utterance can find its
predecessors, and `offset`/`n_samples` into the one array file; `stereo` (the recording has several channels)
and `overlap` (`listener_overlap`) say which slices of the evaluation the row belongs to.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from turnfusion.audio import read_resampled, recording_path
from turnfusion.data.splits import SPLITS, add_split_column
from turnfusion.data.stores import SEGMENT_AUDIO as AUDIO_FILE
from turnfusion.data.stores import SEGMENT_INDEX as INDEX_FILE
from turnfusion.errors import DataError
from turnfusion.schema import (
    CONFLICT_KEY,
    LABEL_NAMES,
    conflicting_labels,
    conversation_order,
    corpus_has_words,
    has_video_id,
)
from turnfusion.serving.processing import AUDIO_POLICY_FILE, ProcessorConfig, cut_row, segment_policy

if TYPE_CHECKING:
    from turnfusion.config import SegmentConfig, SplitConfig

log = logging.getLogger(__name__)
LISTENER_WINDOW_S = 0.15  # the end of an utterance where a listener heard in the input would leak the answer


def listener_overlap(conv: pd.DataFrame, window_s: float = LISTENER_WINDOW_S) -> np.ndarray:
    """For each row of one conversation, whether someone other than its speaker is heard in its last `window_s`
    seconds: a row of the other speaker, or the row's own listener event (the optional `listener_start` /
    `listener_end` columns, as the demo corpus writes its backchannels), overlaps [end - window_s, end]."""
    start, end = conv.start.to_numpy(float), conv.end.to_numpy(float)
    speaker = conv.speaker.to_numpy()
    other = speaker[:, None] != speaker[None, :]
    heard = other & (start[None, :] < end[:, None]) & (end[None, :] > end[:, None] - window_s)
    overlap = heard.any(axis=1)
    if {"listener_start", "listener_end"} <= set(conv.columns):
        l_start, l_end = conv.listener_start.to_numpy(float), conv.listener_end.to_numpy(float)
        overlap |= (l_start < end) & (l_end > end - window_s)  # NaN (no listener event) compares False
    return overlap


def trim_report(trimmed: np.ndarray) -> dict:
    moved = trimmed[trimmed > 0]
    return {"trimmed_ends": len(moved), "trimmed_mean_s": round(float(moved.mean()), 3) if len(moved) else 0.0,
            "trimmed_max_s": round(float(moved.max()), 3) if len(moved) else 0.0}


def build_store(table: pd.DataFrame, audio_dir: Path, out_dir: Path, cfg: SegmentConfig,
                progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut every row of `table` from its recording in `audio_dir` (`audio.recording_path`) into a packed store, with
    the audio policy it was cut with (`processing.AUDIO_POLICY_FILE`: the processor's audio fields, which the tokenize
    stage completes). Rows without words are skipped (`empty_text`) unless no row has any (`schema.corpus_has_words`).

    Returns (index, skipped) where `skipped` has one row per dropped utterance with its reason.
    """
    from npy_append_array import NpyAppendArray
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = conversation_order(table)
    rows, skipped = [], []
    no_video = ~has_video_id(table)
    skipped += [{"sentence_id": s, "video_id": "", "reason": "empty_video_id", "detail": ""}
                for s in table.sentence_id[no_video]]
    table = table[~no_video]
    # `drop`: such rows stay in the store, so other rows' history (the inputs) never depends on labels, but are
    # `excluded` from training and scoring (`datasets.utterance_table`)
    table = table.assign(excluded=conflicting_labels(table) & (cfg.conflicting_labels == "drop"))
    offset, trim, words = 0, cfg.trim_vad_threshold if cfg.trim_to_speech else None, corpus_has_words(table)
    # one recording in memory at a time; the cut audio goes straight to disk, so memory stays flat with corpus size.
    # Each file is written under a temporary name, then renamed: an interrupted run never leaves a torn store.
    partial_audio = out_dir / f".{AUDIO_FILE}.partial"
    pcm_store = NpyAppendArray(str(partial_audio), delete_if_exists=True)
    for video_id, conv in tqdm(table.groupby("video_id", sort=True), desc="segment", disable=not progress):
        try:
            recording = read_resampled(recording_path(audio_dir, video_id), cfg.sample_rate)
        except DataError as exc:
            skipped += [{"sentence_id": s, "video_id": video_id, "reason": "unreadable_recording", "detail": str(exc)}
                        for s in conv["sentence_id"]]
            continue
        position, stereo = 0, recording.shape[1] > 1
        overlap = listener_overlap(conv)
        for row, overlapped in zip(conv.itertuples(index=False), overlap, strict=True):
            wave, problem = cut_row(recording, cfg.sample_rate, row, cfg.channels, needs_words=words)
            if problem:
                skipped.append({"sentence_id": row.sentence_id, "video_id": video_id, "reason": problem,
                                "detail": f"start={row.start} end={row.end} "
                                          f"recording={len(recording) / cfg.sample_rate:.2f}s"})
                continue
            wave, trimmed = segment_policy(wave, cfg.sample_rate, cfg.max_seconds, trim, cfg.window_hop)
            pcm = np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)
            pcm_store.append(pcm)
            rows.append({**row._asdict(), "position": position, "offset": offset, "n_samples": len(pcm),
                         "sample_rate": cfg.sample_rate, "stereo": stereo, "overlap": bool(overlapped),
                         **({"trimmed_s": trimmed} if cfg.trim_to_speech else {})})
            offset += len(pcm)
            position += 1
    pcm_store.close()
    if not rows:
        partial_audio.unlink(missing_ok=True)
        raise DataError("no utterance could be cut: every row was skipped (see the segment report)")
    index = pd.DataFrame(rows)
    index.to_parquet(out_dir / f".{INDEX_FILE}.partial", index=False)
    policy = json.dumps(ProcessorConfig.audio_policy(cfg), indent=2) + "\n"
    (out_dir / f".{AUDIO_POLICY_FILE}.partial").write_text(policy, encoding="utf-8")
    for name in (AUDIO_FILE, INDEX_FILE, AUDIO_POLICY_FILE):
        os.replace(out_dir / f".{name}.partial", out_dir / name)
    return index, pd.DataFrame(skipped, columns=["sentence_id", "video_id", "reason", "detail"])


def segment(table: pd.DataFrame, audio_dir: Path, out_dir: Path, cfg: SegmentConfig,
            split: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The segment stage: splits by conversation, the packed store; returns (index, skipped, report)."""
    given = "split" in table.columns
    table = add_split_column(table, split.val_fraction, split.test_fraction, split.seed)
    conflicts = conflicting_labels(table)
    groups = table[conflicts].groupby(CONFLICT_KEY, dropna=False).ngroups
    if groups:
        log.warning("%d identical window(s) with different labels (%d rows), %s (segment.conflicting_labels)",
                    groups, int(conflicts.sum()),
                    "excluded from training and scoring" if cfg.conflicting_labels == "drop" else "kept")
    words = corpus_has_words(table)
    if not words:
        log.warning("no utterance has words (recordings without transcripts): the models read the audio and the "
                    "speaker turns alone")
    index, skipped = build_store(table, audio_dir, out_dir, cfg)
    empty = [name for name in SPLITS if not (index.split == name).any()]
    if empty:
        fix = ("the source gives the splits: add annotation files for them (mmf2f.annotations)" if given else
               "too few conversations for split.val_fraction / split.test_fraction")
        raise DataError(f"split(s) {empty} have no usable utterance ({fix})")
    report = {"utterances": len(index), "words": words, "skipped": len(skipped), "conflicting_label_groups": groups,
              "excluded_conflicting": int(index.excluded.sum()),
              **(trim_report(index.trimmed_s.to_numpy()) if cfg.trim_to_speech else {}),
              **{f"skipped_{r}": int(n) for r, n in skipped.reason.value_counts().items()},
              "seconds": round(float(index.n_samples.sum() / cfg.sample_rate), 1),
              "store_mb": round((Path(out_dir) / AUDIO_FILE).stat().st_size / 2**20, 1)}
    for name in SPLITS:
        part = index[index.split == name]
        report[name] = {"conversations": int(part.video_id.nunique()), "utterances": len(part),
                        **{label_name: int((part.label == label).sum()) for label, label_name in LABEL_NAMES.items()}}
    return index, skipped, report
