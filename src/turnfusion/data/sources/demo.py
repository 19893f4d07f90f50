"""The embedded demo corpus (data source `demo`): two-party conversations spoken by eSpeak NG, with turn-taking cues.

A turn-taking process (`demo_turns`) decides who speaks, each utterance's label (keep / shift / backchannel)
and, independently given the label, its text cue and final prosody category; this module turns them into
words, speech and one recording per conversation (docs/demo_corpus.md has the full generative spec). Text
and prosody each carry part of the answer, and the previous utterances another part, so a model needs all
three to do well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from turnfusion.data.sources import speech
from turnfusion.data.sources.demo_turns import N_TOPICS, plan_conversation
from turnfusion.data.sources.rendering import add_noise, map_in_fresh_processes, pick_voices, trim_silence
from turnfusion.data.transcripts import transcript_table
from turnfusion.names import named_file
from turnfusion.schema import BACKCHANNEL, SHIFT, UTTERANCE_COLUMNS

if TYPE_CHECKING:
    from turnfusion.config import DemoConfig

# --- Generative spec: every number below is documented in docs/demo_corpus.md -----------------
# Prosody of the final two words as (mean, sd) of the SSML pitch change in percent and of the rate in percent.
PROSODY_SHAPES = {  # eSpeak's clause tune is chosen by the final punctuation (never part of the text)
    "fall": {"pitch": (-40.0, 10.0), "rate": (65.0, 8.0), "tune": "."},  # falling, lengthened
    "level": {"pitch": (0.0, 10.0), "rate": (105.0, 8.0), "tune": ","},
    "rise": {"pitch": (40.0, 10.0), "rate": (90.0, 8.0), "tune": "?"},  # rising
}
GAP_WITHIN_TURN = (0.55, 0.20)  # pause before the same speaker goes on (mean, sd) in seconds
GAP_BEFORE_SHIFT = (0.35, 0.25)  # gap before the other speaker takes the turn
BACKCHANNEL_ONSET = (-0.20, 0.15)  # backchannel start relative to the utterance end (uniform range)
BACKCHANNEL_WORDS = ["mm-hm", "yeah", "right", "uh-huh", "okay"]
DEMO_SPEAKERS = ["SPEAKER_00", "SPEAKER_01"]  # the transcripts' names of channel 0's and 1's speaker

SUBJECTS = ["i", "we", "my sister", "my brother", "our neighbour", "the teacher", "my friend", "they", "she", "he"]
VERBS = ["went to", "drove to", "walked to", "moved to", "stayed at", "worked at", "visited", "cleaned",
         "painted", "looked at", "talked about", "found"]
OBJECTS = ["the market", "the new house", "the office", "the old school", "the garden", "the station",
           "the beach", "the kitchen", "the museum", "the park", "the hospital", "the library"]
TIMES = ["yesterday", "last week", "on monday", "this morning", "last summer", "after work", "", ""]
OPINIONS = ["it was really nice", "that was a great idea", "it took about two hours", "nobody was there",
            "the weather was perfect", "it was a bit expensive", "we had a good time"]
CONJUNCTIONS = ["and", "but", "so", "because", "and then"]
FILLERS = ["um", "uh", "like"]
QUESTIONS = ["did you ever go to {obj}", "what do you think about {obj}", "have you been to {obj}",
             "do you know {obj}", "how was your weekend", "what did you do {time}", "{statement} right",
             "can you believe that"]
NARRATIVE_TAILS = ["you know", "and guess what", "so anyway", "if you see what i mean"]
ON_TOPIC = 0.7  # share of statements and questions about the turn's topic (the others name any object)
assert len(OBJECTS) == N_TOPICS


@dataclass(frozen=True)
class Vocabulary:
    """The words of one language's conversations: the same categories, drawn the same way, in every language."""

    subjects: list[str]
    verbs: list[str]
    objects: list[str]
    times: list[str]  # the last two empty: no time said
    opinions: list[str]
    conjunctions: list[str]
    fillers: list[str]
    questions: list[str]
    narrative_tails: list[str]
    backchannels: list[str]
    voice: str  # the eSpeak NG voice (variants are added)


