"""Retrieval measures the quality studies share (bench/quality.py, bench/compact.py): labels
per item, exact nearest neighbours, same-label precision, paired differences, the machine."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.catalog.items import Item
from engine.catalog.taxonomy import Taxonomy
from ingest.autotune import cpu_model


@dataclass(frozen=True)
class Labels:
    """Per item (in catalog order): article type, its taxonomy group, gender."""

    ids: list[str]
    category: np.ndarray
    group: np.ndarray
    gender: np.ndarray


def labels_of(items: Sequence[Item], taxonomy: Taxonomy) -> Labels:
    return Labels(
        ids=[i.item_id for i in items],
        category=np.array([i.category for i in items]),
        group=np.array([taxonomy.group_of(i.category) for i in items]),
        gender=np.array([i.gender for i in items]),
    )


def neighbours(vectors: np.ndarray, allowed: np.ndarray | None, k: int = 5) -> np.ndarray:
    """Exact top-k by cosine for every row (unit rows), self excluded, only `allowed` pairs."""
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    if allowed is not None:
        scores[~allowed] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


@dataclass(frozen=True)
class Quality:
    """Figures of one set of vectors, and the per-item type p@5 (all items) they average."""

    figures: dict[str, float]
    per_item: np.ndarray  # type p@5 per item
    per_item_at1: np.ndarray  # type @1 per item (0 or 1)

    def __getitem__(self, name: str) -> float:
        return self.figures[name]


def visual_metrics(vectors: np.ndarray, labels: Labels) -> Quality:
    """Same type @1, p@5, group p@5 (all items; same gender), and the cosine of random
    pairs (mean, spread): how much room the vectors leave between neighbours."""
    same_gender = labels.gender[:, None] == labels.gender[None, :]
    found: dict[str, float] = {}
    for scope, allowed in (("all", None), ("gender", same_gender)):
        top = neighbours(vectors, allowed)
        same = labels.category[top] == labels.category[:, None]
        found[f"{scope} @1"] = float(same[:, 0].mean())
        found[f"{scope} p@5"] = float(same.mean())
        found[f"{scope} group p@5"] = float((labels.group[top] == labels.group[:, None]).mean())
        if scope == "all":
            per_item, per_item_at1 = same.mean(axis=1), same[:, 0].astype(np.float64)
    pairs = np.random.default_rng(0).integers(0, len(vectors), size=(2, 20_000))
    pairs = pairs[:, pairs[0] != pairs[1]]
    cosine = np.einsum("ij,ij->i", vectors[pairs[0]], vectors[pairs[1]])
    found["pair cosine"], found["pair spread"] = float(cosine.mean()), float(cosine.std())
    return Quality(found, per_item, per_item_at1)


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """Mean per-item difference a − b ± twice its standard error (paired over items)."""
    diff = a - b
    return f"{diff.mean():+.3f} ± {2 * diff.std(ddof=1) / np.sqrt(len(diff)):.3f}"


def machine() -> str:
    model = cpu_model()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{model}, {usable} usable cores ({os.cpu_count()} online), torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads"
    )
