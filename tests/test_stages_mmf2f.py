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
