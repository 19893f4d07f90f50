"""Shared by the stage entry points: params, reports and the one-line error exit.

Only stages read params.yaml: each builds the config objects of the sections it uses (`config()`) and
passes them whole to the library. With TURNFUSION_READS_LOG set to a folder, a stage run by DVC also
logs what it reads (`tools.reads_log`, CI's check; not imported otherwise).
"""

from __future__ import annotations

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
_reads_log = None  # tools.reads_log while a stage logs its reads


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
    if _reads_log is None:
        return from_params(cls, _params())
    return _reads_log.recorded(from_params(_reads_log.recording(cls), _params()))


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, table) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)



def run(main) -> None:
    """Run a stage's main(); a DataError ends it with a one-line message and exit code 1."""
    global _reads_log
    if os.environ.get("TURNFUSION_READS_LOG") and os.environ.get("DVC_STAGE"):
        from tools import reads_log

        _reads_log = reads_log
        reads_log.start(os.environ["TURNFUSION_READS_LOG"], os.environ["DVC_STAGE"])
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
