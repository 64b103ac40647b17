"""Is the rerank trend-aware? Two studies on an ingested home, over several seeds.

1. NormPop: the trend-followers' (t ≥ 0.66) popularity MAE, i.e. the mean |NormPop − t| of
   their lists, with the paper's shoppers, in all-time and trending mode, under each
   normalisation (rank, minmax, saturation); per seed and as mean ± sd, with the ratio
   trending / all-time paired by seed.
2. Taste shoppers (engine/shoppers/taste.py), leave-last-out: hit rate@k of the full model,
   its ablations and the baselines, with bootstrap intervals, per seed.

    python bench/trend.py --home HOME [--users 300] [--taste-users 1000] [--seeds 1,2,3]

Prints markdown; nothing is written to the home.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import cast

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the project, not bench/

from engine.application import Application  # noqa: E402
from engine.evaluate.evaluation import Evaluation  # noqa: E402
from engine.evaluate.holdout import FULL  # noqa: E402
from engine.evaluate.protocol import (  # noqa: E402
    Protocol,
    Shoppers,
    StoredItems,
    shopper_styles,
    shoppers_named,
    simulated_cohort,
)
from engine.events.trending import PopularityMode, PopularitySettings  # noqa: E402
from engine.popularity.normpop import Normalise  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.spaces.registry import space_in_force  # noqa: E402
from engine.vocabulary.geo import DEFAULT_REGION  # noqa: E402

NORMALISATIONS: tuple[Normalise, ...] = ("rank", "minmax", "saturation")
MODES: tuple[PopularityMode, ...] = ("all-time", "trending")


def _trend_followers(
    app: Application, items: StoredItems, protocol: Protocol, mode: PopularityMode
) -> float:
    """The high-trendiness group's popularity MAE of one evaluation (no hold-out)."""
    cohort = simulated_cohort(
        items,
        protocol,
        DEFAULT_REGION,
        app.taxonomy,
        PopularitySettings(mode),
    )
    totals = Evaluation(app.store, cohort, items, protocol, app.taxonomy).run()
    return totals.table3["high"].result().popularity_mae


def normpop_study(app: Application, space: str, users: int, seeds: list[int]) -> str:
    """Table of the trend-followers' MAE per mode and normalisation, and the ratios."""
    items = StoredItems.load(app.store)
    found: dict[tuple[str, str], list[float]] = {}
    for normalise in NORMALISATIONS:
        for mode in MODES:
            for seed in seeds:
                protocol = Protocol(
                    users=users,
                    seed=seed,
                    backbones=(space,),
                    diversity_sweep=(),
                    normalise=normalise,
                    holdout=0,
                )
                found.setdefault((normalise, mode), []).append(
                    _trend_followers(app, items, protocol, mode)
                )
    lines = [
        f"Trend-followers (t ≥ 0.66), the paper's shoppers, {users} per seed, seeds "
        f"{', '.join(map(str, seeds))}: mean |NormPop − t| of their lists, mean ± sd over seeds",
        "",
        "| NormPop | all-time | trending | trending / all-time (paired) |",
        "|---|---|---|---|",
    ]
    for normalise in NORMALISATIONS:
        a, t = found[(normalise, "all-time")], found[(normalise, "trending")]
        ratios = [y / x for x, y in zip(a, t, strict=True)]
        lines.append(f"| {normalise} | {_spread(a)} | {_spread(t)} | {_spread(ratios, 2)} |")
    return "\n".join(lines)


def taste_study(
    app: Application,
    space: str,
    users: int,
    seeds: list[int],
    mode: PopularityMode,
    k: int,
    shoppers: Shoppers = "taste",
    split: str | None = None,
) -> str:
    """Leave-last-out hit rate@k per system and seed, taste (or the paper's) shoppers."""
    items = StoredItems.load(app.store)
    styles = shopper_styles(app.store, items, space, seeds[0]) if shoppers == "taste" else None
    rows: dict[str, list[str]] = {}
    deltas: dict[str, list[str]] = {}
    for seed in seeds:
        protocol = Protocol(
            users=users,
            seed=seed,
            backbones=(space,),
            diversity_sweep=(),
            shoppers=shoppers,
            holdout_k=k,
            split=split,
        )
        cohort = simulated_cohort(
            items,
            protocol,
            DEFAULT_REGION,
            app.taxonomy,
            PopularitySettings(mode),
            styles,
        )
        totals = Evaluation(app.store, cohort, items, protocol, app.taxonomy).run()
        for name, measured in totals.holdout.result(seed).items():
            rows.setdefault(name, []).append(measured["hit_rate"].text())
            delta = measured.get("hit_rate_vs_full")
            deltas.setdefault(name, []).append("—" if delta is None else delta.text())
    header = " | ".join(f"seed {s}: hit rate@{k} | Δ" for s in seeds)
    who = f"Taste shoppers ({styles.source})" if styles else "The paper's shoppers"
    scored = "leave-last-out" if split is None else f"time split ({split}, 14 days of targets)"
    lines = [
        f"{who}, {users} per seed, {mode} popularity, {scored}, k {k}; 95 % bootstrap "
        f"intervals over shoppers; Δ: paired difference from the {FULL}",
        "",
        f"| system | {header} |",
        "|---|" + "---|---|" * len(seeds),
    ]
    for name in rows:
        cells = " | ".join(f"{h} | {d}" for h, d in zip(rows[name], deltas[name], strict=True))
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def _spread(values: list[float], digits: int = 3) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--space", default=None, help="default: the home's default space")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--taste-users", type=int, default=1000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--taste-mode", default="trending", choices=MODES)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--skip-normpop", action="store_true")
    parser.add_argument("--skip-taste", action="store_true")
    parser.add_argument(
        "--holdout-shoppers", default="taste", help="taste, paper or both (comma-separated)"
    )
    parser.add_argument("--split-date", default=None, help="a time split: auto or YYYY-MM-DD")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    started = time.perf_counter()
    with Application.open(Settings(home=args.home)) as app:
        space = args.space or space_in_force(args.home, None)
        print(f"home {args.home}: {app.store.count()} items, space {space}\n")
        if not args.skip_normpop:
            print(normpop_study(app, space, args.users, seeds) + "\n")
        if not args.skip_taste:
            mode = cast(PopularityMode, args.taste_mode)
            for who in args.holdout_shoppers.split(","):
                shoppers = shoppers_named(who.strip())
                study = taste_study(
                    app, space, args.taste_users, seeds, mode, args.k, shoppers, args.split_date
                )
                print(study)
                print()
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
