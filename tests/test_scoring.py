"""The relevance formula and the category matrix on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import FashionrecError
from engine.helpers import minmax
from engine.recommend.scoring import PAPER, Weights, distance_term, relevance


def test_relevance_by_hand() -> None:
    visual = np.array([0.9, 0.5])
    norm = np.array([0.8, 0.2])
    category = np.array([1.0, 0.4])
    # t = 0.7, γ = 2: popularity terms 1 − 0.1² = 0.99 and 1 − 0.5² = 0.75
    got = relevance(visual, norm, 0.7, category, Weights(0.6, 0.2, 0.2, 2.0))
    np.testing.assert_allclose(
        got, [0.6 * 0.9 + 0.2 * 0.99 + 0.2 * 1.0, 0.6 * 0.5 + 0.2 * 0.75 + 0.2 * 0.4]
    )
    paper = relevance(visual, norm, 0.7, category, PAPER)
    np.testing.assert_allclose(paper, [0.7 * 0.9 + 0.3 * 0.99, 0.7 * 0.5 + 0.3 * 0.75])


def test_odd_gamma_uses_the_absolute_difference() -> None:
    got = relevance(np.zeros(2), np.array([0.2, 0.8]), 0.5, np.zeros(2), Weights(0, 1, 0, 3.0))
    np.testing.assert_allclose(got, [1 - 0.3**3, 1 - 0.3**3])  # symmetric, never above 1


def test_distance_term() -> None:
    weights = Weights(0.0, 0.0, 0.0, 2.0, distance=1.0, distance_scale_km=5.0)
    got = relevance(
        np.zeros(3), np.zeros(3), 0.0, np.zeros(3), weights, np.array([0.0, 5.0, np.nan])
    )
    np.testing.assert_allclose(got, [1.0 - 0.0, np.exp(-1.0), 0.0], atol=1e-12)  # γ term weight 0
    np.testing.assert_allclose(distance_term(np.array([10.0]), 10.0), [np.exp(-1.0)])


def test_minmax_on_the_catalog_range() -> None:
    np.testing.assert_allclose(minmax(np.array([10.0, 60.0, 110.0]), 10, 110), [0, 0.5, 1])
    np.testing.assert_allclose(minmax(np.array([5.0]), 5, 5), [0.0])


@pytest.mark.parametrize(
    "weights",
    [Weights(visual=1.2), Weights(popularity=-0.1), Weights(gamma=0), Weights(distance_scale_km=0)],
)
def test_bad_weights(weights: Weights) -> None:
    with pytest.raises(FashionrecError):
        weights.validate()
