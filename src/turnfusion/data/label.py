"""Stage `label`: the utterance table with turn labels derived from each recording's voice activity (or the
source's own labels, passed on), the overlaps, and how well derived labels agree with given ones.

One recording at a time: its channels' Silero VAD (stereo: one speaker each) or its diarization (mono), merged
with its transcript's words when there is one, make each speaker's units; `turn_events.label_events` labels the end
of every utterance. Memory holds one recording's audio and the small tables.
"""

from __future__ import annotations

import bisect
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, f1_score

from turnfusion.audio import read_audio, recording_path, select_channel
from turnfusion.choices import LABEL_NAMES
from turnfusion.data.turn_events import OVERLAP_OUTCOMES, SKIP_REASONS, Unit, label_events, merge_units
from turnfusion.errors import DataError
from turnfusion.text.backchannels import BACKCHANNELS, backchannel_units
from turnfusion.vad import speech_spans

if TYPE_CHECKING:
    from pathlib import Path

    from turnfusion.config import LabelConfig

log = logging.getLogger(__name__)
OVERLAP_COLUMNS = ["video_id", "listener", "start", "end", "floor_holder_end", "overlap_s", "outcome", "text"]
SKIPPED_COLUMNS = ["video_id", "speaker", "start", "end", "reason", "detail"]
TIME_SLACK_S = 0.5  # words may end this far past the recording's end (a recogniser's rounding) before they are wrong


def recording_units(video_id: str, audio_dir: Path, pieces: pd.DataFrame | None, turns: pd.DataFrame | None,
                    cfg: LabelConfig) -> tuple[list[Unit], float]:
    """Each speaker's units in one recording and its length in seconds; DataError (the reason it is skipped)
    when it cannot be labelled. `pieces`: its transcript's pieces, `turns`: its diarization (both may be None)."""
    samples, sample_rate = read_audio(recording_path(audio_dir, video_id))
    duration = len(samples) / sample_rate
    for what, table in (("transcript words", pieces), ("diarization turns", turns)):
        if table is not None and len(table) and table.end.max() > duration + TIME_SLACK_S:
            raise DataError(f"{what} end at {table.end.max():.2f} s, past the recording's end ({duration:.2f} s): "
                            "they are of another recording")
    if samples.shape[1] == 2:
        activity = [[(s, e, "") for s, e in speech_spans(select_channel(samples, ch), sample_rate, cfg.vad_threshold)]
                    for ch in (0, 1)]
    elif samples.shape[1] == 1 and (turns is not None or pieces is not None):  # a diarization, or diarized words
        said = turns if turns is not None else pieces
        activity = [[(r.start, r.end, "") for r in said[said.speaker == ch].itertuples()] for ch in (0, 1)]
    elif samples.shape[1] == 1:
        raise DataError("mono recording without diarization: give <name>.rttm or a transcript with speakers, or "
                        "record one speaker per channel")
    else:
        raise DataError(f"{samples.shape[1]} channels; a call has 2 (one speaker each), or 1 with diarization")
    del samples
    for ch in (0, 1):
        if not activity[ch]:
            raise DataError(f"no speech on channel {ch} (speaker {ch}): one side of the call is empty")
    units = [merge_units(ch, activity[ch], cfg.min_pause_s, cfg.min_speech_s) for ch in (0, 1)]
    if pieces is not None and len(pieces):
        for ch in (0, 1):
            said = pieces[pieces.speaker == ch]
            words = merge_units(ch, list(zip(said.start, said.end, said.text, strict=True)), cfg.min_pause_s,
                                cfg.min_speech_s)
            # activity the recogniser wrote no words for (a laugh, an "mm" it dropped) still counts as activity
            ends = [w.end for w in words]
            unheard = [u for u in units[ch] if not _overlaps_any(u, words, ends)]
            units[ch] = merge_units(ch, [(u.start, u.end, u.text) for u in words + unheard], cfg.min_pause_s)
    return units[0] + units[1], duration


def _overlaps_any(unit: Unit, words: list[Unit], ends: list[float]) -> bool:
    """Whether `unit` overlaps one of `words` (merged units: sorted and disjoint, so their `ends` are sorted too): the
    first word ending after the unit starts is the only one to check (log time, not a scan of the call's words)."""
    i = bisect.bisect_right(ends, unit.start)
    return i < len(words) and words[i].start < unit.end