LANGUAGES = {
    "en": Vocabulary(SUBJECTS, VERBS, OBJECTS, TIMES, OPINIONS, CONJUNCTIONS, FILLERS, QUESTIONS, NARRATIVE_TAILS,
                     BACKCHANNEL_WORDS, "en-us"),
    "de": Vocabulary(  # synthetic German: word order and case as simple as the English corpus's, not idiomatic
        subjects=["ich", "wir", "meine schwester", "mein bruder", "unser nachbar", "die lehrerin", "mein freund",
                  "sie", "er", "die kinder"],
        verbs=["ging zu", "fuhr zu", "lief zu", "zog zu", "blieb bei", "arbeitete bei", "wartete bei", "war bei",
               "wohnte bei", "sprach von", "erzählte von", "träumte von"],
        objects=["dem markt", "dem neuen haus", "dem büro", "der alten schule", "dem garten", "dem bahnhof",
                 "dem strand", "der küche", "dem museum", "dem park", "dem krankenhaus", "der bibliothek"],
        times=["gestern", "letzte woche", "am montag", "heute morgen", "letzten sommer", "nach der arbeit", "", ""],
        opinions=["es war wirklich schön", "das war eine gute idee", "es hat ungefähr zwei stunden gedauert",
                  "niemand war da", "das wetter war perfekt", "es war etwas teuer", "wir hatten viel spaß"],
        conjunctions=["und", "aber", "also", "weil", "und dann"],
        fillers=["äh", "ähm", "halt"],
        questions=["warst du schon mal bei {obj}", "was hältst du von {obj}", "kennst du das bei {obj}",
                   "wie war dein wochenende", "was hast du {time} gemacht", "{statement} oder",
                   "bist du oft bei {obj}", "kannst du das glauben"],
        narrative_tails=["weißt du", "und stell dir vor", "also jedenfalls", "wenn du verstehst was ich meine"],
        backchannels=["mhm", "ja", "genau", "okay", "aha"],
        voice="de"),
}


def _statement(rng: np.random.Generator, topic: str, vocab: Vocabulary) -> str:
    if rng.random() < 0.3:
        return str(rng.choice(vocab.opinions))
    words = [rng.choice(vocab.subjects), rng.choice(vocab.verbs), _object(rng, topic, vocab), rng.choice(vocab.times)]
    return " ".join(w for w in words if w)


def _object(rng: np.random.Generator, topic: str, vocab: Vocabulary) -> str:
    return topic if rng.random() < ON_TOPIC else str(rng.choice(vocab.objects))


def utterance_text(cue: str, rng: np.random.Generator, topic: str = OBJECTS[0],
                   vocab: Vocabulary = LANGUAGES["en"]) -> str:
    """Text of one utterance with the given text cue category, mostly about `topic` (one of `vocab.objects`)."""
    if cue == "statement":
        return _statement(rng, topic, vocab)
    if cue == "question":
        template = str(rng.choice(vocab.questions))
        return " ".join(template.format(obj=_object(rng, topic, vocab), time=rng.choice(vocab.times[:6]),
                                        statement=_statement(rng, topic, vocab)).split())
    if cue == "incomplete":
        kind = rng.random()
        if kind < 0.5:
            return f"{_statement(rng, topic, vocab)} {rng.choice(vocab.conjunctions)}"
        if kind < 0.8:
            return f"{rng.choice(vocab.subjects)} {rng.choice(vocab.verbs)} {rng.choice(vocab.fillers)}"
        return f"{_statement(rng, topic, vocab)} {rng.choice(vocab.fillers)}"
    if cue == "narrative":
        return f"{_statement(rng, topic, vocab)} {rng.choice(vocab.narrative_tails)}"
    raise ValueError(f"unknown text cue {cue!r}")


def utterance_ssml(text: str, pitch_pct: float, rate_pct: float, tune: str = ".") -> str:
    """SSML that speaks `text` with the prosody change on its final two words."""
    words = text.split()
    head, last = " ".join(words[:-2]), " ".join(words[-2:])
    return (f'<speak>{head} <prosody pitch="{pitch_pct:+.0f}%" rate="{rate_pct:.0f}%">{last}{tune}</prosody>'
            "</speak>")


@dataclass
class Conversation:
    video_id: str
    stereo: bool
    utterances: list[dict] = field(default_factory=list)
    transcript: list[dict] = field(default_factory=list)  # what a recogniser with diarization would write: segments
    audio: np.ndarray | None = None  # (samples, channels) at the output rate


