"""User-facing errors.

A :class:`TransduceError` is a mistake the user can fix (a bad file, a bad config value). The CLI
prints it as one line, ``error: <message>``, and exits non-zero, with no traceback unless
``--debug`` is given. Everything else is a bug and keeps its traceback.
"""
import reprlib

_REPR = reprlib.Repr()  # what an error shows of a value: short, whatever its size or sharing
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlong = 40


class TransduceError(Exception):
    """An error in the user's input: data, config, model directory or command line."""


def short_repr(value: object) -> str:
    """``value`` as an error message shows it: at most about 80 characters."""
    return _REPR.repr(value)
