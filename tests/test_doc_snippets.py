"""Every Python block of the README and docs/live_agents.md runs as written, on a small exported model, with stand-ins
for what a reader brings (`conversation`, `microphone`, the LLM `context`): a renamed class, argument or import in
the live API fails here before a reader finds it."""

import asyncio
import importlib.util
import re

import numpy as np
import pytest
import soxr
from conftest import REPO
from test_export import exported  # noqa: F401  (the fixture)

from turnfusion.data.sources import speech
from turnfusion.data.sources.rendering import trim_silence

BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SNIPPETS = [(doc, k, code) for doc in ("README.md", "docs/live_agents.md")
            for k, code in enumerate(BLOCK.findall((REPO / doc).read_text()))]


def stand_ins() -> dict:
    voiced = trim_silence(speech.speak("so how was your trip to the museum", speech.Voice("en-us+m3")))
    at_48k = soxr.resample(voiced, speech.sample_rate(), 48000).astype(np.float32)
    talk = np.concatenate([np.zeros(4800, np.float32), at_48k, np.zeros(48000, np.float32)])
    wave = (0.1 * np.sin(np.arange(16000) / 9)).astype(np.float32)
    names = {"conversation": [("i went to the market", wave, 0), ("oh nice", wave[:8000], 1)],
             "microphone": [talk[i:i + 12000] for i in range(0, len(talk), 12000)]}
    if importlib.util.find_spec("pipecat"):
        from pipecat.processors.aggregators.llm_context import LLMContext

        names["context"] = LLMContext()
    return names


def test_the_docs_have_the_snippets_this_test_runs():
    assert len(SNIPPETS) >= 4
    assert {doc for doc, _, _ in SNIPPETS} == {"README.md", "docs/live_agents.md"}


@pytest.mark.parametrize(("doc", "k", "code"), SNIPPETS, ids=[f"{d}#{k}" for d, k, _ in SNIPPETS])
def test_a_python_block_runs_as_written(doc, k, code, exported):  # noqa: F811
    if "pipecat" in code and importlib.util.find_spec("pipecat") is None:
        pytest.skip("pipecat (turnfusion[pipecat]) not installed")
    loop = asyncio.new_event_loop()  # a script's own, as at its start (an earlier asyncio.run left none set)
    asyncio.set_event_loop(loop)
    try:
        exec(compile(code.replace('"models/fusion-onnx"', repr(str(exported))), f"{doc} block {k}", "exec"),
             stand_ins())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
