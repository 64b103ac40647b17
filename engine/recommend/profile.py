"""A ranking profile: one linear scorer over the pool's features (engine.recommend.pool),
hand-set (the default and the paper's presets) or fitted to a shop's own sales
(engine.recommend.tuning), kept in the home as `profile.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.recommend.pool import FEATURES, Pool
from engine.recommend.scoring import PRESETS, Weights

FILE: Final = "profile.json"


@dataclass(frozen=True)
class Profile:
    """A weight per feature (absent: 0), its name, and how it validated when fitted."""

    name: str
    weights: dict[str, float]
    validation: dict[str, float] = field(default_factory=dict)  # hit rate@k by profile name
    fitted: dict[str, Any] = field(default_factory=dict)  # what it was fitted on

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(FEATURES))
        if unknown:
            raise ConfigError(f"profile {self.name!r}: unknown features {', '.join(unknown)}")

    @classmethod
    def of_weights(cls, name: str, weights: Weights) -> Profile:
        """The rerank's formula over the pool: w_v·(best cosine) + w_p·match + w_c·CatSim."""
        return cls(
            name,
            {
                "visual_best": weights.visual,
                "match": weights.popularity,
                "category": weights.category,
            },
        )

    def vector(self) -> NDArray[np.float64]:
        """The weights in FEATURES order."""
        return np.array([self.weights.get(f, 0.0) for f in FEATURES], dtype=np.float64)

    def scores(self, found: Pool) -> NDArray[np.float64]:
        """Each candidate's relevance."""
        return found.features @ self.vector()

    def save(self, home: Path) -> Path:
        """Write it to the home (atomically: a reader sees the old file or the new)."""
        path = home / FILE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, home: Path) -> Profile | None:
        """The home's fitted profile, or None; ConfigError naming a damaged file."""
        path = home / FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(data["name"], data["weights"], data["validation"], data["fitted"])
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"{path}: not a ranking profile ({error}); run `fashionrec tune` again"
            ) from error


PRESET_PROFILES: Final = {name: Profile.of_weights(name, w) for name, w in PRESETS.items()}


def ranked(
    found: Pool, relevance: NDArray[np.float64], products: NDArray[np.int64], k: int
) -> list[int]:
    """The pool's rows of the k most relevant distinct products (ties by row)."""
    return first_of_products(found.rows[np.lexsort((found.rows, -relevance))], products, k)


def first_of_products(order: NDArray[np.int64], products: NDArray[np.int64], k: int) -> list[int]:
    """The first row of each product, in order, until k products are listed."""
    chosen: list[int] = []
    seen: set[int] = set()
    for row in order.tolist():
        product = int(products[row])
        if product not in seen:
            seen.add(product)
            chosen.append(row)
            if len(chosen) == k:
                break
    return chosen
