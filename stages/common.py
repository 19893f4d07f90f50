"""Shared by the stage entry points: params, logging, reports and the one-line error exit.

The library never reads params.yaml; stages read it here and pass plain arguments.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import yaml

from turnfusion.schema import DataError


def params(section: str, path: str = "params.yaml") -> dict:
    with open(path) as f:
        return yaml.safe_load(f)[section]


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, table) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def run(main) -> None:
    """Run a stage's main(); a DataError ends it with a one-line message and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        main()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    logging.getLogger("stage").info("done in %.1f s", time.perf_counter() - started)
