"""One evaluation run end to end: every table, beyond-accuracy metrics, the figures' data,
written as results/<run>/metrics.json, tables.md and PNGs."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from engine.errors import FashionrecError, NotFoundError
from engine.evaluate.evaluation import Evaluation
from engine.evaluate.figures import recommendation_grid, sweep_plot
from engine.evaluate.holdout import ABLATIONS, FULL, METRICS, SOURCE_ABLATIONS, HoldoutSum
from engine.evaluate.metrics import Accuracy, markdown
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import IMAGE, provenance_text

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
)
DIVERSITY_HEADER: Final = (
    "λ",
    "intra-list diversity",
    "category sim. (%)",
    "pop. MAE [0,1]",
    "pop. MAE ×100",
    "coverage",
    "pairs",
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
    advance: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Every table and figure of the protocol; returns the metrics written to out/.

    The users stream through every system once (`Evaluation.run`, which tells `advance`
    how many users it has walked through); `setting["users"]` becomes the number evaluated.
    """
    protocol = evaluation.protocol
    first = protocol.backbones[0]
    progress("evaluating")
    totals = evaluation.run(advance)
    if not totals.users or totals.first is None:
        raise NotFoundError("no user has purchases to evaluate")
    metrics: dict[str, Any] = {
        "setting": {**setting, "users": totals.users},
        "table1": {},
        "table2": {},
        "table3": {},
        "beyond": {},
        "sweep": {},
        "diversity_sweep": {},  # the first backbone's, per MMR λ (none when skipped)
    }
    rows1, rows_beyond = [], []
    for name, total in totals.table1.items():
        score = total.result()
        metrics["table1"][name] = _accuracy_json(score)
        rows1.append(_accuracy_row(name, score))
        beyond = totals.beyond[name].result(len(evaluation.items.items))
        metrics["beyond"][name] = beyond
        rows_beyond.append([name, *beyond.values()])
    rows2 = []
    for name, total in totals.table2.items():
        score = total.result()
        metrics["table2"][name] = _accuracy_json(score)
        rows2.append(_accuracy_row(name, score))
    rows3, rows3_other = [], []
    metrics["table3_other"] = {"popularity": evaluation.other_mode, "groups": {}}
    for group, total in totals.table3.items():
        score = total.result()
        metrics["table3"][group] = _accuracy_json(score)
        rows3.append(_accuracy_row(group, score))
        other = totals.table3_other[group].result()
        metrics["table3_other"]["groups"][group] = _accuracy_json(other)
        rows3_other.append(_accuracy_row(group, other))
    for backbone, sweep in totals.sweep.items():
        points = []
        for w_p, total in sweep.items():
            score = total.result()
            points.append(
                {
                    "w_p": w_p,
                    "category_similarity": score.category_similarity,
                    "popularity_mae": score.popularity_mae,
                }
            )
        metrics["sweep"][backbone] = points
    rows_diversity = []
    if totals.mmr:
        points = []
        for diversity, point in totals.mmr.items():
            measured = point.result(len(evaluation.items.items))
            points.append({"lambda": diversity, **measured})
            rows_diversity.append([f"{diversity:g}", *measured.values()])
        metrics["diversity_sweep"][first] = points

    w = protocol.weights
    weight_text = f"w_v {w.visual}, w_p {w.popularity}, w_c {w.category}, γ {w.gamma}"
    sections = [
        f"# Evaluation\n\n{setting['description']}\n\nWeights: {weight_text}; k {protocol.k}; "
        f"{protocol.candidates} candidates; seed {protocol.seed}.",
        "## Table 1 — per backbone, with baselines\n\n" + markdown(ACCURACY_HEADER, rows1),
        f"## Table 2 — ablation ({first})\n\n" + markdown(ACCURACY_HEADER, rows2),
        f"## Table 3 — trendiness groups ({first}; low t < 0.33, high t ≥ 0.66; "
        f"popularity {evaluation.cohort.mode})\n\n" + markdown(ACCURACY_HEADER, rows3),
        f"## Table 3 on the other popularity ({first}; the same shoppers, ranked on "
        f"{evaluation.other_mode} popularity)\n\n" + markdown(ACCURACY_HEADER, rows3_other),
        "## Beyond accuracy\n\n" + markdown(BEYOND_HEADER, rows_beyond),
    ]
    if totals.holdout.shoppers:
        holdout, rows_holdout, rows_ablation = _holdout(totals.holdout, protocol.seed)
        metrics["holdout"] = holdout
        k = protocol.holdout_k
        split = evaluation.lastout().split
        title = (
            f"Leave-last-out ({first}; {totals.holdout.shoppers} shoppers, the last "
            f"{protocol.holdout} purchase(s) held out, k {k})"
        )
        if split is not None:
            holdout["split"] = split.isoformat()
            title = (
                f"Time split ({first}; {totals.holdout.shoppers} shoppers: purchases before "
                f"{split:%Y-%m-%d %H:%M} are the history, each shopper's in the "
                f"{protocol.window_days:g} days after it the targets, k {k})"
            )
        sections.append(
            f"## {title}\n\n"
            "Means over shoppers with 95 % bootstrap intervals; Δ: the paired difference "
            "from the full model (candidates from every source, weights fitted on the "
            "shoppers' earlier purchases, never a target).\n\n"
            + markdown(_holdout_header(k, ("system",)), rows_holdout)
        )
        sections.append(
            f"## Ablation, {'time split' if split else 'leave-last-out'} ({first}; each "
            "source left out, each term's "
            "weights set to 0)\n\n" + markdown(_holdout_header(k, ("removed",)), rows_ablation)
        )
    if rows_diversity:
        sections.append(
            f"## Diversity sweep — MMR λ ({first}, the weights above)\n\n"
            "λ = 0 is the full model; intra-list diversity is the mean pairwise 1 − cosine "
            f"of each list's {first} vectors.\n\n" + markdown(DIVERSITY_HEADER, rows_diversity)
        )
    tables = "\n\n".join(sections) + "\n"
    progress("figures")
    partial = out.with_name(f".{out.name}.part")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        sweep_plot(partial / "sweep.png", metrics["sweep"], metrics["diversity_sweep"])
        grid(evaluation, *totals.first, partial / "grid.png")
        (partial / "metrics.json").write_text(json.dumps(_clean(metrics), indent=2) + "\n")
        (partial / "tables.md").write_text(tables)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise FashionrecError(
            f"cannot write the results to {out} ({exc}); nothing written"
        ) from None
    except BaseException:  # Ctrl-C while writing: leave nothing half written either
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _replace_dir(partial, out)
    metrics["tables_md"] = tables
    return metrics


