import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import rms_db

from turnfusion.config import DemoConfig
from turnfusion.data.sources import speech as tts
from turnfusion.data.sources.demo import (
    LANGUAGES,
    generate_conversation,
    utterance_text,
    write_demo_corpus,
)
from turnfusion.data.sources.rendering import map_in_fresh_processes, pick_voices, trim_silence
from turnfusion.schema import UTTERANCE_COLUMNS, read_utterances
from turnfusion.training.prosody import f0_track


def test_espeak_speaks_and_ssml_moves_final_pitch():
    voice = tts.Voice("en-us+m3", pitch=50, rate=170)
    finals = {}
    for name, pct, tune in [("fall", -40, "."), ("rise", 40, "?")]:
        ssml = f'<speak>i went to the <prosody pitch="{pct:+d}%">market{tune}</prosody></speak>'
        wave = trim_silence(tts.speak(ssml, voice, ssml=True))
        assert len(wave) > 0.5 * tts.sample_rate() and rms_db(wave) > -40
        f0 = f0_track(wave, tts.sample_rate())
        voiced = f0[np.isfinite(f0) & (f0 < 250)]
        finals[name] = np.median(voiced[-15:])
    assert finals["rise"] > finals["fall"] * 1.3


def test_conversation_is_deterministic_and_well_formed():
    a, b, c = map_in_fresh_processes(generate_conversation, [("c", 12, 5, True), ("c", 12, 5, True),
                                                             ("c", 12, 6, True)], workers=2)
    # everything is exact under a seed, the audio byte for byte (eSpeak NG's noise generator is seeded)
    ta, tb = pd.DataFrame(a.utterances), pd.DataFrame(b.utterances)
    pd.testing.assert_frame_equal(ta, tb)
    assert a.audio.tobytes() == b.audio.tobytes()
    assert a.audio.shape[1] == 2
    table = pd.DataFrame(a.utterances)
    assert (table.end > table.start).all() and (table.start.diff().dropna() > 0).all()
    assert table.end.max() < len(a.audio) / 44100
    assert set(table.label) <= {0, 1, 2}
    # the speaker changes exactly after turn shifts
    shifts = table.label.iloc[:-1].to_numpy() == 1
    changes = table.speaker.diff().iloc[1:].to_numpy() != 0
    assert (shifts == changes).all()
    assert c.utterances != a.utterances


def test_two_interpreters_generate_the_same_audio_byte_for_byte():
    """eSpeak NG's noise generator (breathy voices such as en-us+f2) is seeded before each utterance; unseeded,
    it started from the clock (interpreters a second apart differed), and so did the corpus."""
    import subprocess
    import sys
    import time

    code = ("import hashlib\nfrom turnfusion.data.sources.demo import generate_conversation\n"
            "c = generate_conversation('c', 7, 123, True)\n"
            "print(hashlib.sha256(c.audio.tobytes()).hexdigest(), [u['end'] for u in c.utterances])\n")
    runs = []
    for _ in range(2):
        runs.append(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120))
        time.sleep(1.1)
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-1000:]
    assert runs[0].stdout == runs[1].stdout


def test_backchannels_start_around_the_end_on_the_listeners_own_channel():
    conv = generate_conversation("c", 24, 11, stereo=True)
    table = pd.DataFrame(conv.utterances)
    rate = 44100
    bc = table.label == 2
    assert bc.sum() >= 3 and table.listener_start[~bc].isna().all()
    onset = table.listener_start[bc] - table.end[bc]
    assert onset.between(-0.201, 0.151).all()  # BACKCHANNEL_ONSET, relative to the end of the utterance

    def level(channel, start, end):
        return rms_db(conv.audio[int(start * rate): int(end * rate), channel])

    for row in table.itertuples():
        speaking, listening = row.speaker, 1 - row.speaker
        # the speaker's words are on their channel; the other channel has only the noise floor (before any
        # backchannel, which is the listener's and on the listener's channel)
        quiet_until = min(row.end, row.listener_start) if row.label == 2 else row.end
        assert level(speaking, row.start, quiet_until) > level(listening, row.start, quiet_until) + 15
        if row.label == 2:
            heard = level(listening, row.listener_start, row.listener_end)
            assert heard > level(listening, row.start, quiet_until) + 15


def test_text_cues_look_as_specified():
    rng = np.random.default_rng(0)
    incomplete = [utterance_text("incomplete", rng) for _ in range(50)]
    assert all(t.split()[-1] in {"and", "but", "so", "because", "then", "um", "uh", "like"} for t in incomplete)


