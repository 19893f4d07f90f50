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


def test_keep_end_on_a_hop_cuts_whole_hops_from_the_start():
    x = np.arange(10)
    assert keep_end(x, 4, hop=3).tolist() == [6, 7, 8, 9]  # 6 cut: two hops
    assert keep_end(x, 5, hop=3).tolist() == [6, 7, 8, 9]  # 5 would be cut: whole hops, one sample fewer kept
    assert keep_end(x, 5, hop=1).tolist() == [5, 6, 7, 8, 9]
    assert keep_end(x, 10, hop=3).tolist() == x.tolist()
    for n in range(1, 2000, 37):  # never longer than asked, never a hop shorter, always a whole number of hops in
        kept = keep_end(np.arange(n), 500, hop=320)
        assert len(kept) <= 500 and (n <= 500 or len(kept) > 500 - 320) and kept[0] % 320 == 0
