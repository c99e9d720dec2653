"""The project's one error type for bad input, raised wherever a file, an array or a parameter is not what a
function expects. It is a :class:`ValueError`, so callers that catch ``ValueError`` keep working; the command line
prints its message as one line and exits non-zero."""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad or missing input data; the message names the file or parameter and what was expected."""
