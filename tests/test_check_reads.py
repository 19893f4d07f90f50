from pathlib import Path

from tools.check_reads import Stage, undeclared

REPO = Path(__file__).resolve().parents[1]


def stage(**kw):
    base = dict(name="embed", cmd="python -m stages.embed --tokens data/tokens --out data/embeddings",
                deps=["stages/embed.py", "src/turnfusion/training/embed.py", "data/tokens"], outs=["data/embeddings"],
                params=["model.seed", "text"])
    return Stage(**{**base, **kw})


def test_declared_reads_pass(tmp_path):
    (tmp_path / "data/tokens").mkdir(parents=True)
    reads = ["file stages/embed.py", "file data/tokens/ids.npy", "file data/embeddings/old.npy", "file params.yaml",
             "param model.seed", "param text.max_length"]
    assert undeclared(stage(), reads, tmp_path) == []


def test_undeclared_file_param_and_argument_are_each_reported(tmp_path):
    (tmp_path / "data/tokens").mkdir(parents=True)
    (tmp_path / "models/audio_encoder").mkdir(parents=True)
    cmd = "python -m stages.embed --tokens data/tokens --audio-encoder models/audio_encoder --out data/embeddings"
    reads = ["file models/audio_encoder/config.json", "file src/turnfusion/data/segment.py", "param model.audio_config",
             "param model.seedling"]
    assert undeclared(stage(cmd=cmd), reads, tmp_path) == [
        "embed: command argument models/audio_encoder is not in deps",
        "embed: reads models/audio_encoder/config.json, not in deps",
        "embed: reads src/turnfusion/data/segment.py, not in deps",
        "embed: reads param model.audio_config, not in params",
        "embed: reads param model.seedling, not in params"]


def test_an_output_folder_argument_is_declared_by_the_outputs_under_it(tmp_path):
    (tmp_path / "dvclive/fusion").mkdir(parents=True)
    cmd = "python -m stages.train --live dvclive/fusion"
    assert undeclared(stage(cmd=cmd, outs=["dvclive/fusion/metrics.json"]), [], tmp_path) == []
    assert undeclared(stage(cmd=cmd), [], tmp_path) == ["embed: command argument dvclive/fusion is not in deps"]


def test_mode_equals_directory_arguments_are_checked(tmp_path):
    (tmp_path / "models/fusion").mkdir(parents=True)
    cmd = "python -m stages.evaluate --models fusion=models/fusion"
    assert undeclared(stage(cmd=cmd), [], tmp_path) == ["embed: command argument models/fusion is not in deps"]
    assert undeclared(stage(cmd=cmd, deps=["models/fusion"]), [], tmp_path) == []


def test_dvc_yaml_parses_and_every_code_dependency_exists():
    from conftest import REPO

    from tools.check_reads import dvc_stages

    stages = dvc_stages(REPO)
    assert {s.name for s in stages} >= {"source", "segment", "train@fusion", "evaluate"}
    for stage in stages:
        code = [d for d in stage.deps if d.startswith(("src/", "stages/"))]
        assert code and all((REPO / d).exists() for d in code), stage.name


def test_a_config_read_under_the_reads_log_still_goes_to_worker_processes(monkeypatch):
    import pickle

    from conftest import REPO, params_config

    import stages.common as common
    from tools import reads_log
    from turnfusion.config import DropSilentConfig

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(common, "_reads_log", reads_log)
    monkeypatch.setattr(reads_log, "_reads", set())
    cfg = common.config(DropSilentConfig)
    assert cfg.min_seconds == params_config(DropSilentConfig).min_seconds
    assert reads_log._reads == {"param drop_silent.min_seconds"}
    copy = pickle.loads(pickle.dumps(cfg))  # as multiprocessing sends it
    assert type(copy) is DropSilentConfig and copy == params_config(DropSilentConfig)
    assert "param drop_silent.vad_threshold" in reads_log._reads  # the copy may read any of them


STAGE_SCRIPT = """
import helper  # a project module: the code the stage ran is a read
from stages.common import config, run
from turnfusion.config import TextConfig


def main():
    open("data/input.txt").read()
    open("data/output.txt", "w").write("written, not read")
    config(TextConfig).max_length


run(main)
"""


def test_the_reads_hook_logs_opened_files_imported_modules_and_read_params_only(tmp_path):
    """What tools/reads_log.py records when a stage runs with TURNFUSION_READS_LOG under DVC (DVC_STAGE)."""
    import os
    import shutil
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.txt").write_text("x")
    (tmp_path / "data" / "unread.txt").write_text("x")
    (tmp_path / "helper.py").write_text("")
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    (tmp_path / "tools").symlink_to(REPO / "tools")  # the log's own code, inside the project as in CI
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "TURNFUSION_READS_LOG": str(tmp_path / "reads"), "DVC_STAGE": "demo",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "stage"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = set((tmp_path / "reads" / "demo.txt").read_text().splitlines())
    assert {"file data/input.txt", "file helper.py", "file params.yaml", "file stage.py",
            "param text.max_length"} <= lines
    assert not {"file data/output.txt", "file data/unread.txt", "param text.vocab_size"} & lines
    assert all(line.startswith(("file ", "param ")) for line in lines)
    assert not any(line.startswith("file tools/") for line in lines)  # the check is not what the stage read
    without = subprocess.run([sys.executable, "-m", "stage"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env={**env, "DVC_STAGE": ""})
    assert without.returncode == 0 and (tmp_path / "reads" / "demo.txt").read_text().count("param text") == 1


def test_a_forked_worker_process_logs_its_reads_too(tmp_path):
    import subprocess
    import sys

    script = (f"from tools import reads_log; reads_log.start({str(tmp_path)!r}, 'x')\n"
              "from turnfusion.training.forked import run_forked\n"
              "run_forked([lambda: open('docs/scaling.md').read()[:1]])\n")
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)
    assert "file docs/scaling.md" in (tmp_path / "x.txt").read_text().splitlines()
