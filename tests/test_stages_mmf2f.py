"""The MM-F2F source end to end without network: the download stage reports every failure, and the
next stage stops with a one-line message instead of a stack trace."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).parents[1]


def run_stage(cwd, stage, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_mmf2f_without_network(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_text("video_id,sentence_id,text,label,start,end,speaker\n"
                   "1BIHGw299eI,1BIHGw299eI_0_0,yes i can hear you,0,4.564,6.706,0\n"
                   "1BIHGw299eI,1BIHGw299eI_1_0,can hear you very well,1,6.125,7.467,0\n"
                   "zzzzzzzzzzz,zzzzzzzzzzz_2_0,right,2,1.0,1.5,1\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = "mmf2f"
    params["mmf2f"]["annotations"] = {"val": str(csv)}
    params["download"].update(retries=0, timeout_s=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    assert run_stage(tmp_path, "source", "--out", "data/source").returncode == 0
    manifest = (tmp_path / "data/source/manifest.csv").read_text()
    assert "https://www.youtube.com/watch?v=1BIHGw299eI" in manifest

    done = run_stage(tmp_path, "download", "--manifest", "data/source/manifest.csv", "--out", "data/raw",
                     "--report", "reports/download.json", "--failures", "reports/download_failures.csv")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "reports/download.json").read_text())
    assert report == {"recordings": 2, "downloaded": 0, "already_present": 0, "failed": 2}
    failures = (tmp_path / "reports/download_failures.csv").read_text()
    assert "1BIHGw299eI" in failures and "zzzzzzzzzzz" in failures
    assert "0 of 2 recordings available, 2 failed" in done.stderr

    stopped = run_stage(tmp_path, "drop_silent", "--utterances", "data/source/utterances.csv", "--audio",
                        "data/raw", "--download-failures", "reports/download_failures.csv", "--out",
                        "data/clean/utterances.csv", "--report", "reports/drop_silent.json", "--details",
                        "reports/drop_silent.csv")
    assert stopped.returncode == 1
    assert "Traceback" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no usable recording: all 2 dropped") and "2 download(s) failed" in last


def params_for(tmp_path, annotations, recordings):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = "mmf2f"
    params["mmf2f"].update(annotations=annotations, recordings=recordings)
    params["download"].update(retries=0, timeout_s=5)
    params["split"].update(val_fraction=0.25, test_fraction=0.25)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))


def talk(video_id, n, shift_every=3):
    """n rows of a two-party talk, 1.6 s apart, as an annotation table would give them."""
    rows, speaker = [], 0
    for i in range(n):
        label = 1 if i % shift_every == shift_every - 1 else 0
        rows.append((video_id, f"{video_id}_{label}_{i}", f"this is what number {i} says about it", label,
                     0.5 + 1.6 * i, 0.5 + 1.6 * i + 1.4, speaker))
        speaker = 1 - speaker if label == 1 else speaker
    return rows


TIMELINE_RATE = 16000


def timeline_recording(table):
    """A stereo recording as a camera would give it: each row's words end at its annotated `end`, on its
    speaker's channel, over a little noise."""
    import numpy as np
    import soxr

    from turnfusion.data.sources import speech

    rate = speech.sample_rate()
    tracks = np.zeros((2, int((table.end.max() + 1.0) * rate)), dtype=np.float32)
    for row in table.itertuples():
        clip = speech.speak(row.text)[: int((row.end - row.start) * rate)]
        end = int(row.end * rate)
        tracks[row.speaker, end - len(clip): end] += clip
    audio = soxr.resample(tracks.T, rate, TIMELINE_RATE)
    return (audio + np.random.default_rng(0).normal(0, 1e-3, audio.shape)).astype(np.float32)


def run_front(tmp_path):
    """source -> download -> drop_silent -> segment, as dvc.yaml runs them; returns the segment stage's result."""
    stages = [("source", "--out", "data/source"),
              ("download", "--manifest", "data/source/manifest.csv", "--out", "data/raw", "--report",
               "reports/download.json", "--failures", "reports/download_failures.csv"),
              ("drop_silent", "--utterances", "data/source/utterances.csv", "--audio", "data/raw",
               "--download-failures", "reports/download_failures.csv", "--out", "data/clean/utterances.csv",
               "--report", "reports/drop_silent.json", "--details", "reports/drop_silent.csv"),
              ("segment", "--utterances", "data/clean/utterances.csv", "--audio", "data/raw", "--out",
               "data/segments", "--report", "reports/segment.json", "--skipped", "reports/segment_skipped.csv")]
    for stage in stages:
        done = run_stage(tmp_path, *stage)
        assert done.returncode == 0, (stage[0], done.stderr[-2000:])
    return {name: json.loads((tmp_path / f"reports/{name}.json").read_text())
            for name in ("download", "drop_silent", "segment")}


