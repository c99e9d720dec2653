"""The project's one error type for bad input, raised wherever a file, an array or a parameter is not what a
function expects. It is a :class:`ValueError`, so callers that catch ``ValueError`` keep working; the command line
prints its message as one line and exits non-zero."""
from __future__ import annotations

__all__ = ["DataError", "NotApplicable"]


class DataError(ValueError):
    """Bad or missing input data; the message names the file or parameter and what was expected."""


class NotApplicable(DataError):
    """A quantity these data cannot support (e.g. a metric whose calibration needs a larger scene): evaluations record
    it as not computed, with this message as the reason, instead of failing."""
