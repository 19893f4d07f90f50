import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone

from turnfusion.download import download_all, download_audio


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


def test_ytdlp_downloads_from_local_http_server_and_extracts_wav(http_server, tmp_path):
    root, base = http_server
    sf.write(root / "talk.flac", np.stack([tone(2, 44100), tone(2, 44100, 440)], axis=1), 44100)
    out = tmp_path / "raw"
    result = download_audio("talk", f"{base}/talk.flac", out, retries=0, timeout_s=10)
    assert result.status == "downloaded", result.error
    info = sf.info(out / "talk.wav")
    assert info.format == "WAV" and info.samplerate == 44100 and info.channels == 2
    assert abs(info.frames - 2 * 44100) < 2000
    # a second run does not fetch again
    assert download_audio("talk", f"{base}/talk.flac", out).status == "present"


def test_changed_local_source_is_fetched_again(tmp_path):
    src = tmp_path / "a.flac"
    sf.write(src, tone(1, 44100), 44100)
    out = tmp_path / "raw"
    assert download_audio("a", str(src), out).status == "downloaded"
    sf.write(src, tone(2, 44100), 44100)
    assert download_audio("a", str(src), out).status == "downloaded"
    assert sf.info(out / "a.wav").frames == 2 * 44100


def test_failures_are_recorded_not_raised(http_server, tmp_path):
    root, base = http_server
    (root / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    sf.write(root / "good.flac", tone(1, 44100), 44100)
    manifest = pd.DataFrame({"video_id": ["good", "missing", "broken"],
                             "url": [f"{base}/good.flac", f"{base}/missing.flac", f"{base}/broken.flac"]})
    results = download_all(manifest, tmp_path / "raw", retries=0, timeout_s=5, progress=False)
    status = dict(zip(results.video_id, results.status, strict=True))
    assert status == {"good": "downloaded", "missing": "failed", "broken": "failed"}
    assert "404" in results.set_index("video_id").loc["missing", "error"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["good.source", "good.wav"]


def test_a_moved_project_fetches_nothing_again(tmp_path, monkeypatch):
    import shutil

    project = tmp_path / "project"
    (project / "source").mkdir(parents=True)
    sf.write(project / "source" / "a.flac", tone(1, 44100), 44100)
    monkeypatch.chdir(project)
    assert download_audio("a", "source/a.flac", Path("raw")).status == "downloaded"
    shutil.copytree(project, tmp_path / "moved")  # copy2: contents and mtimes, as a moved project keeps them
    monkeypatch.chdir(tmp_path / "moved")
    assert download_audio("a", "source/a.flac", Path("raw")).status == "present"


def test_an_interrupted_download_leaves_nothing_half_done(tmp_path, monkeypatch):
    import yt_dlp

    src = tmp_path / "a.flac"
    sf.write(src, tone(1, 44100), 44100)
    assert download_audio("a", str(src), tmp_path / "clean").status == "downloaded"
    real = yt_dlp.YoutubeDL.download

    def interrupted(self, urls):
        (tmp_path / "raw" / "a.flac.part").write_bytes(b"half")
        raise KeyboardInterrupt

    (tmp_path / "raw").mkdir()
    monkeypatch.setattr(yt_dlp.YoutubeDL, "download", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download_audio("a", str(src), tmp_path / "raw")
    monkeypatch.setattr(yt_dlp.YoutubeDL, "download", real)
    assert download_audio("a", str(src), tmp_path / "raw").status == "downloaded"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["a.source", "a.wav"]
    assert (tmp_path / "raw" / "a.wav").read_bytes() == (tmp_path / "clean" / "a.wav").read_bytes()
