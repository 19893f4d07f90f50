# SPDX-License-Identifier: Apache-2.0
"""Predictions for a whole MM-F2F CSV with either backend (`predict.TurnPredictor` or
`onnx_backend.OnnxTurnModel`): every row in the output, the ones that cannot be used with their reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from turnfusion.audio import read_resampled, recording_path
from turnfusion.errors import DataError
from turnfusion.schema import LABEL_NAMES, conversation_order, has_video_id, read_utterances
from turnfusion.serving.processing import cut_row
from turnfusion.text.history import histories


def predict_csv(predictor, csv: str | Path, audio_dir: str | Path, batch_size: int = 32) -> pd.DataFrame:
    """Predictions for every row of an MM-F2F CSV whose recordings are `audio_dir/<video_id>.flac` or `.wav`.

    Every input row is in the output: rows that cannot be used (no video_id, bad speaker, empty text where the model
    reads words, missing recording, bad timestamps, non-finite audio, an input the model refuses) with empty
    probabilities and the reason in `skipped`. A row's history is the usable rows that ended before it started
    (`history`).
    """
    if not Path(audio_dir).is_dir():
        raise DataError(f"{audio_dir}: audio folder not found")
    table = conversation_order(read_utterances(csv))
    if table.empty:
        raise DataError(f"{csv}: no utterance rows (only a header)")
    rate = predictor.processor.config.sample_rate
    rows: list[dict] = []
    probs = np.full((len(table), len(LABEL_NAMES)), np.nan)
    pending: list[tuple] = []  # (output row, context, waves): predicted every `batch_size`, so memory stays flat

    def flush() -> None:
        if pending:
            probs[[p[0] for p in pending]] = predictor.predict_prepared([p[1] for p in pending],
                                                                        [p[2] for p in pending])
            pending.clear()

    named = has_video_id(table)
    rows += [{"sentence_id": r.sentence_id, "video_id": "", "label": r.label, "skipped": "empty_video_id"}
             for r in table[~named].itertuples(index=False)]
    for video_id, conv in table[named].groupby("video_id", sort=True):
        try:
            recording, problem_all = read_resampled(recording_path(audio_dir, video_id), rate), ""
        except DataError as exc:
            recording, problem_all = None, f"recording: {exc}"
        channels, words = predictor.processor.config.channels, predictor.processor.config.words
        cuts = [(None, problem_all) if problem_all else cut_row(recording, rate, row, channels, words)
                for row in conv.itertuples(index=False)]
        del recording
        rows += [{"sentence_id": row.sentence_id, "video_id": video_id, "label": row.label, "skipped": problem}
                 for row, (_, problem) in zip(conv.itertuples(index=False), cuts, strict=True)]
        first = len(rows) - len(conv)
        usable = np.flatnonzero([problem == "" for _, problem in cuts])
        used = conv.iloc[usable].reset_index(drop=True)  # the rows a history may hold: those the model reads
        texts, speakers = used.text.tolist(), used.speaker.astype(int).tolist()
        # the history rule of training (`history`): what ended before each row began, never its label
        for k, previous in enumerate(histories(used, predictor.context_length)):
            context = [{"text": texts[j], "speaker": speakers[j], "sample_rate": rate,
                        "audio": cuts[usable[j]][0] if predictor.processor.reads_context_audio else None}
                       for j in previous]
            try:
                prepared = predictor.prepare(texts[k], cuts[usable[k]][0], speakers[k], context, sample_rate=rate)
            except DataError as exc:  # this row's input (a window under 50 ms, audio past full scale): its reason
                rows[first + usable[k]]["skipped"] = f"input: {exc}"
                continue
            pending.append((first + usable[k], *prepared))
            if len(pending) >= batch_size:
                flush()
    flush()
    result = pd.DataFrame(rows)
    for k, name in enumerate(LABEL_NAMES.values()):
        result[f"p_{name}"] = probs[:, k]
    done = result.skipped == ""
    result["prediction"] = pd.Series(pd.NA, index=result.index, dtype="Int64")
    result.loc[done, "prediction"] = probs[done.to_numpy()].argmax(1)
    return result
