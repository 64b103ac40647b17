"""`fashionrec evaluate` and `fashionrec show`: the paper's tables, more metrics, pictures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cli.common import (
    HomeOption,
    TaxonomyOption,
    UrlOption,
    console,
    errors,
    fail,
    home_of,
    settings,
)
from cli.ranking import DEFAULT, ranking_options
from engine.popularity.normpop import normalise_named
from engine.recommend.query import RankingQuery
from engine.recommend.scoring import preset_normalise
from engine.spaces.registry import missing_space, space_in_force, weights_text
from engine.vectorstore import VectorStore
from engine.vocabulary.backbones import BACKBONES, is_compact, unknown_backbone

# the ranking options an evaluation takes (the rest are its own, or each system's)
EVALUATED: Final = ("k", "candidates", "preset", "w_visual", "w_popularity", "w_category", "gamma")


class UsersRate(ProgressColumn):
    """Users evaluated per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f} users/s", style="progress.data.speed")


def progress_bar() -> Progress:
    """The bar of an evaluation: users done of the total, users/s, time left."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        UsersRate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


class _Told:
    """Progress on stderr where it is no terminal (a log file, a pipe, CI), which shows no
    bar: a line every 10 s at most, and at the end."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.started = self.last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        if errors.is_terminal:
            return
        now = time.monotonic()
        if now - self.last >= 10.0 or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            errors.print(f"evaluated {self.done:,} of {self.total:,} users ({rate:.1f} users/s)")


def _weights_note(store: VectorStore, backbones: list[str]) -> str:
    """Which weights embedded each backbone's vectors, and a warning for random ones."""
    parts = [f"{b}: {weights_text(store, b)} weights" for b in backbones]
    note = "; ".join(parts)
    if any("random" in p for p in parts):
        note += (
            ". Random-init weights carry no visual meaning: these numbers test the "
            "pipeline, they are not comparable with the paper's"
        )
    return note