def _place(track: np.ndarray, clip: np.ndarray, start_s: float, sr: int) -> None:
    i = int(round(start_s * sr))
    track[i:i + len(clip)] += clip[: max(0, len(track) - i)]


def generate_conversation(video_id: str, n_utterances: int, seed: int, stereo: bool,
                          sample_rate: int = 44100, snr_db: float = 20.0, language: str = "en",
                          turn_openers: float = 0.0) -> Conversation:
    """Generate one conversation: its utterance rows (MM-F2F schema) and its recording. A share `turn_openers` of the
    turns open with a backchannel word (drawn only when it is above 0, so 0 gives the same bytes as before it)."""
    rng = np.random.default_rng(seed)
    vocab = LANGUAGES[language]
    voices = pick_voices(rng, vocab.voice)
    tts_sr = speech.sample_rate()
    events = []  # (channel, start_s, samples)
    conv = Conversation(video_id=video_id, stereo=stereo)
    t = 0.5 + rng.random()
    for idx, planned in enumerate(plan_conversation(n_utterances, rng)):
        speaker, label = planned.speaker, planned.label
        text = utterance_text(planned.cue, rng, vocab.objects[planned.topic], vocab)
        if turn_openers > 0 and planned.turn_position == 1 and rng.random() < turn_openers:
            text = f"{rng.choice(vocab.backchannels)} {text}"
        shape = PROSODY_SHAPES[planned.prosody]
        pitch = rng.normal(*shape["pitch"])
        rate = float(np.clip(rng.normal(*shape["rate"]), 50, 150))
        samples = speech.speak(utterance_ssml(text, pitch, rate, shape["tune"]), voices[speaker], ssml=True)
        samples = trim_silence(samples)
        end = t + len(samples) / tts_sr
        events.append((speaker, t, samples))
        row = {
            "video_id": video_id, "sentence_id": f"{video_id}_{label}_{idx}", "text": text, "label": label,
            "start": round(t, 3), "end": round(end, 3), "speaker": speaker,
            "text_cue": planned.cue, "prosody": planned.prosody, "final_pitch_pct": round(pitch, 1),
            "final_rate_pct": round(rate, 1), "turn_kind": planned.turn_kind,
            "turn_position": planned.turn_position, "topic": OBJECTS[planned.topic],
            "listener_start": np.nan, "listener_end": np.nan,
        }
        conv.transcript.append({"start": row["start"], "end": row["end"], "text": text,
                                "speaker": f"SPEAKER_{speaker:02d}"})
        if label == SHIFT:
            t = end + float(np.clip(rng.normal(*GAP_BEFORE_SHIFT), 0.05, 1.5))
        else:
            if label == BACKCHANNEL:
                onset = end + rng.uniform(*BACKCHANNEL_ONSET)
                word = str(rng.choice(vocab.backchannels))
                bc = trim_silence(speech.speak(word, voices[1 - speaker]))
                events.append((1 - speaker, onset, 0.6 * bc))
                row["listener_start"], row["listener_end"] = round(onset, 3), round(onset + len(bc) / tts_sr, 3)
                conv.transcript.append({"start": row["listener_start"], "end": row["listener_end"], "text": word,
                                        "speaker": f"SPEAKER_{1 - speaker:02d}"})
                end = max(end, onset + len(bc) / tts_sr)
            t = end + float(np.clip(rng.normal(*GAP_WITHIN_TURN), 0.15, 1.5))
        conv.utterances.append(row)
    total = t + 0.5
    tracks = np.zeros((2, int(total * tts_sr) + 1), dtype=np.float32)
    for channel, start, samples in events:
        _place(tracks[channel], samples, start, tts_sr)
    audio = tracks.T if stereo else tracks.sum(axis=0, keepdims=True).T
    audio = soxr.resample(audio, tts_sr, sample_rate).astype(np.float32)
    audio = add_noise(audio, snr_db, rng)
    peak = np.abs(audio).max()
    conv.audio = (0.9 * audio / peak) if peak > 0 else audio
    return conv


