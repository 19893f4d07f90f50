# SPDX-License-Identifier: Apache-2.0
"""The one error type for input that cannot be used (data, params, model folders): its message is one line that
names the file / row / param and what is wrong. Kept apart so that light modules need no pandas for it."""


class DataError(ValueError):
    """Input data that cannot be used; the message names the file/row and what is wrong."""


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, at most `limit` characters: for a DataError that quotes a library's."""
    return " ".join(str(exc).split())[:limit]