def test_local_recordings_of_any_container_run_the_real_path_with_every_bad_row_counted(tmp_path):
    import pandas as pd
    import soundfile as sf
    from conftest import utterance_table

    videos = tmp_path / "videos"
    videos.mkdir()
    rows = []
    for video_id, suffix in [("vidA", ".ogg"), ("vidB", ".wav"), ("vidC", ".flac"), ("vidD", ".flac"),
                             ("vidE", None)]:
        table = utterance_table(talk(video_id, 8))
        rows += talk(video_id, 8)
        if suffix is None:
            continue  # vidE: annotated, but nobody has its recording
        audio = timeline_recording(table)
        if video_id == "vidD":
            audio = audio[: int(8.0 * TIMELINE_RATE)]  # the recording stops before its last rows
        sf.write(videos / f"{video_id}{suffix}", audio, TIMELINE_RATE)
    rows.append(("vidA", "vidA_0_99", "far beyond the end", 0, 300.0, 302.0, 0))
    pd.DataFrame(rows, columns=["video_id", "sentence_id", "text", "label", "start", "end", "speaker"]).to_csv(
        tmp_path / "pool.csv", index=False)
    params_for(tmp_path, {"pool": str(tmp_path / "pool.csv")}, str(videos))

    reports = run_front(tmp_path)
    assert reports["download"] == {"recordings": 5, "downloaded": 4, "already_present": 0, "failed": 1}
    failures = pd.read_csv(tmp_path / "reports/download_failures.csv")
    assert failures.video_id.tolist() == ["vidE"] and "recording file not found" in failures.error[0]
    assert reports["drop_silent"]["kept"] == 4 and reports["drop_silent"]["dropped_missing"] == 1
    segment = reports["segment"]
    # vidD's recording ends at 8 s: its rows ending after it (from the fifth on) are beyond it; vidA's at 300 s too
    assert segment["skipped_beyond_recording"] == 4 + 1
    assert segment["utterances"] + segment["skipped"] == 4 * 8 + 1
    assert sorted(split for split in ("train", "val", "test") if segment[split]["conversations"]) == [
        "test", "train", "val"]
    skipped = pd.read_csv(tmp_path / "reports/segment_skipped.csv")
    assert sorted(skipped.sentence_id) == ["vidA_0_99", "vidD_0_4", "vidD_0_6", "vidD_0_7", "vidD_1_5"]
    assert set(skipped.reason) == {"beyond_recording"}


def test_the_rehearsal_speaks_an_annotation_table_and_the_real_path_runs_on_it(tmp_path):
    import pandas as pd

    rows = [row for v in ("r1", "r2", "r3", "r4") for row in talk(v, 6)]
    pd.DataFrame(rows, columns=["video_id", "sentence_id", "text", "label", "start", "end", "speaker"]).to_csv(
        tmp_path / "pool.csv", index=False)
    params_for(tmp_path, {"pool": str(tmp_path / "pool.csv")}, "rehearsal")
    reports = run_front(tmp_path)
    rehearsal = json.loads((tmp_path / "data/source/rehearsal.json").read_text())
    assert rehearsal["videos"] == 4 and rehearsal["spoken"] == 24 and "no real turn-taking cue" in rehearsal["note"]
    assert reports["download"]["downloaded"] == 4 and reports["drop_silent"]["kept"] == 4
    assert reports["segment"]["utterances"] == 24 and reports["segment"]["skipped"] == 0
    spoken = pd.read_csv(tmp_path / "data/source/utterances.csv")
    assert spoken.audio_start.notna().all() and (spoken.audio_end > spoken.audio_start).all()


def test_a_sentence_id_in_two_annotation_files_is_a_one_line_error(tmp_path):
    import pandas as pd

    columns = ["video_id", "sentence_id", "text", "label", "start", "end", "speaker"]
    pd.DataFrame(talk("x1", 3), columns=columns).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(talk("x1", 2), columns=columns).to_csv(tmp_path / "val.csv", index=False)
    params_for(tmp_path, {"train": str(tmp_path / "train.csv"), "val": str(tmp_path / "val.csv")}, "youtube")
    done = run_stage(tmp_path, "source", "--out", "data/source")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: sentence_id 'x1_0_0' appears in more than one annotation file: ['{tmp_path}/train.csv', "
        f"'{tmp_path}/val.csv']")


def test_where_recordings_come_from_and_bad_recordings_params(tmp_path):
    import pytest

    from turnfusion.config import Mmf2fConfig, ParamsError
    from turnfusion.data.sources.mmf2f import recording_urls
    from turnfusion.schema import DataError

    assert recording_urls(["ab"], "youtube") == ["https://www.youtube.com/watch?v=ab"]
    assert recording_urls(["ab"], "file:///v/{video_id}.m4a") == ["file:///v/ab.m4a"]
    (tmp_path / "ab.mkv").write_bytes(b"x")
    assert recording_urls(["ab", "cd"], str(tmp_path)) == [str(tmp_path / "ab.mkv"), str(tmp_path / "cd.*")]
    with pytest.raises(DataError, match="mmf2f.recordings: 'nowhere' is neither youtube, rehearsal"):
        recording_urls(["ab"], "nowhere")
    with pytest.raises(ParamsError, match=r"mmf2f.annotations key must be one of \['train', 'val', 'test', 'pool'\]"):
        Mmf2fConfig({"training": "a.csv"}, "youtube")
    with pytest.raises(ParamsError, match="mmf2f.annotations is empty"):
        Mmf2fConfig({}, "youtube")