@ranking_options(EVALUATED)
def evaluate_command(
    users: Annotated[int, typer.Option(help="Simulated users.")] = 50,
    max_purchases: Annotated[int, typer.Option(help="Purchases per user: 1..this.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the simulation and baselines.")] = 42,
    backbones: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated backbones or compact spaces (default: every space of the "
            "store, its default first)."
        ),
    ] = None,
    query: RankingQuery = DEFAULT,
    use_log: Annotated[
        bool, typer.Option("--use-log", help="Evaluate the log's users instead of simulating.")
    ] = False,
    diversity_sweep: Annotated[
        bool,
        typer.Option(
            "--diversity-sweep/--no-diversity-sweep",
            help="Also run the first backbone at MMR λ 0.25, 0.5, 0.75 and 1 (intra-list "
            "diversity, category similarity, popularity MAE). Costs time: those searches "
            "bring every candidate's vector.",
        ),
    ] = True,
    popularity: Annotated[
        str | None,
        typer.Option(help="all-time or trending (default: the store's, `popularity mode`)."),
    ] = None,
    half_life: Annotated[
        float | None, typer.Option(help="Trending: half-life in days (default: the store's).")
    ] = None,
    normalise: Annotated[
        str | None,
        typer.Option(
            help="NormPop: rank (percentile), minmax (the paper's; default with --preset "
            "paper) or saturation (s/(s+pivot), for comparison)."
        ),
    ] = None,
    shoppers: Annotated[
        str,
        typer.Option(
            help="paper (the paper's simulation) or taste (each shopper has a hidden style: "
            "colour, usage, season columns of a manifest, else clusters of another space)."
        ),
    ] = "paper",
    holdout: Annotated[
        int, typer.Option(help="Leave-last-out: purchases held out per shopper (0: skip).")
    ] = 1,
    holdout_k: Annotated[
        int, typer.Option(help="Leave-last-out: list length of hit rate, nDCG, recall.")
    ] = 10,
    split_date: Annotated[
        str | None,
        typer.Option(
            help="A time split instead of leave-last-out, as retailers score: purchases "
            "before this date (YYYY-MM-DD, or auto: two weeks before the last purchase) are "
            "the history, each shopper's in the two weeks after it the targets."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of result runs.")] = Path("results"),
    name: Annotated[str | None, typer.Option(help="Run name (default: the time).")] = None,
    taxonomy: TaxonomyOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Evaluate every user: Tables 1–3, coverage, diversity, novelty, baselines, the w_p and
    MMR λ sweeps, figures."""
    from engine.evaluate.evaluation import Evaluation
    from engine.evaluate.protocol import (
        DIVERSITY_SWEEP,
        Cohort,
        Protocol,
        StoredItems,
        logged_cohort,
        shopper_styles,
        shoppers_named,
        simulated_cohort,
    )
    from engine.evaluate.report import run
    from engine.recommend.recommender import Params
    from engine.vocabulary.geo import DEFAULT_REGION

    weights = query.weights()
    names = [b.strip() for b in (backbones or "").split(",") if b.strip()]
    Params(k=query.k, candidates=query.candidates, weights=weights)  # checked as it is made
    lambdas = DIVERSITY_SWEEP if diversity_sweep else ()
    how = normalise_named(normalise or preset_normalise(query.hand_set))
    if use_log and shoppers != "paper":
        raise fail("--shoppers simulates; with --use-log the log's shoppers are evaluated")
    run_dir = out / (name or time.strftime("%Y%m%d-%H%M%S"))
    config = settings(home, qdrant_url, taxonomy)
    with home_of(config) as app:
        store, log, named = app.store, app.log, app.taxonomy
        if not names:
            default = space_in_force(config.home, None, store.vector_dims())
            names = sorted(store.vector_dims(), key=lambda space: space != default)
            if not names:
                raise fail("the vector store is empty; run `fashionrec ingest PATH` first")
        protocol = Protocol(
            users,
            max_purchases,
            query.k,
            seed,
            tuple(names),
            weights,
            query.candidates,
            use_log,
            lambdas,
            how,
            shoppers_named(shoppers),
            holdout,
            holdout_k,
            split_date,
        ).validate()
        stored = log.popularity_settings()
        ranking = stored.overridden(popularity, half_life)
        if use_log and ranking.half_life_days != stored.half_life_days:
            raise fail(
                "--half-life with --use-log: the log's scores use the store's half-life; "
                "change it with `fashionrec popularity mode trending --half-life DAYS`"
            )
        missing = [b for b in names if b not in store.vector_dims()]
        unknown = [b for b in missing if b not in BACKBONES and not is_compact(b)]
        if unknown:
            raise fail(unknown_backbone(unknown[0], tuple(sorted(store.vector_dims()))))
        for name in missing:
            if message := missing_space(name, store.vector_dims()):
                raise fail(message)
        if missing:
            have = ", ".join(sorted(store.vector_dims())) or "none"
            raise fail(
                f"backbone(s) {', '.join(missing)} not ingested (the store has {have}); "
                "ingest them or pass --backbones"
            )
        items = StoredItems.load(store)
        bar = progress_bar()
        task = bar.add_task("reading the event log" if use_log else f"simulating {users:,} users")
        try:
            with bar:
                cohort: Cohort
                if use_log:
                    cohort = logged_cohort(items, log, ranking.mode, protocol.normalise)
                else:
                    region = log.region() or DEFAULT_REGION
                    styles = None
                    if shoppers == "taste":
                        styles = shopper_styles(store, items, names[0], seed)
                    cohort = simulated_cohort(items, protocol, region, named, ranking, styles)
                bar.update(task, total=cohort.total)
                source = (
                    "the event log's users"
                    if use_log
                    else f"{cohort.total} simulated {protocol.shoppers} shoppers"
                    + (f" (style: {styles.source})" if styles else "")
                )
                setting = {
                    "description": f"Catalog: {len(items.items)} items in {store.location}; "
                    f"{source}; taxonomy {named.name}; popularity {ranking.text()}, "
                    f"NormPop by {how}; "
                    f"{_weights_note(store, names)}.",
                    "popularity": ranking.text(),
                    "normalise": how,
                    "shoppers": shoppers,
                    "holdout": holdout,
                    "holdout_k": holdout_k,
                    "split_date": split_date,
                    "vector_weights": {b: weights_text(store, b) for b in names},
                    "users": cohort.total,
                    "max_purchases": max_purchases,
                    "k": query.k,
                    "seed": seed,
                    "backbones": names,
                    "candidates": query.candidates,
                    "use_log": use_log,
                    "diversity_sweep": list(lambdas),
                    "weights": {
                        "visual": weights.visual,
                        "popularity": weights.popularity,
                        "category": weights.category,
                        "gamma": weights.gamma,
                    },
                    "catalog_items": len(items.items),
                }
                fitted = app.profile()
                if fitted is not None and fitted.fitted.get("space") != names[0]:
                    fitted = None  # fitted on another backbone's vectors
                setting["home_profile"] = fitted is not None
                evaluation = Evaluation(store, cohort, items, protocol, named, fitted)
                told = _Told(cohort.total)

                def advance(n: int) -> None:
                    bar.advance(task, n)
                    told(n)

                metrics = run(
                    evaluation,
                    run_dir,
                    setting,
                    progress=lambda s: bar.update(task, description=s),
                    advance=advance,
                )
        except KeyboardInterrupt:
            state = bar.tasks[0]
            done = (
                ""
                if state.total is None
                else f" after {state.completed:,.0f} of {state.total:,.0f} users"
            )
            errors.print(f"interrupted{done}; nothing written", soft_wrap=True)
            raise typer.Exit(130) from None
    console.print(metrics["tables_md"])
    console.print(f"results in {run_dir}/: metrics.json, tables.md, grid.png, sweep.png")


def show_command(
    user: Annotated[str, typer.Option(help="User id.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Picture to write: .png (default results/grid-USER.png), .pdf, .svg, …"),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Recommendations per backbone.")] = 5,
    taxonomy: TaxonomyOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Write a user's recommendation grid: the last purchase and its top-k per backbone."""
    from engine.evaluate.evaluation import Evaluation
    from engine.evaluate.figures import check_picture_path
    from engine.evaluate.protocol import Protocol, StoredItems, logged_cohort
    from engine.evaluate.report import grid_for_user

    if out is not None:
        check_picture_path(out)
    config = settings(home, qdrant_url, taxonomy)
    with home_of(config) as app:
        store, log = app.store, app.log
        app.known_user(user)  # NotFoundError when the log lacks them
        items = StoredItems.load(store)
        cohort = logged_cohort(items, log, log.popularity_settings().mode)
        protocol = Protocol(k=k, backbones=tuple(sorted(store.vector_dims())))
        path = out or Path("results") / f"grid-{user}.png"
        evaluation = Evaluation(store, cohort, items, protocol, app.taxonomy)
        grid_for_user(evaluation, user, path)
    console.print(f"grid written to {path}")
