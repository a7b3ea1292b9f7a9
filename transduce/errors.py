"""User-facing errors.

A :class:`TransduceError` is a mistake the user can fix (a bad file, a bad config value). The CLI
prints it as one line, ``error: <message>``, and exits non-zero, with no traceback unless
``--debug`` is given. Everything else is a bug and keeps its traceback.
"""


class TransduceError(Exception):
    """An error in the user's input: data, config, model directory or command line."""
