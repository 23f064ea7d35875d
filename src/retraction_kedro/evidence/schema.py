"""One shape for every reported number, and its flat form for MLflow and JSON.

An estimate is a dict ``{"value", "n", "ci_low", "ci_high", ...}`` whose extra fields are numbers too
(``k``, ``p_value``, discordant counts, skipped resamples). Undefined is ``None``, never 0 or NaN.
Flattened, ``{"x": estimate}`` becomes ``x``, ``x.n``, ``x.ci_low``, ``x.ci_high``, ``x.<field>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Number = int | float | None


def _number(value: Any) -> Number:
    """Plain Python numbers (numpy scalars do not serialize); NaN means undefined."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) else value


def estimate(value: Any, n: int, ci_low: Any = None, ci_high: Any = None, **fields: Any) -> dict[str, Number]:
    """An estimate; an undefined value takes its interval with it."""
    value = _number(value)
    low, high = (None, None) if value is None else (_number(ci_low), _number(ci_high))
    return {"value": value, "n": int(n), "ci_low": low, "ci_high": high} | {k: _number(v) for k, v in fields.items()}


def is_estimate(node: Any) -> bool:
    return isinstance(node, Mapping) and "value" in node


def flatten(tree: Mapping[str, Any], *, drop_undefined: bool = False, prefix: str = "") -> dict[str, Number]:
    """Nested estimates and counts -> ``{"a.b": v, "a.b.ci_low": ...}``.

    ``drop_undefined=True`` for MLflow, which cannot log None; JSON keeps them as null. Nested mappings
    that are not estimates are namespaces joined by dots.
    """
    flat: dict[str, Number] = {}
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if is_estimate(node):
            flat[name] = _number(node["value"])
            flat |= {f"{name}.{field}": _number(v) for field, v in node.items() if field != "value"}
        elif isinstance(node, Mapping):
            flat |= flatten(node, prefix=f"{name}.")
        elif isinstance(node, (str, bytes, Sequence, np.ndarray)):
            raise ValueError(f"{name}: cannot flatten a {type(node).__name__}; log per-layer lists one step at a time")
        else:
            try:
                flat[name] = _number(node)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: {node!r} is not a number") from None
    return {k: v for k, v in flat.items() if v is not None} if drop_undefined else flat


def as_bools(values: Any, name: str) -> np.ndarray:
    """Labels as a bool array; anything but True/False/0/1 (a null from a table, a 2, a 0.7) is an error naming it."""
    array = np.asarray(values)
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf":
        valid = (array == 0) | (array == 1)
    else:
        valid = np.array([isinstance(v, (bool, int, float, np.number)) and v in (0, 1) for v in array.flat], dtype=bool)
    if not valid.all():
        bad = np.unravel_index(int(np.argmin(valid)), array.shape)
        value = array[bad].item() if isinstance(array[bad], np.generic) else array[bad]
        raise ValueError(f"{name}[{', '.join(map(str, bad))}] is {value!r}, expected a boolean")
    return array.astype(bool)
