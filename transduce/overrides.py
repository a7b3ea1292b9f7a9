"""``--set KEY=VALUE`` overrides: parsed as YAML values and applied to a raw config dict."""
from __future__ import annotations

from typing import Any

import yaml

from transduce.errors import TransduceError
from transduce.hints import suggest
from transduce.yaml_io import SafeLoader


def parse_set(item: str) -> tuple[str, Any]:
    """`--set a.b=v` -> ("a.b", v); v is read as YAML, so 3e-4, true, null and [1, 2] mean what
    they look like."""
    if "=" not in item:
        raise TransduceError(f"--set {item!r}: expected KEY=VALUE, e.g. training.lr=3e-4")
    key, text = (part.strip() for part in item.split("=", 1))
    try:
        return key, yaml.load(text, Loader=SafeLoader) if text != "" else ""
    except yaml.YAMLError:
        return key, text


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None,
                    known: list[str]) -> dict:
    """Apply ``{"training.lr": 3e-4}`` or ``["training.lr=3e-4"]`` to a raw config dict; each key
    must be one of ``known`` (``hints.known_keys(Config)``)."""
    if isinstance(overrides, list):
        overrides = dict(map(parse_set, overrides))
    for key, value in (overrides or {}).items():
        if key not in known:
            raise TransduceError(f"--set: unknown config key '{key}'{suggest(key, known)}")
        node, parts = raw, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TransduceError(f"--set: '{key}' is not inside a section")
        node[parts[-1]] = value
    return raw
