"""Recordings mode `rehearsal` of the mmf2f source: an annotation table spoken by eSpeak NG, so that the whole
DAG runs offline on the structure of a real corpus (its videos, speakers, texts, labels and row timing).

Every row is spoken from its own full text, at its speaker's fixed rate, into a clip of its own on its
speaker's channel (the other channel, the listener's, carries no speech); a video's clips follow one another
with GAP_S of silence between them, and the table gains `audio_start` / `audio_end`: where each row's clip lies
in the recording (the annotated `start` / `end` still order the conversation and build the history).

Why not one timeline at the annotated times: MM-F2F rows are overlapping windows (a keep window is cut from
the same turn as a shift row), so a shared timeline must leave rows silent ("already said"), speed others up
to fit their window, or carry a listener's speech into a window's end, and each of those follows the label.
Here a clip depends on the row's words and speaker only (`bench/rendering_floor.py` measures what is left).

The audio carries no real turn-taking cue: every figure measured on it speaks of the pipeline at the
corpus's size and structure, never of how well audio predicts turns.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from turnfusion.data.sources import speech
from turnfusion.data.sources.rendering import add_noise, map_in_fresh_processes, pick_voices, trim_silence
from turnfusion.names import named_file
from turnfusion.schema import row_problem
from turnfusion.text.words import normalize

SAMPLE_RATE = 16000
GAP_S = 0.5  # silence before each clip
SNR_DB = 30.0
SPAN_COLUMNS = ["sentence_id", "audio_start", "audio_end"]


def video_seed(video_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{video_id}".encode(), digest_size=4).digest(), "little")


def render_video(rows: pd.DataFrame, seed: int) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(stereo float32 recording at SAMPLE_RATE, the spans of its rows (SPAN_COLUMNS, in seconds), counts) of
    one video's rows. A row that `schema.row_problem` refuses gets no clip and no span."""
    rng = np.random.default_rng(seed)
    voices = pick_voices(rng)
    tts_rate = speech.sample_rate()
    gap = int(GAP_S * tts_rate)
    clips, spans, cursor = [], [], gap
    for row in rows.itertuples(index=False):
        if row_problem(row):
            continue
        clip = trim_silence(speech.speak(normalize(row.text), voices[int(row.speaker)]))
        clips.append((int(row.speaker), cursor, clip))
        spans.append((row.sentence_id, cursor / tts_rate, (cursor + len(clip)) / tts_rate))
        cursor += len(clip) + gap
    tracks = np.zeros((2, cursor), dtype=np.float32)
    for channel, begin, clip in clips:
        tracks[channel, begin: begin + len(clip)] = clip
    audio = soxr.resample(tracks.T, tts_rate, SAMPLE_RATE).astype(np.float32)
    audio = add_noise(audio, SNR_DB, rng)
    peak = np.abs(audio).max()
    counts = {"rows": len(rows), "spoken": len(spans), "not_renderable": len(rows) - len(spans)}
    return (0.9 * audio / peak if peak > 0 else audio), pd.DataFrame(spans, columns=SPAN_COLUMNS), counts


def _render_and_write(video_id: str, rows: pd.DataFrame, seed: int, path: Path) -> tuple[dict, pd.DataFrame]:
    audio, spans, counts = render_video(rows, video_seed(video_id, seed))
    path.unlink(missing_ok=True)  # a link planted at the name is replaced, never written through
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return {"video_id": video_id, "url": path.as_posix(), "seconds": round(len(audio) / SAMPLE_RATE, 1),
            **counts}, spans


def render_rehearsal(table: pd.DataFrame, out_dir: Path, seed: int,
                     workers: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Speak every video of `table` to `out_dir/remote/<video_id>.flac`. Returns (one row per video: video_id,
    url, seconds and the counts of `render_video`; the spans of every spoken row)."""
    remote = Path(out_dir) / "remote"
    remote.mkdir(parents=True, exist_ok=True)
    jobs = [(video_id, rows, seed, named_file(remote, video_id, ".flac"))
            for video_id, rows in table.groupby("video_id", sort=True)]
    done = map_in_fresh_processes(_render_and_write, jobs, workers)
    return (pd.DataFrame([videos for videos, _ in done]),
            pd.concat([spans for _, spans in done], ignore_index=True) if done else pd.DataFrame(columns=SPAN_COLUMNS))