def write_demo_corpus(out_dir: Path, cfg: DemoConfig, seed: int, workers: int = 2) -> pd.DataFrame:
    """Write the demo corpus under `out_dir`.

    Writes `remote/<video_id>.flac` (the recordings, to be fetched by the download stage),
    `utterances.csv` (MM-F2F schema plus the generator's cue columns) and `manifest.csv`
    (video_id, url). The last `cfg.n_silent + n_corrupt + n_empty` conversations are deliberately broken
    recordings that keep their utterance rows, so the filter stage has real work.
    Returns the utterance table.
    """
    out_dir = Path(out_dir)
    remote = out_dir / "remote"
    remote.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, size=cfg.n_conversations)
    stereo = rng.random(cfg.n_conversations) < cfg.stereo_fraction
    broken = (["silent"] * cfg.n_silent + ["corrupt"] * cfg.n_corrupt + ["empty"] * cfg.n_empty)
    if len(broken) > cfg.n_conversations:
        raise ValueError("more broken recordings asked for than conversations")
    kinds = ["ok"] * (cfg.n_conversations - len(broken)) + broken
    jobs = [(f"demo{i:03d}", cfg.utterances_per_conversation, int(conv_seed), bool(is_stereo), cfg.sample_rate,
             cfg.snr_db, kind, remote, cfg.language, cfg.transcripts, cfg.turn_openers)
            for i, (conv_seed, is_stereo, kind) in enumerate(zip(seeds, stereo, kinds, strict=True))]
    rows, manifest = [], []
    for utterances, entry in map_in_fresh_processes(_generate_and_write, jobs, workers):
        rows.extend(utterances)
        manifest.append(entry)
    table = pd.DataFrame(rows)
    table[UTTERANCE_COLUMNS + [c for c in table.columns if c not in UTTERANCE_COLUMNS]].to_csv(
        out_dir / "utterances.csv", index=False)
    pd.DataFrame(manifest).to_csv(out_dir / "manifest.csv", index=False)
    if cfg.transcripts != "none":  # read back as a user's transcripts are, by the same reader
        files = {m["video_id"]: named_file(remote, m["video_id"], f".{cfg.transcripts}") for m in manifest}
        transcript_table(files, DEMO_SPEAKERS).to_csv(out_dir / "transcripts.csv", index=False)
    return table


def _generate_and_write(video_id, n_utterances, seed, stereo, sample_rate, snr_db, kind, remote, language="en",
                        transcripts="none", turn_openers=0.0):
    conv = generate_conversation(video_id, n_utterances, seed, stereo, sample_rate, snr_db, language, turn_openers)
    path = named_file(remote, video_id, ".flac")
    _write_recording(path, conv.audio, sample_rate, kind, np.random.default_rng(seed))
    if transcripts != "none":
        write_transcript(named_file(remote, video_id, f".{transcripts}"), conv.transcript, language)
    return conv.utterances, {"video_id": video_id, "url": path.as_posix(), "kind": kind}


def write_transcript(path: Path, segments: list[dict], language: str) -> None:
    """A conversation's words as a recogniser with diarization writes them: Whisper-style JSON (WhisperX's segment
    fields: start, end, text, speaker) or a CSV (recording, speaker, start, end, text)."""
    path.unlink(missing_ok=True)
    segments = sorted(segments, key=lambda s: s["start"])
    if path.suffix == ".json":
        path.write_text(json.dumps({"language": language, "segments": [{"id": i, **s} for i, s in
                                                                       enumerate(segments)]}, ensure_ascii=False))
    else:
        pd.DataFrame(segments).assign(recording=path.stem)[["recording", "speaker", "start", "end", "text"]].to_csv(
            path, index=False)


def _write_recording(path: Path, audio: np.ndarray, sample_rate: int, kind: str,
                     rng: np.random.Generator) -> None:
    path.unlink(missing_ok=True)  # a link planted at the name is replaced, never written through
    if kind == "ok":
        sf.write(path, audio, sample_rate, subtype="PCM_16")
    elif kind == "silent":  # a dead microphone: only very faint noise
        sf.write(path, rng.normal(0, 1e-5, size=audio.shape).astype(np.float32), sample_rate, subtype="PCM_16")
    elif kind == "corrupt":  # a FLAC header followed by garbage
        path.write_bytes(b"fLaC" + rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(f"unknown recording kind {kind!r}")
