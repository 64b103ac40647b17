"""One evaluation run end to end: every table, beyond-accuracy metrics, the figures' data,
written as results/<run>/metrics.json, tables.md and PNGs."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.errors import FashionrecError
from engine.evaluation import Accuracy, accuracy, markdown
from engine.experiment import (
    SWEEP,
    Evaluation,
    ablation_weights,
    by_trend_group,
    sweep_weights,
)
from engine.figures import recommendation_grid, sweep_plot
from engine.recommender import Params

Progress = Callable[[str], None]
ACCURACY_HEADER = ("system", "category sim. (%)", "gender align. (%)", "pop. MAE [0,1]",
                   "pop. MAE ×100", "pairs")  # fmt: skip
BEYOND_HEADER = ("system", "coverage", "diversity", "novelty (bits)", "avg NormPop",
                 "hit rate@k", "recall@k")  # fmt: skip


def _accuracy_row(name: str, a: Accuracy) -> list[object]:
    return [name, a.category_similarity, a.gender_alignment, a.popularity_mae,
            a.popularity_mae_x100, a.pairs]  # fmt: skip


def _accuracy_json(a: Accuracy) -> dict[str, float]:
    return {**asdict(a), "popularity_mae_x100": a.popularity_mae_x100}


def _clean(value: Any) -> Any:
    """NaN as null, so metrics.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def run(evaluation: Evaluation, out: Path, setting: dict[str, Any],
        progress: Progress = lambda s: None) -> dict[str, Any]:  # fmt: skip
    """Every table and figure of the protocol; returns the metrics written to out/."""
    protocol = evaluation.protocol
    first = protocol.backbones[0]
    metrics: dict[str, Any] = {"setting": setting, "table1": {}, "table2": {}, "table3": {},
                               "beyond": {}, "sweep": {}}  # fmt: skip
    models = {}
    for backbone in protocol.backbones:
        progress(f"backbone {backbone}")
        models[backbone] = evaluation.run_model(backbone, protocol.weights)
    systems = {**models}
    for kind, name in (
        ("random", "random (same gender)"),
        ("popular", "most popular (same gender)"),
    ):
        progress(f"baseline {name}")
        systems[name] = evaluation.run_baseline(kind)
    rows1, rows_beyond = [], []
    for name, result in systems.items():
        score = accuracy(evaluation.pairs(result))
        metrics["table1"][name] = _accuracy_json(score)
        rows1.append(_accuracy_row(name, score))
        beyond = evaluation.beyond(result, name if name in models else first)
        metrics["beyond"][name] = beyond
        rows_beyond.append([name, *beyond.values()])
    rows2 = []
    for name, weights in ablation_weights(protocol.weights).items():
        progress(f"ablation {name}")
        result = models[first] if name == "full" else evaluation.run_model(first, weights, False)
        score = accuracy(evaluation.pairs(result))
        metrics["table2"][name] = _accuracy_json(score)
        rows2.append(_accuracy_row(name, score))
    rows3 = []
    for group, score in by_trend_group(evaluation.pairs(models[first])).items():
        metrics["table3"][group] = _accuracy_json(score)
        rows3.append(_accuracy_row(group, score))
    for backbone in protocol.backbones:
        progress(f"w_p sweep {backbone}")
        points = []
        for w_p in SWEEP:
            score = accuracy(evaluation.pairs(
                evaluation.run_model(backbone, sweep_weights(w_p), holdout=False)))  # fmt: skip
            points.append({"w_p": w_p, "category_similarity": score.category_similarity,
                           "popularity_mae": score.popularity_mae})  # fmt: skip
        metrics["sweep"][backbone] = points

    w = protocol.weights
    weight_text = f"w_v {w.visual}, w_p {w.popularity}, w_c {w.category}, γ {w.gamma}"
    tables = "\n\n".join([
        f"# Evaluation\n\n{setting['description']}\n\nWeights: {weight_text}; k {protocol.k}; "
        f"{protocol.candidates} candidates; seed {protocol.seed}.",
        "## Table 1 — per backbone, with baselines\n\n" + markdown(ACCURACY_HEADER, rows1),
        f"## Table 2 — ablation ({first})\n\n" + markdown(ACCURACY_HEADER, rows2),
        f"## Table 3 — trendiness groups ({first}; low t < 0.33, high t ≥ 0.66)\n\n"
        + markdown(ACCURACY_HEADER, rows3),
        "## Beyond accuracy\n\n" + markdown(BEYOND_HEADER, rows_beyond),
    ]) + "\n"  # fmt: skip
    progress("figures")
    partial = out.with_name(f".{out.name}.part")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        sweep_plot(partial / "sweep.png", metrics["sweep"])
        grid_for_user(evaluation, evaluation.shoppers.users[0].id, partial / "grid.png")
        (partial / "metrics.json").write_text(json.dumps(_clean(metrics), indent=2) + "\n")
        (partial / "tables.md").write_text(tables)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise FashionrecError(
            f"cannot write the results to {out} ({exc}); nothing written"
        ) from None
    _replace_dir(partial, out)
    metrics["tables_md"] = tables
    return metrics


def _replace_dir(new: Path, target: Path) -> None:
    """Put a fully written folder in place of target (an earlier run of the same name)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def grid_for_user(evaluation: Evaluation, user_id: str, path: Path) -> Path:
    """The recommendation grid of one user's last purchase, one row per backbone."""
    user = next(u for u in evaluation.shoppers.users if u.id == user_id)
    bought = evaluation.shoppers.purchases[user.id]
    protocol = evaluation.protocol
    rows = []
    for backbone in protocol.backbones:
        params = Params(backbone=backbone, k=protocol.k, candidates=protocol.candidates,
                        weights=protocol.weights)  # fmt: skip
        result = evaluation.recommender().for_user(user, bought, params)
        rows.append((backbone, result.per_purchase[-1][1]))
    items = evaluation.catalog.items
    images = {i: p.get("image") for i, p in items.items()}
    title = (f"{user.id} · {user.gender} · trendiness {user.trendiness:.2f} · "
             f"purchased {bought[-1].item_id}")  # fmt: skip
    return recommendation_grid(path, title, items[bought[-1].item_id], rows, images)
