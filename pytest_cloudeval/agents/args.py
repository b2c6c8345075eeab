"""``-A KEY=VALUE`` typed the way HAL's ``hal-eval -A`` types them, so an agent gets the same kwargs.

HAL reads each value as YAML, then: a string with a comma becomes a list of the raw parts,
``true``/``false`` (any case) a bool, ``none``/``null``/``nan`` None, and a string that ``int()`` or
``float()`` accepts a number; dashes in the key become underscores. We resolve YAML 1.1 scalars (what
PyYAML's ``safe_load`` gives for one plain value) without depending on PyYAML; ``[...]``/``{...}``
values are read as JSON (YAML's flow style in the common case).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "y", "Y"}
_FALSE = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "n", "N"}
_INT = re.compile(r"^[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+|[1-9][0-9_]*|0)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9.]*([eE][-+][0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
                  ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan")}


def _yaml_scalar(text: str) -> Any:
    value = text.strip()
    if value in _NULL:
        return None
    if value in ("y", "Y", "n", "N"):
        return value  # PyYAML's resolver leaves single letters as strings
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.match(value):
        digits = value.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        body = digits.lstrip("+-")
        if body.startswith("0b"):
            return sign * int(body[2:], 2)
        if body.startswith("0x"):
            return sign * int(body[2:], 16)
        if len(body) > 1 and body.startswith("0"):
            return sign * int(body, 8)
        return sign * int(body)
    if _FLOAT.match(value) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    unsigned = value.lstrip("+-")
    if unsigned in _SPECIAL_FLOAT:
        number = _SPECIAL_FLOAT[unsigned]
        return -number if value.startswith("-") else number
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def typed_value(raw: str) -> Any:
    """One ``-A`` value as HAL types it."""
    parsed = _yaml_scalar(raw)
    if not isinstance(parsed, str):
        return parsed
    if "," in raw:
        return raw.split(",")
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.lower() in ("none", "null", "nan"):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def parse_agent_args(items: Iterable[str]) -> dict[str, Any]:
    """``["max-steps=10", "tools=a,b"]`` -> ``{"max_steps": 10, "tools": ["a", "b"]}``."""
    params: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        params[key.strip().replace("-", "_")] = typed_value(value)
    return params
