"""Declarative option table: each option is a CLI flag, an environment variable and an ini key.

Resolution order is CLI > environment > ini > default, the same for every option, and errors name
the source of the bad value. Backends declare their own tables (``backends/gce/options.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    env: str | None = None
    ini: str | None = None
    action: str | None = None  # "store_true" or "append"
    metavar: str | None = None
    short: str | None = None


def add_options(group: Any, parser: pytest.Parser, options: Sequence[Option]) -> None:
    for opt in options:
        names = [opt.short, opt.flag] if opt.short else [opt.flag]
        sources = []
        if opt.env:
            sources.append(f"env {opt.env}")
        if opt.ini:
            sources.append(f"ini {opt.ini}")
        suffix = f" [{', '.join(sources)}]" if sources else ""
        kwargs: dict[str, Any] = {"dest": opt.dest, "help": opt.help + suffix, "default": None}
        if opt.action == "store_true":
            kwargs["action"] = "store_true"
        elif opt.action == "append":
            kwargs["action"] = "append"
            kwargs["metavar"] = opt.metavar or "VALUE"
        else:
            kwargs["metavar"] = opt.metavar or opt.dest.upper()
        group.addoption(*names, **kwargs)
        if opt.ini:
            parser.addini(opt.ini, opt.help, type="string", default=None)


def resolve(config: pytest.Config, opt: Option, environ: dict[str, str]) -> Any:
    """The option's value, converted, from the first source that sets it."""
    value = config.getoption(opt.dest, default=None)
    source = f"option {opt.flag}"
    if value in (None, [], False) and opt.env and environ.get(opt.env, "") != "":
        value, source = environ[opt.env], f"environment variable {opt.env}"
        if opt.action == "store_true":
            value = value.strip().lower() in ("1", "true", "yes", "on")
        elif opt.action == "append":
            value = [v for v in value.split(",") if v]
    if value in (None, [], False) and opt.ini:
        raw = config.getini(opt.ini)
        if raw not in (None, ""):
            value, source = str(raw).strip(), f"ini option {opt.ini}"
            if opt.action == "store_true":
                value = value.lower() in ("1", "true", "yes", "on")
            elif opt.action == "append":
                value = [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]
    if value in (None, []):
        return opt.default
    if opt.action in ("store_true",):
        return bool(value)
    try:
        if opt.action == "append":
            return [opt.type(v) for v in value]
        return opt.type(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise pytest.UsageError(f"{source}: invalid value {str(value)[:80]!r}: {str(e)[:200]}") from e


MAX_NUMBER = 1e12
"""No option means anything above this (seconds, bytes, counts): larger is a typo, refused by name."""


def positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not value > 0 or value > MAX_NUMBER:
        raise ValueError(f"must be a number greater than 0 (finite, at most {MAX_NUMBER:g})")
    return value


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise ValueError("must be a finite number")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1 or value > MAX_NUMBER:
        raise ValueError(f"must be a whole number of at least 1 and at most {MAX_NUMBER:g}")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be a whole number of at least {low} and at most {high}")
        return value

    return convert


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def byte_size(text: str) -> int:
    """``1048576``, ``512k``, ``256m``, ``2g``, ``2GiB`` (powers of 1024)."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    number = float(t) * mult
    if not math.isfinite(number) or number > 2 ** 62:
        raise ValueError("must be a finite size")
    value = int(number)
    if value < 1:
        raise ValueError("must be at least 1 byte")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return convert