def _holdout_header(k: int, first: tuple[str, ...]) -> tuple[str, ...]:
    return (*first, f"hit rate@{k}", f"nDCG@{k}", f"recall@{k}", f"Δ hit rate@{k}")


def _holdout(
    totals: HoldoutSum, seed: int
) -> tuple[dict[str, Any], list[list[object]], list[list[object]]]:
    """The leave-last-out results as JSON, and the rows of its two tables (systems and
    baselines; the ablations)."""
    result = totals.result(seed)
    as_json: dict[str, Any] = {"shoppers": totals.shoppers, "k": totals.k, "systems": {}}
    rows: list[list[object]] = []
    ablations: list[list[object]] = []
    for name, measured in result.items():
        as_json["systems"][name] = {key: asdict(value) for key, value in measured.items()}
        delta = measured.get("hit_rate_vs_full")
        row: list[object] = [
            name,
            *(measured[m].text() for m in METRICS),
            "—" if delta is None else delta.text(),
        ]
        removed = name in ABLATIONS or name in SOURCE_ABLATIONS.values()
        (ablations if removed else rows).append(row)
    full = next(r for r in rows if r[0] == FULL)
    return as_json, rows, [full, *ablations]


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
    found = evaluation.cohort.find(user_id)
    if found is None:
        raise NotFoundError(f"user {user_id!r} has no purchases to recommend from")
    return grid(evaluation, *found, path)


def grid(evaluation: Evaluation, user: User, bought: Sequence[Purchase], path: Path) -> Path:
    """The recommendation grid of this user's last purchase, one row per backbone."""
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
