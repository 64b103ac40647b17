"""Small pure helpers the rooms share: batches, min–max normalisation, a Literal's values."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar, get_args

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter), streamed."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def minmax(values: NDArray[np.float64], low: float, high: float) -> NDArray[np.float64]:
    """Min–max normalisation onto [0, 1] over the range [low, high] (0 for an empty range)."""
    values = np.asarray(values, dtype=np.float64)
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def choices(literal: Any) -> tuple[str, ...]:
    """The values of a `Literal[...]` type, in order."""
    return tuple(str(v) for v in get_args(literal))


def choice(literal: Any, value: str, what: str) -> str:
    """`value` when it is one of the Literal's values; ConfigError listing them otherwise."""
    allowed = choices(literal)
    if value not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def one_of(literal: Any, value: str, what: str) -> Any:
    """`value` as the `Literal[...]` type it is one of, checked (ConfigError listing the
    values otherwise): a face's text made the engine's typed choice."""
    return choice(literal, value, what)


def number_or_nan(value: object) -> float:
    """A payload's number as a float; NaN where it holds none (absent, text, …)."""
    return float(value) if isinstance(value, int | float) else float("nan")
