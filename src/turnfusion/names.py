# SPDX-License-Identifier: Apache-2.0
"""Names from strangers' files (a `video_id` in an annotation CSV, a file listed in a model's manifest) are names,
never paths: one character set, and every path built from one is checked to stay inside its folder."""

from __future__ import annotations

import re
from pathlib import Path

from turnfusion.errors import DataError

# A recording's name: letters, digits, `_`, `-` and `.` (YouTube ids, which may start with `-`; file stems), not
# starting with `.` (no hidden files, no `..`), at most 200 characters. It only ever becomes `<folder>/<name>.flac`
# or a URL, never a command-line argument of its own.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}")
NAME_RULE = "letters, digits, '_', '-' and '.' only, not starting with '.', at most 200 characters"


def is_name(value) -> bool:
    """Whether `value` is a usable name (`NAME_RULE`)."""
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def path_inside(folder: Path | str, relative: str, what: str = "name") -> Path:
    """`folder / relative`, refused (DataError naming `what`) when its place is not inside `folder`: an absolute
    path, `..`, or a sub-folder that is a link pointing out. `relative` may have sub-folders (`int8/text.onnx`).

    The file itself may be a link (DVC's `cache.type: symlink` makes every tracked recording one, pointing into
    the cache): its place is checked, not its target; a reader then reads the target, and every writer removes what
    is at the name first (download, the demo and rehearsal renderers), so it never writes through a link."""
    folder = Path(folder)
    if not isinstance(relative, str) or not relative or "\x00" in relative or Path(relative).is_absolute():
        raise DataError(f"{what} {relative!r:.80}: not a file name inside {folder}")
    path = folder / relative
    if ".." in Path(relative).parts or not path.parent.resolve().is_relative_to(folder.resolve()):
        raise DataError(f"{what} {relative!r:.80}: leaves its folder {folder}")
    return path


def named_file(folder: Path | str, name, suffix: str, what: str = "video_id") -> Path:
    """`folder/<name><suffix>` for a `name` that is a name (`NAME_RULE`), else a DataError naming `what`."""
    if not is_name(name):
        raise DataError(f"{what} {name!r:.80} is not a name ({NAME_RULE})")
    return path_inside(folder, f"{name}{suffix}", what)
