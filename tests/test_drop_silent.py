import numpy as np
import soundfile as sf
from conftest import params_config

from turnfusion.config import DropSilentConfig
from turnfusion.drop_silent import active_fraction, check_recordings, drop_silent
from turnfusion.schema import read_utterances

CFG = DropSilentConfig(min_seconds=1.0, vad_threshold_db=-45, min_active_fraction=0.05)


def test_each_bad_recording_gets_its_reason(recording_dir):
    sf.write(recording_dir / "quiet.wav", np.full(44100 * 3, 1e-5, dtype=np.float32), 44100)
    sf.write(recording_dir / "short.wav", np.ones(100, dtype=np.float32) * 0.1, 44100)
    (recording_dir / "empty.wav").write_bytes(b"")
    (recording_dir / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    checks = check_recordings(["v1", "v2", "quiet", "short", "empty", "corrupt", "missing"], recording_dir, CFG)
    reasons = dict(zip(checks.video_id, checks.reason, strict=True))
    assert reasons == {"v1": "ok", "v2": "ok", "quiet": "silent", "short": "too_short", "empty": "empty",
                       "corrupt": "unreadable", "missing": "missing"}
    assert checks.set_index("video_id").loc["corrupt", "detail"].startswith(str(recording_dir / "corrupt.wav"))
    assert list(checks.keep) == [True, True, False, False, False, False, False]


def test_rows_of_dropped_recordings_go_and_the_report_counts_them(recording_dir, tmp_path):
    (tmp_path / "u.csv").write_text("video_id,sentence_id,text,label,start,end,speaker\n"
                                    "v1,a,x,0,0,1,0\nv1,b,y,1,1,2,0\nv9,c,z,0,0,1,1\n,d,w,0,0,1,0\n")
    cfg = params_config(DropSilentConfig)
    kept, checks, report = drop_silent(read_utterances(tmp_path / "u.csv"), recording_dir, cfg)
    assert kept.sentence_id.tolist() == ["a", "b"]
    assert report["recordings"] == 2 and report["kept"] == 1 and report["dropped_missing"] == 1
    assert report["utterances_in"] == 4 and report["utterances_kept"] == 2 and report["seconds_kept"] == 4.0
    assert report["utterances_without_video_id"] == 1  # no recording to check: dropped, and counted


def test_energy_vad_separates_speechlike_from_silence():
    rng = np.random.default_rng(0)
    loud = rng.normal(0, 0.1, 16000).astype(np.float32)
    assert active_fraction(loud, 16000, -45) > 0.95
    assert active_fraction(loud * 1e-4, 16000, -45) == 0.0