def test_demo_corpus_files(tmp_path):
    cfg = DemoConfig(n_conversations=5, utterances_per_conversation=6, sample_rate=44100, stereo_fraction=0.5,
                     snr_db=20, n_silent=1, n_corrupt=1, n_empty=1, language="en", transcripts="none",
                     turn_openers=0.0)
    table = write_demo_corpus(tmp_path, cfg, seed=1)
    assert list(read_utterances(tmp_path / "utterances.csv").columns[:7]) == UTTERANCE_COLUMNS
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert manifest.kind.tolist() == ["ok", "ok", "silent", "corrupt", "empty"]
    ok = sf.info(manifest.url[0])
    assert ok.samplerate == 44100
    assert (tmp_path / "remote" / "demo004.flac").stat().st_size == 0
    assert len(table) == 30


@pytest.mark.parametrize("transcripts", ["json", "csv"])
def test_demo_transcripts_hold_every_utterance_and_listener_response_as_read_back(tmp_path, transcripts):
    cfg = DemoConfig(n_conversations=3, utterances_per_conversation=8, sample_rate=16000, stereo_fraction=1.0,
                     snr_db=20, n_silent=0, n_corrupt=0, n_empty=0, language="en", transcripts=transcripts,
                     turn_openers=0.0)
    table = write_demo_corpus(tmp_path, cfg, seed=3)
    assert (tmp_path / "remote" / f"demo000.{transcripts}").is_file()
    pieces = pd.read_csv(tmp_path / "transcripts.csv", keep_default_na=False)
    said = pieces.merge(table, on=["video_id", "start", "end", "speaker", "text"])
    assert len(said) == len(table)  # every utterance, with its speaker, times and words
    responses = pieces.merge(table.dropna(subset=["listener_start"]), left_on=["video_id", "start", "end"],
                             right_on=["video_id", "listener_start", "listener_end"], suffixes=("", "_row"))
    assert len(responses) == int((table.label == 2).sum()) > 0  # each backchannel, on the listener's channel
    assert (responses.speaker != responses.speaker_row).all()
    assert len(pieces) == len(table) + len(responses)


def test_a_german_demo_speaks_german_words_and_backchannels(tmp_path):
    cfg = DemoConfig(n_conversations=1, utterances_per_conversation=12, sample_rate=16000, stereo_fraction=1.0,
                     snr_db=20, n_silent=0, n_corrupt=0, n_empty=0, language="de", transcripts="json",
                     turn_openers=0.0)
    table = write_demo_corpus(tmp_path, cfg, seed=4)
    german = set(" ".join(LANGUAGES["de"].subjects + LANGUAGES["de"].verbs + LANGUAGES["de"].objects
                          + LANGUAGES["de"].opinions + LANGUAGES["de"].questions + LANGUAGES["de"].fillers
                          + LANGUAGES["de"].conjunctions + LANGUAGES["de"].times
                          + LANGUAGES["de"].narrative_tails).replace("{", " ").replace("}", " ").split())
    words = set(" ".join(table.text).split())
    assert words <= german | {"obj", "time", "statement"}
    assert not words & {"the", "went", "yesterday"}
    pieces = pd.read_csv(tmp_path / "transcripts.csv", keep_default_na=False)
    assert set(pieces.text) - set(table.text) <= set(LANGUAGES["de"].backchannels)
    assert pick_voices(np.random.default_rng(0), LANGUAGES["de"].voice)[0].name.startswith("de+")


def test_turn_openers_open_each_turns_first_utterance_with_a_backchannel_word_and_no_other():
    words = set(LANGUAGES["en"].backchannels)
    opened = pd.DataFrame(generate_conversation("c", 30, 11, stereo=True, turn_openers=1.0).utterances)
    plain = pd.DataFrame(generate_conversation("c", 30, 11, stereo=True).utterances)
    first_word = opened.text.str.split().str[0]
    starts = opened.turn_position == 1
    assert starts.sum() >= 5 and first_word[starts].isin(words).all()
    assert not first_word[~starts].isin(words).any()
    assert not plain.text.str.split().str[0].isin(words).any()  # the default corpus's turns never open so
    assert (opened.label == plain.label).all()  # the same turn-taking, only the words differ


PITCHES_BEFORE_THE_PARAM = [7.2, 11.0, -34.7, -53.3]  # generate_conversation("c", 8, 11, stereo=True) at dfe7470


def test_the_default_draws_nothing_for_turn_openers():
    """At 0 the generator draws what it drew before the param existed (the default corpus is byte for byte the same):
    these are the first final-pitch draws of a seeded conversation then, and an extra draw would move them."""
    table = pd.DataFrame(generate_conversation("c", 8, 11, stereo=True, turn_openers=0.0).utterances)
    assert table.final_pitch_pct.tolist()[:4] == PITCHES_BEFORE_THE_PARAM
