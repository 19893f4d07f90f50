import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import params_config, tone

from turnfusion.config import DownloadConfig
from turnfusion.data.download import download_all, download_audio
from turnfusion.errors import DataError


def dl(**overrides) -> DownloadConfig:
    """The shipped download params with `overrides`."""
    return params_config(DownloadConfig, **overrides)


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 serving `tmp_path/www`."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ytdlp_downloads_from_local_http_server_and_extracts_16k_flac(http_server, tmp_path):
    root, base = http_server
    # already FLAC, at another rate: it must still be converted (yt-dlp's own extractor would skip it)
    sf.write(root / "talk.flac", np.stack([tone(2, 44100), tone(2, 44100, 440)], axis=1), 44100)
    out = tmp_path / "raw"
    result = download_audio("talk", f"{base}/talk.flac", out, dl(retries=0, timeout_s=10))
    assert result.status == "downloaded", result.error
    info = sf.info(out / "talk.flac")
    assert info.format == "FLAC" and info.samplerate == 16000 and info.channels == 2
    assert abs(info.frames - 2 * 16000) < 800
    assert sorted(p.name for p in out.iterdir()) == ["talk.flac", "talk.source"]  # nothing left behind
    # a second run does not fetch again; another rate or mono does
    assert download_audio("talk", f"{base}/talk.flac", out, dl()).status == "present"
    assert download_audio("talk", f"{base}/talk.flac", out, dl(mono=True)).status == "downloaded"
    assert sf.info(out / "talk.flac").channels == 1


def test_a_video_container_gives_its_audio_and_a_missing_local_file_is_a_recorded_failure(tmp_path):
    import subprocess

    import imageio_ffmpeg

    video = tmp_path / "clip.mp4"  # a real video file: test pattern + a 440 Hz tone, 2 s
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "mpeg4",
                    "-c:a", "aac", str(video)], check=True)
    out = tmp_path / "raw"
    assert download_audio("clip", video.as_uri(), out, dl()).status == "downloaded"
    info = sf.info(out / "clip.flac")
    assert info.samplerate == 16000 and 1.9 < info.duration < 2.2
    missing = download_audio("gone", str(tmp_path / "videos" / "gone.m4a"), out, dl())
    assert missing.status == "failed" and missing.error == f"recording file not found: {tmp_path}/videos/gone.m4a"


def test_changed_local_source_is_fetched_again(tmp_path):
    src = tmp_path / "a.flac"
    sf.write(src, tone(1, 44100), 44100)
    out = tmp_path / "raw"
    assert download_audio("a", str(src), out, dl()).status == "downloaded"
    sf.write(src, tone(2, 44100), 44100)
    assert download_audio("a", str(src), out, dl()).status == "downloaded"
    assert sf.info(out / "a.flac").frames == 2 * 16000


def test_a_source_regenerated_byte_for_byte_is_not_fetched_again_and_stamps_repeat(tmp_path):
    import os

    src = tmp_path / "a.flac"
    sf.write(src, tone(1, 44100), 44100)
    assert download_audio("a", str(src), tmp_path / "raw", dl()).status == "downloaded"
    stamp = (tmp_path / "raw" / "a.source").read_text()
    data = src.read_bytes()
    src.unlink()
    src.write_bytes(data)  # the same bytes, written again (a fresh clone's demo corpus)
    os.utime(src, ns=(1, 1))
    assert download_audio("a", str(src), tmp_path / "raw", dl()).status == "present"
    assert (tmp_path / "raw" / "a.source").read_text() == stamp  # the stage's output does not depend on mtimes


