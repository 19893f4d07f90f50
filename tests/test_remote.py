"""A DVC remote that a team shares: an S3-compatible bucket, here moto's S3 server on 127.0.0.1 (the same API
as AWS S3, MinIO or Ceph). One clone runs the pipeline and pushes; a fresh clone pulls and has nothing to
recompute; an experiment pushed with `dvc exp push` is pulled and applied in a third."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dvc_s3")
moto_server = pytest.importorskip("moto.server")

BUCKET = "turnfusion-team"


@pytest.fixture
def s3(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket=BUCKET)
    yield f"http://{host}:{port}"
    server.stop()


def sh(cwd: Path, *args: str) -> str:
    dvc = [sys.executable, "-m", "dvc"] if args[0] == "dvc" else [args[0]]
    done = subprocess.run([*dvc, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def test_push_from_one_clone_pull_into_a_fresh_one_and_repro_is_a_no_op(s3, tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    sh(first, "git", "init", "-q")
    sh(first, "dvc", "init", "-q")
    (first / "params.yaml").write_text("make: {rows: 50}\n")
    (first / "make.py").write_text(
        "import yaml, pathlib\n"
        "n = yaml.safe_load(open('params.yaml'))['make']['rows']\n"
        "pathlib.Path('data').mkdir(exist_ok=True)\n"
        "pathlib.Path('data/table.csv').write_text(''.join(f'{i},{i * i}\\n' for i in range(n)))\n"
        "pathlib.Path('models').mkdir(exist_ok=True)\n"
        "pathlib.Path('models/model.txt').write_text(str(sum(i * i for i in range(n))))\n")
    sh(first, "dvc", "stage", "add", "-q", "-n", "make", "-p", "make", "-d", "make.py", "-o", "data", "-o", "models",
       f"{sys.executable} make.py")
    sh(first, "dvc", "repro", "-q")
    # what the README tells a team to run once, with their bucket and, for MinIO or another S3 API, its endpoint
    sh(first, "dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/turnfusion")
    sh(first, "dvc", "remote", "modify", "team", "endpointurl", s3)
    sh(first, "git", "add", "-A")
    sh(first, "git", "commit", "-qm", "pipeline run")
    sh(first, "dvc", "push", "-q")

    second = tmp_path / "second"
    sh(tmp_path, "git", "clone", "-q", str(first), str(second))
    assert not (second / "data").exists()
    sh(second, "dvc", "pull", "-q")
    assert (second / "models/model.txt").read_text() == (first / "models/model.txt").read_text()
    assert (second / "data/table.csv").read_bytes() == (first / "data/table.csv").read_bytes()
    assert "Data and pipelines are up to date" in sh(second, "dvc", "status")
    assert "didn't change, skipping" in sh(second, "dvc", "repro")  # restored, nothing recomputed
    shutil.rmtree(second / ".dvc" / "cache")
    sh(second, "dvc", "pull", "-q")  # every object really is in the bucket, not only in a local cache
    assert (second / "models/model.txt").exists()

    # an experiment, shared (`dvc exp push`): its git ref through the git remote, its outputs through the bucket
    origin = tmp_path / "origin.git"
    sh(tmp_path, "git", "init", "-q", "--bare", str(origin))
    sh(first, "git", "remote", "add", "origin", str(origin))
    sh(first, "git", "push", "-q", "origin", "HEAD")
    sh(first, "dvc", "exp", "run", "-q", "-S", "make.rows=80", "--name", "rows80")
    sh(first, "dvc", "exp", "push", "origin", "rows80")
    third = tmp_path / "third"
    sh(tmp_path, "git", "clone", "-q", str(origin), str(third))
    sh(third, "dvc", "exp", "pull", "origin", "rows80")
    sh(third, "dvc", "exp", "apply", "rows80")
    assert (third / "models/model.txt").read_text() == str(sum(i * i for i in range(80)))
