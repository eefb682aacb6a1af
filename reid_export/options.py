"""Command-line values checked where they enter: whole numbers and finite numbers in a range, comma lists
of batch sizes, `--set KEY=VALUE` pairs. Each check takes anything (the text typed, or a number) and
returns the value or raises one `ReidExportError` naming the option, what it got and what it takes.

    port: Annotated[int, typer.Option(parser=whole_option("--port", low=0, high=65535))] = 8000
    whole("70000", "--port", low=0, high=65535)  # ReidExportError: --port takes a whole number from 0 to ...

The CLI (`cli.py`) passes the `*_option` parsers to typer; the library's own checks stay where they are.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable

from .errors import ReidExportError

__all__ = ["whole", "number", "whole_option", "number_option", "parse_ints", "parse_sets", "MAX_WHOLE", "MAX_SEED"]

MAX_WHOLE = 2**31 - 1  # counts and sizes: what every runtime's int32 shapes and loops hold
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit


def whole(value, option: str, *, low: int = 1, high: int = MAX_WHOLE) -> int:
    """`value` (text or number) as a whole number in low..high, else a ReidExportError naming `option`."""
    parsed = _as_whole(value)
    if parsed is None or not low <= parsed <= high:
        raise ReidExportError(f"{option} takes a whole number from {low} to {high}; got {_shown(value)}")
    return parsed


def number(value, option: str, *, low: float = 0.0, high: float | None = None, above: bool = False) -> float:
    """`value` as a finite number >= `low` (> `low` with `above`) and <= `high`, else a ReidExportError."""
    parsed = _as_float(value)
    in_range = parsed is not None and math.isfinite(parsed) and (parsed > low if above else parsed >= low)
    if not in_range or (high is not None and parsed > high):
        if above:
            wanted = f"above {low:g}" + (f" and at most {high:g}" if high is not None else "")
        else:
            wanted = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
        raise ReidExportError(f"{option} takes a finite number {wanted}; got {_shown(value)}")
    return parsed


def whole_option(option: str, *, low: int = 1, high: int = MAX_WHOLE) -> Callable[[str], int]:
    """A typer `parser=` for `option`: `whole` with these bounds."""
    return lambda value: whole(value, option, low=low, high=high)


def number_option(option: str, *, low: float = 0.0, high: float | None = None,
                  above: bool = False) -> Callable[[str], float]:
    """A typer `parser=` for `option`: `number` with these bounds."""
    return lambda value: number(value, option, low=low, high=high, above=above)


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32): batch sizes, each a whole number >= 1, at least one."""
    if not isinstance(text, str):
        raise ReidExportError(f"{option} takes comma-separated whole numbers like 1,32; got {_shown(text)}")
    values = tuple(_as_whole(v) for v in text.split(",") if v.strip())
    if not values or None in values:
        raise ReidExportError(f"{option} takes comma-separated whole numbers like 1,32; got {_shown(text)}")
    if not all(1 <= v <= MAX_WHOLE for v in values):
        raise ReidExportError(f"{option} takes batch sizes from 1 to {MAX_WHOLE}; got {_shown(text)}")
    return values


def parse_sets(items: list[str]) -> dict:
    """`--set KEY=VALUE` pairs; VALUE is read as in a recipe file (TOML: 64, 2e-3, true, [40, 70]), and taken
    as a plain string when it is not valid TOML (--set arch=resnet50). nan and inf are refused."""
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ReidExportError(f"--set takes KEY=VALUE, got {_shown(item)}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):
            parsed = value
        if not _all_finite(parsed):
            raise ReidExportError(f"--set {key.strip()} takes a finite number (not nan or inf); got {_shown(value)}")
        out[key.strip()] = parsed
    return out


def _as_whole(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not digits.isascii() or not digits.isdigit() or len(digits) > 30:  # 30: no 4300-digit int() parse
            return None
        return int(text)
    return None


def _as_float(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value.strip().isascii():
            return float(value.strip())
    except (ValueError, OverflowError):
        return None
    return None


def _all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def _shown(value) -> str:
    """The value as the user gave it, on one line and at most 40 characters."""
    plain = isinstance(value, str) and value and value.isprintable() and value == value.strip()
    text = value if plain else repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
