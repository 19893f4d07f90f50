"""The live runtime is Apache-2.0 and the pipeline GPL-3.0-or-later (README "Licences"): a module is marked Apache-2.0
exactly when the live entry points run it, so a live module that came to import pipeline code (which may use eSpeak NG
or Praat, both GPL) fails here instead of shipping a GPL dependency in the permissive runtime."""

from pathlib import Path

from conftest import REPO

from tools.code_deps import code_of

LIVE_ENTRIES = ("turnfusion.serving.onnx_backend", "turnfusion.live.streaming", "turnfusion.live.pipecat_turns",
                "turnfusion.live.livekit_turns")
APACHE = "# SPDX-License-Identifier: Apache-2.0"
GPL_LIBRARIES = ("espeakng_loader", "parselmouth")  # eSpeak NG and Praat


def live_runtime() -> set[str]:
    return {path for entry in LIVE_ENTRIES for path in code_of(entry, REPO)}


def test_the_modules_marked_apache_are_exactly_those_the_live_runtime_runs():
    marked = {p.relative_to(REPO).as_posix() for p in (REPO / "src").rglob("*.py")
              if p.read_text(encoding="utf-8").startswith(APACHE + "\n")}
    assert marked == live_runtime()


def test_no_live_module_uses_a_gpl_library_and_the_pipeline_that_does_is_gpl():
    for path in sorted(live_runtime()):
        text = (REPO / path).read_text(encoding="utf-8")
        assert not any(library in text for library in GPL_LIBRARIES), path
    users = {p.relative_to(REPO).as_posix() for p in (REPO / "src").rglob("*.py")
             if any(library in p.read_text(encoding="utf-8") for library in GPL_LIBRARIES)}
    assert users and not users & live_runtime()  # the speech of the demo corpus, the prosody of the probes


def test_both_licence_texts_ship_with_the_package():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "GPL-3.0-or-later AND Apache-2.0"
    assert all(Path(REPO / name).is_file() for name in project["license-files"])
    assert "Apache License" in (REPO / "LICENSE-APACHE").read_text()[:200]
    assert "GNU GENERAL PUBLIC LICENSE" in (REPO / "LICENSE").read_text()[:200]
