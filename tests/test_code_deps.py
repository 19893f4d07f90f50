import shutil
import textwrap
from pathlib import Path

from tools.code_deps import code_of, differences, main

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_code_deps_are_what_each_stage_imports():
    """Fails when a stage's code deps in dvc.yaml are not its import graph: run `python -m tools.code_deps
    --write` and commit dvc.yaml."""
    assert main(["--root", str(REPO)]) == 0


def test_stages_that_only_read_a_store_do_not_depend_on_the_code_that_wrote_it():
    writers = {"src/turnfusion/data/segment.py", "src/turnfusion/data/splits.py", "src/turnfusion/data/tokenize.py"}
    for stage in ("stages.embed", "stages.pretrain_audio", "stages.probe", "stages.train"):
        code = set(code_of(stage, REPO))
        assert "src/turnfusion/data/stores.py" in code and not writers & code, stage
    # train writes the model's processor config (the input policy module, which may call the VAD); the others
    # never meet the VAD
    for stage in ("stages.embed", "stages.pretrain_audio", "stages.probe"):
        assert "src/turnfusion/vad.py" not in code_of(stage, REPO)


def project(tmp_path: Path, body: str) -> Path:
    root = tmp_path / "repo"
    for name, text in {
        "stages/__init__.py": "",
        "stages/a.py": body,
        "src/turnfusion/__init__.py": "",
        "src/turnfusion/x.py": "import numpy\n",
        "src/turnfusion/y.py": "from . import x\n",
        "src/turnfusion/z.py": "",
        "src/turnfusion/types.py": "",
        "src/turnfusion/sub/__init__.py": "",
        "src/turnfusion/sub/w.py": "",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_lazy_relative_and_package_imports_count_and_type_checking_ones_do_not(tmp_path):
    root = project(tmp_path, """
        from typing import TYPE_CHECKING
        from turnfusion.y import x
        if TYPE_CHECKING:
            from turnfusion import types
        def later():
            from turnfusion.sub.w import thing
    """)
    assert code_of("stages.a", root) == ["src/turnfusion/__init__.py", "src/turnfusion/sub/__init__.py",
                                         "src/turnfusion/sub/w.py", "src/turnfusion/x.py", "src/turnfusion/y.py",
                                         "stages/__init__.py", "stages/a.py"]


def test_a_new_import_makes_the_check_fail_until_dvc_yaml_is_rewritten(tmp_path, capsys):
    root = project(tmp_path, "import turnfusion.x\n")
    (root / "dvc.yaml").write_text(textwrap.dedent("""
        stages:
          a:
            cmd: python -m stages.a --out out  # a comment that survives
            deps:
            - stages/__init__.py
            - stages/a.py
            - src/turnfusion/__init__.py
            - src/turnfusion/x.py
            - data/input
    """))
    assert main(["--root", str(root)]) == 0
    (root / "stages" / "a.py").write_text("import turnfusion.x\nimport turnfusion.z\n")
    assert main(["--root", str(root)]) == 1
    assert "a: code deps missing ['src/turnfusion/z.py']" in capsys.readouterr().out
    assert main(["--root", str(root), "--write"]) == 0
    assert main(["--root", str(root)]) == 0
    written = (root / "dvc.yaml").read_text()
    assert "src/turnfusion/z.py" in written and "- data/input" in written and "a comment that survives" in written
    (root / "stages" / "a.py").write_text("")
    shutil.rmtree(root / "src" / "turnfusion" / "sub")
    from ruamel.yaml import YAML

    assert differences(YAML().load(root / "dvc.yaml"), root) == [
        "a: code deps not run ['src/turnfusion/__init__.py', 'src/turnfusion/x.py', 'src/turnfusion/z.py']"]
