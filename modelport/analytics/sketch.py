"""Sketches of numbers: counts per logarithmic bin, so that distributions add up.

A value ``v > 0`` falls in bin ``ceil(log(v) / log(GAMMA))``, the bin's representative being
``2 * GAMMA**k / (GAMMA + 1)``: every value is within ``(GAMMA - 1) / (GAMMA + 1)`` (1 %) of
its bin's representative, so a quantile read from a sketch is within 1 % of a value at that
rank (the DDSketch of Masson, Rim and Lee, VLDB 2019). Negative values mirror the positive
bins; values of magnitude below ``TINY`` count as zero. A sketch is a dict of bin name →
count (``"p12"``, ``"n3"``, ``"z"``) that JSON keeps and that two sketches merge by adding:
a minute's, an hour's and a month's are the same kind of thing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

GAMMA = 1.02
TINY = 1e-9
_LOG_GAMMA = math.log(GAMMA)


_BIAS = 1 << 30


def bins(values: np.ndarray) -> np.ndarray:
    """Each value's bin as a whole number (``name`` gives its name): numbers group and count
    many times faster than the names would."""
    values = np.asarray(values, dtype=float)
    magnitude = np.abs(values)
    tiny = magnitude < TINY
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log(np.where(tiny, 1.0, magnitude)) / _LOG_GAMMA).astype(np.int64)
    codes = (index + _BIAS) * 4 + np.where(values < 0, 2, 1)
    return np.where(tiny, 0, codes)


def name(code: int) -> str:
    """The name of a bin ``bins`` numbered ``code``."""
    code = int(code)
    if code == 0:
        return "z"
    return f"{'n' if code % 4 == 2 else 'p'}{code // 4 - _BIAS}"


def build(values: np.ndarray) -> dict[str, int]:
    """The sketch of ``values``."""
    if not len(values):
        return {}
    codes, counts = np.unique(bins(values), return_counts=True)
    return {name(c): int(n) for c, n in zip(codes, counts, strict=True)}


def merge(into: dict[str, int], other: Mapping[str, int] | None) -> dict[str, int]:
    """Add ``other``'s counts to ``into`` (changed in place) and return it."""
    if not other:
        return into
    if not into:
        into.update(other)
        return into
    get = into.get
    for name, count in other.items():
        into[name] = get(name, 0) + count
    return into


def representative(name: str) -> float:
    """The value a bin stands for."""
    if name == "z":
        return 0.0
    value = 2 * GAMMA ** int(name[1:]) / (GAMMA + 1)
    return -value if name[0] == "n" else value


def points(sketch: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The sketch as (representatives ascending, counts)."""
    if not sketch:
        return np.zeros(0), np.zeros(0)
    reps = np.fromiter((representative(n) for n in sketch), float, len(sketch))
    counts = np.fromiter(sketch.values(), float, len(sketch))
    order = np.argsort(reps)
    return reps[order], counts[order]


def quantiles(sketch: Mapping[str, int], qs: Iterable[float]) -> list[float | None]:
    """The values at quantiles ``qs`` (0–1) of the sketched values (None when empty).

    As numpy's default ("linear"): the value at rank ``q * (n - 1)``, interpolated between
    the two values around it, each within 1 % of the real one."""
    reps, counts = points(sketch)
    qs = list(qs)
    if not len(reps):
        return [None] * len(qs)
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    found = []
    for q in qs:
        rank = q * (total - 1)
        low = reps[np.searchsorted(cumulative, math.floor(rank), side="right")]
        high = reps[np.searchsorted(cumulative, math.ceil(rank), side="right")]
        found.append(float(low + (rank - math.floor(rank)) * (high - low)))
    return found


def total(sketch: Mapping[str, int] | None) -> int:
    """How many values the sketch holds."""
    return int(sum((sketch or {}).values()))
