# SPDX-License-Identifier: Apache-2.0
"""A model folder's JSON files (config.json, preprocessor_config.json, manifest.json), read with bounds: they may
come from a stranger. Import-light: the processor, both backends and the live session read them."""

from __future__ import annotations

import json
from pathlib import Path

from turnfusion.errors import DataError, one_line

PROCESSOR_FILE = "preprocessor_config.json"  # a processor config: in a model folder, an export, the token store
AUDIO_POLICY_FILE = "audio_policy.json"  # the segment store's half of it (`processing.ProcessorConfig.audio_policy`)
MAX_JSON_BYTES = 16 * 2**20  # a model folder's config, processor config or manifest is a few KB
MAX_JSON_DEPTH = 32  # they nest 3 levels; a deeper file is hostile (200k levels overflow the parser's stack)


def json_object(path: Path, what: str = "a model folder's JSON") -> dict:
    """A model folder's JSON file (config, processor config, manifest; or `what` else) as a dict, or a DataError
    naming it: size and nesting are bounded before it is parsed."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"{path}: {path.stat().st_size} bytes; {what} is at most "
                            f"{MAX_JSON_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise DataError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels; not {what}")
        value = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, 5000 digits
        raise DataError(f"{path}: not JSON ({one_line(exc, 120)})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: not a JSON object")
    return value


def json_depth(text: str) -> int:
    """The deepest nesting of `[` / `{` in a JSON text, brackets inside strings not counted; linear, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
