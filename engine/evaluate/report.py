"""One evaluation run end to end: every table, beyond-accuracy metrics, the figures' data,
written as results/<run>/metrics.json, tables.md and PNGs."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from engine.errors import FashionrecError
from engine.evaluate.baselines import Baseline
from engine.evaluate.evaluation import Evaluation
from engine.evaluate.figures import recommendation_grid, sweep_plot
from engine.evaluate.metrics import Accuracy, accuracy, by_trend_group, markdown
from engine.evaluate.protocol import SWEEP, ablation_weights, sweep_weights
from engine.schema import IMAGE, provenance_text

Progress = Callable[[str], None]
ACCURACY_HEADER: Final = (
    "system",
    "category sim. (%)",
    "gender align. (%)",
    "pop. MAE [0,1]",
    "pop. MAE ×100",
    "pairs",
)
BEYOND_HEADER: Final = (
    "system",
    "coverage",
    "diversity",
    "novelty (bits)",
    "avg NormPop",
    "hit rate@k",
    "recall@k",
)
BASELINES: Final[tuple[tuple[Baseline, str], ...]] = (
    ("random", "random (same gender)"),
    ("popular", "most popular (same gender)"),
)


def _accuracy_row(name: str, a: Accuracy) -> list[object]:
    rates = [a.category_similarity, a.gender_alignment, a.popularity_mae, a.popularity_mae_x100]
    return [name, *rates, a.pairs]


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


def run(
    evaluation: Evaluation,
    out: Path,
    setting: dict[str, Any],
    progress: Progress = lambda s: None,
) -> dict[str, Any]:
    """Every table and figure of the protocol; returns the metrics written to out/."""
    protocol = evaluation.protocol
    first = protocol.backbones[0]
    metrics: dict[str, Any] = {
        "setting": setting,
        "table1": {},
        "table2": {},
        "table3": {},
        "beyond": {},
        "sweep": {},
    }
    models = {}
    for backbone in protocol.backbones:
        progress(f"backbone {backbone}")
        models[backbone] = evaluation.run_model(backbone, protocol.weights)
    systems = {**models}
    for kind, name in BASELINES:
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
            swept = evaluation.run_model(backbone, sweep_weights(w_p), holdout=False)
            score = accuracy(evaluation.pairs(swept))
            points.append(
                {
                    "w_p": w_p,
                    "category_similarity": score.category_similarity,
                    "popularity_mae": score.popularity_mae,
                }
            )
        metrics["sweep"][backbone] = points

    w = protocol.weights
    weight_text = f"w_v {w.visual}, w_p {w.popularity}, w_c {w.category}, γ {w.gamma}"
    sections = [
        f"# Evaluation\n\n{setting['description']}\n\nWeights: {weight_text}; k {protocol.k}; "
        f"{protocol.candidates} candidates; seed {protocol.seed}.",
        "## Table 1 — per backbone, with baselines\n\n" + markdown(ACCURACY_HEADER, rows1),
        f"## Table 2 — ablation ({first})\n\n" + markdown(ACCURACY_HEADER, rows2),
        f"## Table 3 — trendiness groups ({first}; low t < 0.33, high t ≥ 0.66)\n\n"
        + markdown(ACCURACY_HEADER, rows3),
        "## Beyond accuracy\n\n" + markdown(BEYOND_HEADER, rows_beyond),
    ]
    tables = "\n\n".join(sections) + "\n"
    progress("figures")
    partial = out.with_name(f".{out.name}.part")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        sweep_plot(partial / "sweep.png", metrics["sweep"])
        grid_for_user(evaluation, evaluation.cohort.users[0].id, partial / "grid.png")
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
    user = next(u for u in evaluation.cohort.users if u.id == user_id)
    bought = evaluation.cohort.purchases[user.id]
    protocol = evaluation.protocol
    rows = []
    for backbone in protocol.backbones:
        params = evaluation.params(backbone, protocol.weights)
        result = evaluation.recommender().for_user(user, bought, params)
        weights = provenance_text(evaluation.store.provenance(backbone))
        rows.append((f"{backbone}\n{weights}", result.per_purchase[-1][1]))
    items = evaluation.items.items
    images = {i: p.get(IMAGE) for i, p in items.items()}
    purchased = items[bought[-1].item_id]
    title = (
        f"{user.id} · {user.gender} · trendiness {user.trendiness:.2f} · "
        f"purchased {bought[-1].item_id}"
    )
    return recommendation_grid(path, title, purchased, rows, images)
