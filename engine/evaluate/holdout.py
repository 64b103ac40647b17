"""Leave-last-out: a protocol the model can fail.

Each shopper's last `holdout` purchases are held out; every system recommends k items from
the purchases before them, with the popularity as it stood just before the first held-out
purchase (nothing of the future). Hit rate@k, nDCG@k and recall@k per shopper; their means
with bootstrap confidence intervals over shoppers, and paired differences against the full
model (the same resampled shoppers for every system).

Systems: the full model (candidates from every source, weights fitted on the cohort's
earlier purchases: engine.evaluate.blended), without each source, with each term switched
off, with the hand-set presets' weights and with the home's own fitted profile, if it has
one (`fashionrec tune`, fitted on the home's log: on the home's own shoppers it may have
seen their targets); the visual rerank of today's single source with
the protocol's weights; visual kNN (w_v = 1, the cosine alone); labels only (category and
popularity over every item the shopper is shown, no vision at all); random; most popular
(all-time); trending now (decayed purchases, the half-life in force).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from engine.recommend.pool import SOURCES
from engine.recommend.scoring import PRESETS

RESAMPLES: Final = 1000
LEVEL: Final = 0.95
FULL: Final = "full model"
RERANK: Final = "visual rerank (protocol weights)"
VISUAL: Final = "visual kNN (w_v = 1)"
LABELS: Final = "labels only (category + popularity)"
RANDOM: Final = "random"
POPULAR: Final = "most popular (all-time)"
TRENDING: Final = "trending now"
BASELINES: Final = (VISUAL, LABELS, RANDOM, POPULAR, TRENDING)
ABLATIONS: Final = (
    "no popularity",
    "no visual",
    "no category",
    "no colour",
)  # the full model's terms
SOURCE_ABLATIONS: Final = {source: f"no {source} source" for source in SOURCES}
PRESET_ROWS: Final = {name: f"every source, {name} weights" for name in PRESETS}
HOME: Final = "every source, the home's fitted weights"  # its profile.json (`fashionrec tune`)
METRICS: Final = ("hit_rate", "ndcg", "recall")


def scores(listed: Sequence[str], held: set[str], k: int) -> tuple[float, float, float]:
    """Hit (any held-out product listed), nDCG and recall of one top-k list of products."""
    top = list(listed)[:k]
    found = [rank for rank, product in enumerate(top, start=1) if product in held]
    dcg = sum(1.0 / math.log2(rank + 1) for rank in found)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(held), k) + 1))
    return float(bool(found)), dcg / ideal if ideal else 0.0, len(found) / len(held)


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        """`0.412 [0.371, 0.455]`."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0 (a difference beyond chance)."""
        return self.low > 0 or self.high < 0


def bootstrap(
    values: Mapping[str, NDArray[np.float64]],
    reference: str | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[dict[str, Interval], dict[str, Interval]]:
    """Each system's mean over shoppers with its bias-corrected and accelerated (BCa)
    bootstrap interval, and (against `reference`) the paired difference system − reference
    with its interval (scipy.stats.bootstrap, paired): every system is resampled with the
    same shoppers (one seed, the same draws)."""

    def interval(*samples: NDArray[np.float64]) -> Interval:
        x = samples[0] - samples[1] if len(samples) == 2 else samples[0]
        mean = float(x.mean()) if len(x) else math.nan
        if len(x) < 2 or float(np.ptp(x)) == 0.0:  # nothing to resample: the mean itself
            return Interval(mean, mean, mean)
        found = stats.bootstrap(
            samples,
            _mean_difference if len(samples) == 2 else np.mean,
            paired=True,
            vectorized=True,
            n_resamples=resamples,
            confidence_level=level,
            method="BCa",
            rng=np.random.default_rng([seed, 11]),
        ).confidence_interval
        return Interval(mean, float(found.low), float(found.high))

    means = {name: interval(x) for name, x in values.items()}
    deltas: dict[str, Interval] = {}
    if reference is not None and reference in values:
        base = values[reference]
        deltas = {name: interval(x, base) for name, x in values.items() if name != reference}
    return means, deltas


def _mean_difference(
    x: NDArray[np.float64], y: NDArray[np.float64], axis: int = -1
) -> NDArray[np.float64]:
    """The mean of paired differences (vectorised along `axis`)."""
    return np.asarray(np.mean(x - y, axis=axis))


@dataclass
class HoldoutSum:
    """Per shopper and system, the three measures (kept per shopper for the bootstrap)."""

    k: int
    measures: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    shoppers: int = 0

    def add(self, system: str, listed: Sequence[str], held: set[str]) -> None:
        """One shopper's list from one system."""
        self.measures.setdefault(system, []).append(scores(listed, held, self.k))

    def result(self, seed: int = 0) -> dict[str, dict[str, Interval]]:
        """Per system and measure: the mean, its interval, and the paired difference against
        the full model with its interval."""
        out: dict[str, dict[str, Interval]] = {name: {} for name in self.measures}
        for m, metric in enumerate(METRICS):
            values = {
                name: np.array([row[m] for row in rows], dtype=np.float64)
                for name, rows in self.measures.items()
            }
            means, deltas = bootstrap(values, FULL, seed=seed)
            for name in self.measures:
                out[name][metric] = means[name]
                if name in deltas:
                    out[name][f"{metric}_vs_full"] = deltas[name]
        return out