def test_failures_are_recorded_not_raised(http_server, tmp_path):
    root, base = http_server
    (root / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    sf.write(root / "good.flac", tone(1, 44100), 44100)
    manifest = pd.DataFrame({"video_id": ["good", "missing", "broken"],
                             "url": [f"{base}/good.flac", f"{base}/missing.flac", f"{base}/broken.flac"]})
    results = download_all(manifest, tmp_path / "raw", dl(retries=0, timeout_s=5), progress=False)
    status = dict(zip(results.video_id, results.status, strict=True))
    assert status == {"good": "downloaded", "missing": "failed", "broken": "failed"}
    assert "404" in results.set_index("video_id").loc["missing", "error"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["good.flac", "good.source"]


def test_a_moved_project_fetches_nothing_again(tmp_path, monkeypatch):
    import shutil

    project = tmp_path / "project"
    (project / "source").mkdir(parents=True)
    sf.write(project / "source" / "a.flac", tone(1, 44100), 44100)
    monkeypatch.chdir(project)
    assert download_audio("a", "source/a.flac", Path("raw"), dl()).status == "downloaded"
    shutil.copytree(project, tmp_path / "moved")  # copy2: contents and mtimes, as a moved project keeps them
    monkeypatch.chdir(tmp_path / "moved")
    assert download_audio("a", "source/a.flac", Path("raw"), dl()).status == "present"


def test_an_interrupted_download_leaves_nothing_half_done(tmp_path, monkeypatch):
    import yt_dlp

    src = tmp_path / "a.flac"
    sf.write(src, tone(1, 44100), 44100)
    assert download_audio("a", str(src), tmp_path / "clean", dl()).status == "downloaded"
    real = yt_dlp.YoutubeDL.download

    def interrupted(self, urls):
        (tmp_path / "raw" / ".a.fetch").mkdir()
        (tmp_path / "raw" / ".a.fetch" / "audio.flac.part").write_bytes(b"half")
        raise KeyboardInterrupt

    (tmp_path / "raw").mkdir()
    monkeypatch.setattr(yt_dlp.YoutubeDL, "download", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download_audio("a", str(src), tmp_path / "raw", dl())
    monkeypatch.setattr(yt_dlp.YoutubeDL, "download", real)
    assert download_audio("a", str(src), tmp_path / "raw", dl()).status == "downloaded"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["a.flac", "a.source"]
    assert (tmp_path / "raw" / "a.flac").read_bytes() == (tmp_path / "clean" / "a.flac").read_bytes()


def test_recordings_fetched_at_once_are_the_files_one_at_a_time_makes_in_the_manifests_order(http_server, tmp_path):
    root, base = http_server
    names = [f"r{k}" for k in range(6)]
    for k, name in enumerate(names):
        sf.write(root / f"{name}.flac", tone(1 + k % 3, 44100) * (0.2 + 0.1 * k), 44100)
    manifest = pd.DataFrame({"video_id": names[::-1] + ["gone"], "url": [f"{base}/{n}.flac" for n in names[::-1]]
                             + [f"{base}/gone.flac"]})
    one = download_all(manifest, tmp_path / "one", dl(workers=1, retries=0, timeout_s=5), progress=False)
    many = download_all(manifest, tmp_path / "many", dl(workers=4, retries=0, timeout_s=5), progress=False)
    pd.testing.assert_frame_equal(one, many)
    assert list(many.video_id) == list(manifest.video_id) and list(many.status) == ["downloaded"] * 6 + ["failed"]
    for name in names:
        assert (tmp_path / "one" / f"{name}.flac").read_bytes() == (tmp_path / "many" / f"{name}.flac").read_bytes()


def test_a_manifest_that_lists_a_recording_twice_is_refused_before_any_download(tmp_path):
    manifest = pd.DataFrame({"video_id": ["a", "b", "A"], "url": ["x", "y", "z"]})
    with pytest.raises(DataError, match=r"manifest row 4: video_id 'A' is listed twice"):
        download_all(manifest, tmp_path / "raw", dl(), progress=False)
    assert not (tmp_path / "raw").exists()


def test_an_error_stops_the_downloads_still_queued(tmp_path, monkeypatch):
    """A manifest of the real corpus is hours of downloads: an error (or Ctrl-C) must not wait for all of them."""
    import threading

    from turnfusion.data import download

    started, gate = [], threading.Event()

    def failing(video_id, url, out_dir, cfg):
        started.append(video_id)
        if video_id == "r0":
            raise OSError("disk full")
        gate.wait(5)
        return download.DownloadResult(video_id, "downloaded")

    monkeypatch.setattr(download, "download_audio", failing)
    manifest = pd.DataFrame({"video_id": [f"r{k}" for k in range(20)], "url": ["x"] * 20})
    with pytest.raises(OSError, match="disk full"):
        download_all(manifest, tmp_path / "raw", dl(workers=2), progress=False)
    gate.set()
    assert len(started) < 20
