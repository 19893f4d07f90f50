"""Recordings mode `rehearsal` of the mmf2f source: an annotation table spoken by eSpeak NG, so that the whole
DAG runs offline on the structure of a real corpus (its videos, row timing, overlaps, texts and labels).

Each row's words are spoken on its speaker's channel of a stereo recording, ending at the row's `end`, so
speakers overlap where the table says they do. MM-F2F rows are overlapping windows of one speaker's speech,
so a row speaks only the words its speaker's previous row did not already say, from where that row ended;
a row wholly repeated by the previous one stays silent. Speech longer than its window is spoken faster
(up to MAX_RATE words per minute), then cut to the window's last part.

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

from turnfusion.names import named_file
from turnfusion.schema import row_problem
from turnfusion.sources import speech
from turnfusion.sources.demo import add_noise, map_in_fresh_processes, pick_voices, trim_silence
from turnfusion.text import MIN_REPEAT_WORDS, find_words, normalize

SAMPLE_RATE = 16000
MAX_RATE = 450  # eSpeak NG's fastest rate (words per minute)
MIN_WINDOW_S = 0.15  # a shorter window gets no speech
TAIL_S = 1.0  # silence after the last row
SNR_DB = 30.0


def unspoken_words(previous: list[str], words: list[str]) -> list[str]:
    """The words of a row that its speaker's previous row did not already say: after the previous row's text
    where the row contains it, after a repeated prefix (of at least MIN_REPEAT_WORDS words), none where the
    previous row contains the whole row."""
    if not previous:
        return words
    if find_words(previous, words) >= 0:
        return []
    inside = find_words(words, previous)
    if inside >= 0 and len(previous) >= MIN_REPEAT_WORDS:
        return words[inside + len(previous):]
    for k in range(min(len(previous), len(words)), MIN_REPEAT_WORDS - 1, -1):
        if previous[-k:] == words[:k]:
            return words[k:]
    return words


def video_seed(video_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{video_id}".encode(), digest_size=4).digest(), "little")


def render_video(rows: pd.DataFrame, seed: int) -> tuple[np.ndarray, dict]:
    """(stereo float32 recording at SAMPLE_RATE, counts) of one video's rows, given in conversation order."""
    rng = np.random.default_rng(seed)
    voices = pick_voices(rng)
    tts_rate = speech.sample_rate()
    usable = [r for r in rows.itertuples(index=False) if not row_problem(r) and 0 <= r.start < r.end]
    total_s = max((r.end for r in usable), default=0.0) + TAIL_S
    tracks = np.zeros((2, int(total_s * tts_rate) + 1), dtype=np.float32)
    spoken_until, said = [0.0, 0.0], [[], []]
    counts = {"rows": len(rows), "spoken": 0, "repeated": 0, "no_window": 0, "faster": 0, "cut": 0,
              "not_renderable": len(rows) - len(usable)}
    for row in usable:
        s = int(row.speaker)
        words = normalize(row.text).split()
        new = unspoken_words(said[s], words)
        begin = max(float(row.start), spoken_until[s])
        said[s] = words
        if not new:
            counts["repeated"] += 1
            continue
        window = float(row.end) - begin
        if window < MIN_WINDOW_S:
            counts["no_window"] += 1
            continue
        voice = voices[s]
        clip = trim_silence(speech.speak(" ".join(new), voice))
        if len(clip) > window * tts_rate:
            faster = min(MAX_RATE, int(np.ceil(voice.rate * len(clip) / (window * tts_rate))))
            clip = trim_silence(speech.speak(" ".join(new), speech.Voice(voice.name, voice.pitch, faster)))
            counts["faster"] += 1
        if len(clip) > window * tts_rate:
            clip = clip[-int(window * tts_rate):]
            counts["cut"] += 1
        end = int(round(float(row.end) * tts_rate))
        tracks[s, end - len(clip): end] += clip
        spoken_until[s] = float(row.end)
        counts["spoken"] += 1
    audio = soxr.resample(tracks.T, tts_rate, SAMPLE_RATE).astype(np.float32)
    audio = add_noise(audio, SNR_DB, rng)
    peak = np.abs(audio).max()
    return (0.9 * audio / peak if peak > 0 else audio), counts


def _render_and_write(video_id: str, rows: pd.DataFrame, seed: int, path: Path) -> dict:
    audio, counts = render_video(rows, video_seed(video_id, seed))
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return {"video_id": video_id, "url": path.as_posix(), "seconds": round(len(audio) / SAMPLE_RATE, 1), **counts}


def render_rehearsal(table: pd.DataFrame, out_dir: Path, seed: int, workers: int = 2) -> pd.DataFrame:
    """Speak every video of `table` (conversation order) to `out_dir/remote/<video_id>.flac`; returns one row per
    video: video_id, url, seconds and the counts of `render_video`."""
    remote = Path(out_dir) / "remote"
    remote.mkdir(parents=True, exist_ok=True)
    jobs = [(video_id, rows, seed, named_file(remote, video_id, ".flac"))
            for video_id, rows in table.groupby("video_id", sort=True)]
    return pd.DataFrame(map_in_fresh_processes(_render_and_write, jobs, workers))
