import numpy as np
import pandas as pd
import soundfile as sf
from conftest import params_config

from turnfusion.config import DropSilentConfig
from turnfusion.data.drop_silent import active_fraction, check_recordings, drop_silent
from turnfusion.schema import read_utterances

CFG = DropSilentConfig(min_seconds=1.0, energy_threshold_db=-45, min_active_fraction=0.05, vad_threshold=0.5,
                       min_speech_seconds=0.5, min_speech_fraction=0.05)


def speech(seconds: float, rate: int) -> np.ndarray:
    """eSpeak NG speech, repeated to `seconds`, at `rate`."""
    import soxr

    from turnfusion.data.sources import speech as tts

    said = tts.speak("i went to the market yesterday and it was really nice", tts.Voice("en-us+m3"))
    said = soxr.resample(said, tts.sample_rate(), rate).astype(np.float32)
    gap = np.zeros(int(0.3 * rate), np.float32)
    return np.tile(np.concatenate([said, gap]), int(seconds * rate / (len(said) + len(gap))) + 1)[: int(seconds * rate)]


def test_loud_recordings_without_speech_are_dropped_and_speech_is_kept(tmp_path):
    rate, rng = 16000, np.random.default_rng(0)
    said = speech(6, rate)
    level = np.sqrt(np.mean(said[np.abs(said) > 1e-3] ** 2))  # the same level as the speech
    noise = rng.normal(0, level, 6 * rate).astype(np.float32)
    t = np.arange(6 * rate) / rate
    music = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220, 277.2, 329.6, 440, 554.4))
    music = (level * music / np.sqrt(np.mean(music**2))).astype(np.float32)
    for name, wave in {"speech": said, "noise": noise, "music": music}.items():
        sf.write(tmp_path / f"{name}.wav", wave, rate)
    checks = check_recordings(["speech", "noise", "music"], tmp_path, CFG).set_index("video_id")
    in_two = check_recordings(["speech", "noise", "music"], tmp_path, CFG, workers=2).set_index("video_id")
    pd.testing.assert_frame_equal(in_two, checks)  # the same checks, in order, from two processes
    assert checks.reason.to_dict() == {"speech": "ok", "noise": "no_speech", "music": "no_speech"}
    assert checks.loc["speech", "speech_seconds"] > 3 and checks.loc["noise", "speech_seconds"] < 0.5
    assert "torchaudio" not in __import__("sys").modules  # the VAD runs without it


def test_each_bad_recording_gets_its_reason(recording_dir):
    sf.write(recording_dir / "talk.wav", speech(4, 22050), 22050)
    sf.write(recording_dir / "quiet.wav", np.full(44100 * 3, 1e-5, dtype=np.float32), 44100)
    sf.write(recording_dir / "short.wav", np.ones(100, dtype=np.float32) * 0.1, 44100)
    (recording_dir / "empty.wav").write_bytes(b"")
    (recording_dir / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    checks = check_recordings(["talk", "v2", "quiet", "short", "empty", "corrupt", "missing"], recording_dir, CFG)
    reasons = dict(zip(checks.video_id, checks.reason, strict=True))
    assert reasons == {"talk": "ok", "v2": "no_speech", "quiet": "silent", "short": "too_short", "empty": "empty",
                       "corrupt": "unreadable", "missing": "missing"}  # v2: a pure tone
    assert checks.set_index("video_id").loc["corrupt", "detail"].startswith(str(recording_dir / "corrupt.wav"))
    assert list(checks.keep) == [True, False, False, False, False, False, False]


def test_rows_of_dropped_recordings_go_and_the_report_counts_them(recording_dir, tmp_path):
    sf.write(recording_dir / "v1.wav", speech(4, 44100), 44100)
    (tmp_path / "u.csv").write_text("video_id,sentence_id,text,label,start,end,speaker\n"
                                    "v1,a,x,0,0,1,0\nv1,b,y,1,1,2,0\nv9,c,z,0,0,1,1\n,d,w,0,0,1,0\n")
    cfg = params_config(DropSilentConfig)
    kept, checks, report = drop_silent(read_utterances(tmp_path / "u.csv"), recording_dir, cfg)
    assert kept.sentence_id.tolist() == ["a", "b"]
    assert report["recordings"] == 2 and report["kept"] == 1 and report["dropped_missing"] == 1
    assert report["utterances_in"] == 4 and report["utterances_kept"] == 2 and report["seconds_kept"] == 4.0
    assert 2 < report["speech_seconds_kept"] < 4
    assert report["utterances_without_video_id"] == 1  # no recording to check: dropped, and counted


def test_energy_vad_separates_speechlike_from_silence():
    rng = np.random.default_rng(0)
    loud = rng.normal(0, 0.1, 16000).astype(np.float32)
    assert active_fraction(loud, 16000, -45) > 0.95
    assert active_fraction(loud * 1e-4, 16000, -45) == 0.0
