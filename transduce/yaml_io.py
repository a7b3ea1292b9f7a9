"""Reading and writing YAML safely: every config file, a model_dir's ``config.yaml`` included.

The loader is PyYAML's safe loader without what a config never needs and an untrusted file can
abuse; errors are one-line :class:`TransduceError` naming the file and line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from transduce.errors import TransduceError, short_repr

MAX_YAML_BYTES, MAX_YAML_DEPTH = 100_000, 32  # a config: a few KB, three levels (pure-Python
# YAML reads about 50k tokens a second: 100 KB is at most 2 s)


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config may not hold (see :class:`SafeLoader`)."""


class SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader without what a config never needs and an untrusted file (a
    model_dir's config.yaml) can abuse: anchors and aliases (a 1 KB alias bomb expands to
    gigabytes), nesting deeper than MAX_YAML_DEPTH (100k levels overflow the recursive
    composer), and duplicate keys (the later one silently won)."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(problem="YAML anchors and aliases (&name, *name) are not allowed in a "
                           "config; write the values out", problem_mark=event.start_mark)
        if self.depth >= MAX_YAML_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_YAML_DEPTH} levels deep; a config "
                           "holds sections of keys", problem_mark=event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        first: dict[Any, int] = {}  # key -> the line it is on
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line
            try:
                if key in first:
                    raise _Refused(problem=f"duplicate key {short_repr(key)} (first on line "
                                   f"{first[key] + 1}); keep one of them",
                                   problem_mark=key_node.start_mark)
                first[key] = line
            except TypeError:  # unhashable: the base class says so
                pass
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path, what: str = "config file") -> Any:
    """The YAML document in ``path`` (at most MAX_YAML_BYTES, read by :class:`SafeLoader`); every
    problem is a one-line :class:`TransduceError` naming the file (and line). Every config file
    is read with it, a model_dir's ``config.yaml`` included."""
    path = Path(path)
    if not path.is_file():
        raise TransduceError(f"{path}: {what} not found; check the path")
    with open(path, "rb") as f:
        data = f.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise TransduceError(f"{path}: over {MAX_YAML_BYTES} bytes, too large for a {what}; "
                             "check the path")
    try:
        return yaml.load(data.decode("utf-8"), Loader=SafeLoader)
    except UnicodeDecodeError as e:
        raise TransduceError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except _Refused as e:
        raise TransduceError(f"{path}: line {e.problem_mark.line + 1}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise TransduceError(f"{path}:{where}: invalid YAML ({getattr(e, 'problem', e)}); "
                             "fix the syntax there") from None


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never &/*: the loader refuses them
        return True


def dump_yaml(data: Any, path: str | Path) -> None:
    """Write ``data`` as YAML that :func:`load_yaml` reads back (no anchors, keys in order)."""
    Path(path).write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False), encoding="utf-8")