def derive_labels(video_ids: list[str], audio_dir: Path, transcripts: pd.DataFrame | None,
                  diarization: pd.DataFrame | None, cfg: LabelConfig,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(utterance table, overlap table, skipped table) of the recordings `video_ids` in `audio_dir`."""
    from tqdm import tqdm

    words = None if cfg.backchannel_words == "none" else backchannel_units(BACKCHANNELS[cfg.backchannel_words])
    pieces_of, turns_of = _by_recording(transcripts), _by_recording(diarization)
    rows, overlaps, skipped = [], [], []
    for video_id in tqdm(video_ids, desc="label", unit="recording", disable=not progress):
        try:
            units, duration = recording_units(video_id, audio_dir, pieces_of.get(video_id), turns_of.get(video_id),
                                              cfg)
        except DataError as exc:
            log.warning("%s: not labelled: %s", video_id, exc)
            skipped.append({"video_id": video_id, "speaker": np.nan, "start": np.nan, "end": np.nan,
                            "reason": "recording", "detail": str(exc)})
            continue
        events = label_events(units, duration, cfg, words)
        for k, (unit, label) in enumerate(events.utterances):
            rows.append({"video_id": video_id, "sentence_id": f"{video_id}_{k:05d}", "text": unit.text,
                         "label": label, "start": round(unit.start, 3), "end": round(unit.end, 3),
                         "speaker": unit.speaker})
        skipped += [{"video_id": video_id, "speaker": u.speaker, "start": round(u.start, 3), "end": round(u.end, 3),
                     "reason": reason, "detail": u.text} for u, reason in events.skipped]
        overlaps += [{"video_id": video_id, **row} for row in events.overlaps]
    table = pd.DataFrame(rows, columns=["video_id", "sentence_id", "text", "label", "start", "end", "speaker"])
    return (table, pd.DataFrame(overlaps, columns=OVERLAP_COLUMNS).round(3),
            pd.DataFrame(skipped, columns=SKIPPED_COLUMNS))


def _by_recording(table: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """A table's rows per recording, split once (not filtered again for every recording)."""
    return {} if table is None else {str(v): rows for v, rows in table.groupby("video_id", sort=False)}


def counts(table: pd.DataFrame, overlaps: pd.DataFrame, skipped: pd.DataFrame) -> dict:
    """What the stage did, for its report."""
    return {
        "utterances": len(table),
        "per_label": {LABEL_NAMES[k]: int((table.label == k).sum()) for k in LABEL_NAMES},
        "with_words": int((table.text.fillna("").str.len() > 0).sum()),
        "recordings": int(table.video_id.nunique()),
        "skipped_recordings": {str(r.video_id): r.detail for r in skipped[skipped.reason == "recording"].itertuples()},
        "skipped_utterances": {reason: int((skipped.reason == reason).sum()) for reason in SKIP_REASONS},
        "overlaps": {outcome: int((overlaps.outcome == outcome).sum()) for outcome in OVERLAP_OUTCOMES},
    }


def match_utterances(derived: pd.DataFrame, given: pd.DataFrame, tolerance_s: float) -> pd.DataFrame:
    """Pairs (derived row, given row) of the same recording and speaker whose ends are within `tolerance_s`, each row
    in at most one pair: as many pairs as can be made, then the nearest ends (`pair_times`). Columns derived_label,
    given_label, end_diff."""
    pairs = []
    for (video_id, speaker), mine in derived.groupby(["video_id", "speaker"], sort=True):
        theirs = given[(given.video_id == video_id) & (given.speaker == speaker)]
        for i, j, gap in pair_times(mine.end.to_numpy(), theirs.end.to_numpy(), tolerance_s):
            pairs.append((int(mine.label.iat[i]), int(theirs.label.iat[j]), gap))
    return pd.DataFrame(pairs, columns=["derived_label", "given_label", "end_diff"])


def pair_times(a: np.ndarray, b: np.ndarray, tolerance_s: float) -> list[tuple[int, int, float]]:
    """(i, j, |a[i] - b[j]|) pairing times of `a` with times of `b` within `tolerance_s`, each time at most once: the
    most pairs, then the smallest total gap. Times chained by gaps within the tolerance form small groups, each
    solved exactly (scipy's assignment), so a long recording costs little more than its length."""
    from scipy.optimize import linear_sum_assignment

    points = sorted([(t, 0, i) for i, t in enumerate(a)] + [(t, 1, j) for j, t in enumerate(b)])
    groups, current = [], []
    for point in points:
        if current and point[0] - current[-1][0] > tolerance_s:
            groups.append(current)
            current = []
        current.append(point)
    groups.append(current)
    pairs = []
    for group in groups:
        rows = [i for _, side, i in group if side == 0]
        cols = [j for _, side, j in group if side == 1]
        if not rows or not cols:
            continue
        gaps = np.abs(a[rows][:, None] - b[cols][None, :])
        cost = np.where(gaps <= tolerance_s, gaps, 1e6)  # an impossible pair costs more than any set of real ones
        for r, c in zip(*linear_sum_assignment(cost), strict=True):
            if gaps[r, c] <= tolerance_s:
                pairs.append((rows[r], cols[c], float(gaps[r, c])))
    return pairs


def agreement(derived: pd.DataFrame, given: pd.DataFrame, tolerance_s: float) -> dict:
    """How derived labels agree with given ones on the utterances both have: per-class and macro F1, Cohen's kappa,
    and how many utterances of each side found a partner."""
    given = given[given.video_id.isin(set(derived.video_id))]
    pairs = match_utterances(derived, given, tolerance_s)
    report = {"matched": len(pairs), "given": len(given), "derived": len(derived),
              "given_matched_share": round(len(pairs) / max(1, len(given)), 4),
              "derived_matched_share": round(len(pairs) / max(1, len(derived)), 4)}
    if pairs.empty:
        return report
    labels = list(LABEL_NAMES)
    present = sorted(set(pairs.given_label) | set(pairs.derived_label))  # a class neither side says has no F1
    kappa = cohen_kappa_score(pairs.given_label, pairs.derived_label, labels=labels, replace_undefined_by=np.nan)
    per_class = f1_score(pairs.given_label, pairs.derived_label, labels=present, average=None, zero_division=0)
    report.update({
        "macro_f1": round(float(per_class.mean()), 4),
        "kappa": None if np.isnan(kappa) else round(float(kappa), 4),  # undefined when both sides say one class
        "per_class_f1": {LABEL_NAMES[k]: (round(float(per_class[present.index(k)]), 4) if k in present else None)
                         for k in labels},
        "confusion": {f"given_{LABEL_NAMES[g]}": {LABEL_NAMES[d]: int(((pairs.given_label == g)
                                                                      & (pairs.derived_label == d)).sum())
                                                  for d in labels} for g in labels},
        "median_end_diff_s": round(float(pairs.end_diff.median()), 4),
    })
    return report


def backchannel_agreement(overlaps: pd.DataFrame, given: pd.DataFrame, labelled: set,
                          tolerance_s: float) -> dict | None:
    """The derived backchannels of the `labelled` recordings against a source that records each listener response
    (`listener_start`: the demo): how many derived ones start within `tolerance_s` of a given one, and of how many."""
    if "listener_start" not in given.columns:
        return None
    truth = given[given.video_id.isin(labelled)].dropna(subset=["listener_start"])
    found = overlaps[(overlaps.outcome == "backchannel") & overlaps.video_id.isin(labelled)]
    hits = sum(len(pair_times(mine.start.to_numpy(), truth.loc[truth.video_id == video_id, "listener_start"]
                              .to_numpy(), tolerance_s)) for video_id, mine in found.groupby("video_id"))
    return {"given": len(truth), "derived": len(found), "matched": int(hits),
            "precision": round(hits / max(1, len(found)), 4), "recall": round(hits / max(1, len(truth)), 4)}


def label_source(source_dir: Path, audio_dir: Path, cfg: LabelConfig,
                 progress: bool = True) -> tuple[pd.DataFrame | None, pd.DataFrame, pd.DataFrame, dict]:
    """The label stage on a source's folder (manifest.csv; utterances.csv when the source has labels;
    transcripts.csv and diarization.csv when it has them): (derived table, or None when the given labels are
    used; overlaps; skipped; report)."""
    from turnfusion.schema import read_utterances

    given_path = source_dir / "utterances.csv"
    has_labels = given_path.is_file()
    use = cfg.labels if cfg.labels != "auto" else ("given" if has_labels else "derived")
    if use == "given":
        if not has_labels:
            raise DataError(f"{given_path}: not found; this source has no labels of its own (label.labels: derived "
                            "or auto derives them)")
        return None, pd.DataFrame(columns=OVERLAP_COLUMNS), pd.DataFrame(columns=SKIPPED_COLUMNS), {"labels": "given"}
    manifest = read_table(source_dir / "manifest.csv", ["video_id"])
    transcripts = read_table(source_dir / "transcripts.csv", ["video_id", "speaker", "start", "end", "text"],
                             optional=True)
    diarization = read_table(source_dir / "diarization.csv", ["video_id", "speaker", "start", "end"], optional=True)
    table, overlaps, skipped = derive_labels(list(manifest.video_id), audio_dir, transcripts, diarization, cfg,
                                             progress)
    if table.empty:
        raise DataError(f"no recording could be labelled; reasons in order: {list(skipped.detail[:3])}")
    report = {"labels": "derived", "transcripts": transcripts is not None, "diarization": diarization is not None,
              **counts(table, overlaps, skipped)}
    if has_labels:
        given = read_utterances(given_path)
        report["agreement_with_given"] = agreement(table, given, cfg.match_tolerance_s)
        found = backchannel_agreement(overlaps, given, set(table.video_id), cfg.match_tolerance_s)
        if found is not None:
            report["backchannels_against_given"] = found
    return table, overlaps, skipped, report


def read_table(path: Path, columns: list[str], optional: bool = False) -> pd.DataFrame | None:
    """A table the source stage wrote; None when `optional` and absent."""
    if not path.is_file():
        if optional:
            return None
        raise DataError(f"{path}: not found (run the source stage)")
    table = pd.read_csv(path, dtype={"video_id": str, "text": str}, keep_default_na=False, na_values=[""])
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    if "text" in table.columns:
        table["text"] = table.text.fillna("")
    return table
