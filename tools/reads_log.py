"""The reads log of CI (`.ci/run`): with TURNFUSION_READS_LOG set to a folder, a stage run by DVC (stages/common.py
starts this only then) logs every project file it opens or imports and every param it reads to
`<folder>/<stage>.txt`; `python -m tools.check_reads` compares them with the stage's `deps` and `params` in dvc.yaml.
This module's own files are not logged: they are the check, not the stage."""

from __future__ import annotations

import atexit
import dataclasses
import multiprocessing.util
import os
import sys
from pathlib import Path

_reads: set[str] = set()
OWN_FOLDER = "tools"


def start(folder: str, stage: str) -> None:
    """Record every file under the working directory that this process opens for reading, and at exit the files
    of every module it ran."""
    root = Path.cwd()

    def note(path) -> None:
        """Record `path` if it is a file of the project (not of a hidden folder such as .venv or .dvc)."""
        path = Path(path).absolute()
        if path.is_relative_to(root) and path.is_file():
            first = path.relative_to(root).parts[0]
            if not first.startswith(".") and first != OWN_FOLDER:
                _reads.add(f"file {path.relative_to(root).as_posix()}")

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            if "r" in mode and "+" not in mode:
                note(os.fsdecode(args[0]))

    sys.addaudithook(hook)

    def write() -> None:
        for module in list(sys.modules.values()):  # the code it ran, imported before the hook too
            if getattr(module, "__file__", None):
                note(module.__file__)
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / f"{stage}.txt", "a") as f:
            f.write("".join(f"{line}\n" for line in sorted(_reads)))

    atexit.register(write)
    # a forked worker process (multiprocessing: the stages' pools, training/forked.py) ends without atexit: it writes
    # its reads when multiprocessing finalizes it
    multiprocessing.util.register_after_fork(write, lambda w: multiprocessing.util.Finalize(None, w, exitpriority=100))


def recording(cls):
    """`cls` (a params dataclass) as a subclass whose objects record each param read (`section.key`)."""
    names = {f.name for f in dataclasses.fields(cls)}

    def __getattribute__(self, name):
        if name in names and self.__dict__.get("_record"):
            _reads.add(f"param {cls.section}.{name}")
        return object.__getattribute__(self, name)

    def __reduce__(self):
        """Pickled (e.g. for a worker process) as the plain config; the copy may read any of its params."""
        _reads.update(f"param {cls.section}.{name}" for name in names)
        return cls, tuple(object.__getattribute__(self, f.name) for f in dataclasses.fields(cls))

    return type(cls.__name__, (cls,), {"__getattribute__": __getattribute__, "__reduce__": __reduce__})


def recorded(made):
    """A config made by a `recording` class, recording from here on (what __post_init__ checked is not a read)."""
    object.__setattr__(made, "_record", True)
    return made
