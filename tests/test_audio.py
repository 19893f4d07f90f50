import numpy as np
import pytest
from conftest import rms_db

from turnfusion.audio import keep_end, load_mono, read_audio, select_channel
from turnfusion.schema import DataError


def test_stereo_44k_becomes_mono_16k(recording_dir):
    mono = load_mono(recording_dir / "v1.wav", 16000)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert len(mono) == 4 * 16000


def test_other_sample_rate_is_resampled(recording_dir):
    assert len(load_mono(recording_dir / "v2.wav", 16000)) == 3 * 16000


def test_speaker_channel_selection(recording_dir):
    samples, _ = read_audio(recording_dir / "v1.wav")
    left, right = select_channel(samples, 0), select_channel(samples, 1)
    assert rms_db(left) > rms_db(right) + 6  # left tone is 0.3, right 0.1
    with pytest.raises(DataError, match="channel 2"):
        select_channel(samples, 2)


def test_corrupt_and_empty_and_missing_files_raise_clear_errors(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(40))
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match="bad.wav: unreadable"):
        read_audio(tmp_path / "bad.wav")
    with pytest.raises(DataError, match="empty.wav: recording is an empty"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(DataError, match="nope.wav: recording not found"):
        read_audio(tmp_path / "nope.wav")


def test_keep_end_keeps_the_last_samples():
    x = np.arange(10)
    assert keep_end(x, 4).tolist() == [6, 7, 8, 9]
    assert keep_end(x, 20).tolist() == x.tolist()
