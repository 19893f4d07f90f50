import numpy as np
import soundfile as sf

from turnfusion.quality import check_recordings


def test_each_bad_recording_gets_its_reason(recording_dir):
    sf.write(recording_dir / "quiet.wav", np.full(44100 * 3, 1e-5, dtype=np.float32), 44100)
    sf.write(recording_dir / "short.wav", np.ones(100, dtype=np.float32) * 0.1, 44100)
    (recording_dir / "empty.wav").write_bytes(b"")
    (recording_dir / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    checks = check_recordings(["v1", "v2", "quiet", "short", "empty", "corrupt", "missing"], recording_dir,
                              min_seconds=1.0, vad_threshold_db=-45, min_active_fraction=0.05)
    reasons = dict(zip(checks.video_id, checks.reason))
    assert reasons == {"v1": "ok", "v2": "ok", "quiet": "silent", "short": "too_short", "empty": "empty",
                       "corrupt": "unreadable", "missing": "missing"}
    assert checks.set_index("video_id").loc["corrupt", "detail"].startswith(str(recording_dir / "corrupt.wav"))
    assert list(checks.keep) == [True, True, False, False, False, False, False]
