"""Shared by the stage entry points: params, reports, the one-line error exit, and the reads log.

Only stages read params.yaml: each builds the config objects of the sections it uses (`config()`) and
passes them whole to the library. With TURNFUSION_READS_LOG set to a folder, a stage run by DVC also
logs every file it opens and every param it reads to `<folder>/<stage>.txt`, which
`python -m tools.check_reads` compares with the stage's `deps` and `params` in dvc.yaml.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path

import yaml

from turnfusion.threads import limit_threads

limit_threads()  # before any stage module imports torch: its pools use the cores this process was given

from turnfusion.config import ParamsError, from_params, validate_params  # noqa: E402
from turnfusion.errors import DataError  # noqa: E402

PARAMS_FILE = "params.yaml"
_reads: set[str] = set()
_logging_reads = False


@functools.cache
def _params() -> dict:
    """params.yaml, every section checked (types, ranges, names) before the stage does any work."""
    try:
        with open(PARAMS_FILE) as f:
            params = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"{PARAMS_FILE}: cannot be read ({' '.join(str(exc).split())})") from None
    validate_params(params)
    return params


def config(cls):
    """The config object of `cls.section`, built from params.yaml; when reads are logged, it records each
    param the stage reads (`section.key`)."""
    params = _params()
    if not _logging_reads:
        return from_params(cls, params)
    made = from_params(_recording(cls), params)
    object.__setattr__(made, "_record", True)  # from here on: what __post_init__ checked is not a read
    return made


def _recording(cls):
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


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, table) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def _log_reads(folder: str, stage: str) -> None:
    """Record every file under the working directory that this process opens for reading."""
    global _logging_reads
    _logging_reads = True
    root = Path.cwd()

    def note(path) -> None:
        """Record `path` if it is a file of the project (not of a hidden folder such as .venv or .dvc)."""
        path = Path(path).absolute()
        if path.is_relative_to(root) and path.is_file() and not path.relative_to(root).parts[0].startswith("."):
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


def run(main) -> None:
    """Run a stage's main(); a DataError ends it with a one-line message and exit code 1."""
    if os.environ.get("TURNFUSION_READS_LOG") and os.environ.get("DVC_STAGE"):
        _log_reads(os.environ["TURNFUSION_READS_LOG"], os.environ["DVC_STAGE"])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        _params()  # every param checked before the stage reads any input
        main()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    seconds, peak = time.perf_counter() - started, peak_rss_mb()
    logging.getLogger("stage").info("done in %.1f s, peak RSS %.0f MB", seconds, peak)
    # one JSON line per stage run (its main process's), for bench/scaling.py
    if os.environ.get("TURNFUSION_RESOURCES_LOG") and os.environ.get("RANK", "0") == "0":
        with open(os.environ["TURNFUSION_RESOURCES_LOG"], "a") as f:
            f.write(json.dumps({"stage": os.environ.get("DVC_STAGE", " ".join(sys.argv[1:3])),
                                "seconds": round(seconds, 1), "peak_rss_mb": round(peak)}) + "\n")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished child processes (worker pools), in MB; the
    largest of the two, since they do not all run at once."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB
