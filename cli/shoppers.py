"""`fashionrec simulate`, `purchases`, `users` and `popularity`: the shoppers around the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from cli.common import (
    ApiOption,
    HomeOption,
    UrlOption,
    console,
    home_of,
    interrupted,
    price_text,
    settings,
)

purchases_app = typer.Typer(
    help="Purchase logs: import real ones, export all.", no_args_is_help=True
)
users_app = typer.Typer(
    help="Shoppers: gender, trendiness, residence, purchases.", no_args_is_help=True
)
popularity_app = typer.Typer(help="Item popularity in the vector store.", no_args_is_help=True)


def simulate_command(
    users: Annotated[int, typer.Option(help="Simulated users.")] = 15,
    max_purchases: Annotated[int, typer.Option(help="Purchases per user: 1..this.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same users and purchases.")] = 42,
    p_max: Annotated[int, typer.Option(help="Initial popularity: uniform in [0, P_MAX].")] = 100,
    p_threshold: Annotated[
        float, typer.Option(help="Popular items: the top fraction by current popularity.")
    ] = 0.15,
    start: Annotated[
        str, typer.Option(help="First day of the period (YYYY-MM-DD).")
    ] = "2025-01-01",
    days: Annotated[int, typer.Option(help="Length of the period in days.")] = 365,
    clear: Annotated[
        bool,
        typer.Option(
            "--clear",
            help="Remove what simulate wrote (its purchases, its shoppers and the drawn "
            "initial popularity) and simulate nothing; real purchases stay, and so does a "
            "simulated shopper who has some.",
        ),
    ] = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Simulate trend-aware shoppers and their purchases; popularity moves with each one.
    Each seed once per home (--clear removes every simulation)."""
    from engine.shoppers.simulation import SimulationConfig, parse_day
    from engine.shoppers.simulations import clear_simulation, run_simulation

    if clear:
        with home_of(settings(home, qdrant_url)) as app:
            users_removed, purchases_removed = clear_simulation(app.store, app.log)
            left = app.log.purchase_count()
        console.print(
            f"removed {users_removed} simulated shopper(s), {purchases_removed} simulated "
            f"purchase(s) and the drawn initial popularity; {left} purchase(s) left"
        )
        return

    first_day = parse_day(start, "--start")
    config = SimulationConfig(
        users, max_purchases, seed, p_max, p_threshold, first_day, days
    ).validate()
    stages: list[str] = []

    def stage(name: str) -> None:
        stages.append(name)
        console.print(f"… {name}")

    with home_of(settings(home, qdrant_url)) as app:
        try:
            result = run_simulation(app.store, app.log, config, on_stage=stage)
        except KeyboardInterrupt:
            raise interrupted(_simulation_interrupted(stages)) from None
    bought: dict[str, int] = {}
    for p in result.purchases:
        bought[p.user_id] = bought.get(p.user_id, 0) + 1
    table = Table("user", "gender", "trendiness", "purchases", title="simulated users")
    for u in result.users:
        table.add_row(u.id, u.gender, f"{u.trendiness:.2f}", str(bought.get(u.id, 0)))
    console.print(table)
    console.print(
        f"{len(result.users)} users, {len(result.purchases)} purchases logged (seed {seed})"
    )


def _simulation_interrupted(stages: list[str]) -> str:
    """What a Ctrl-C during `simulate` left: the users and purchases are logged in one
    transaction just before the popularity payloads are synced."""
    if not any(s in ("syncing popularity", "indexing") for s in stages):
        return "interrupted; no user or purchase was logged; run the same command again"
    return (
        "interrupted; the simulated users and purchases are logged, the store's popularity "
        "is not yet in step: run `fashionrec popularity sync` (simulate again would add more "
        "users)"
    )


@purchases_app.command("import")
def purchases_import(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV: user_id,item_id,timestamp[,store_id,gender,trendiness,event_id]."
        ),
    ],
    timezone: Annotated[
        str | None,
        typer.Option(help="Read timestamps without a zone in this one (e.g. Europe/Paris)."),
    ] = None,
    api: ApiOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Import a real purchase log; every row is checked first, and it is all or nothing.

    Each event counts once (by its event_id, else by user, item, time and store): rows
    already in the log, or repeated in the file, are counted and left out.
    """
    from engine.shoppers.purchases import ImportSummary, time_zone

    zone = None if timezone is None else time_zone(timezone)
    if api is not None:
        from cli.remote import remote_import

        done = remote_import(api, path, timezone)
        summary = ImportSummary(**{**done, "repeated": tuple(done["repeated"])})
    else:
        with home_of(settings(home, qdrant_url)) as app:
            before = app.log.purchase_count()
            try:
                summary = app.import_purchases(path, zone=zone)
            except KeyboardInterrupt:
                if app.log.purchase_count() == before:  # recording is one transaction
                    message = "interrupted; nothing imported; run the same command again"
                else:
                    message = (
                        "interrupted; the purchases are imported, the store's popularity is "
                        "not yet in step: run `fashionrec popularity sync`"
                    )
                raise interrupted(message) from None
    console.print(
        f"imported {summary.purchases} purchase(s) of {summary.items} item(s); "
        f"{summary.new_users} new user(s)"
        + (f"; times without a zone read in {timezone}" if timezone else "")
    )
    if summary.already:
        console.print(f"{summary.already} row(s) already in the log, left out")
    if summary.repeated:
        shown = ", ".join(map(str, summary.repeated[:10]))
        more = ", …" if len(summary.repeated) > 10 else ""
        console.print(
            f"{len(summary.repeated)} row(s) repeat an earlier row of the file, counted once "
            f"(lines {shown}{more})"
        )


@purchases_app.command("export")
def purchases_export(
    path: Annotated[Path, typer.Argument(help="CSV file to write.")],
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Export every purchase with its user's gender and trendiness (re-importable)."""
    from engine.shoppers.purchaselog import check_export_path, export_purchases

    check_export_path(path)  # before the home is opened: a mistake creates nothing
    with home_of(settings(home, qdrant_url)) as app:
        count = export_purchases(app.log, path)
    console.print(f"{count} purchase(s) written to {path}")


@users_app.command("show")
def users_show(
    user_id: Annotated[str, typer.Argument(help="User id, e.g. sim-00001.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """A user's gender, trendiness, residence and purchases (what, where, and the distance to
    each store)."""
    import json

    from engine.application.documents import plain

    with home_of(settings(home, qdrant_url)) as app:
        user = app.user(user_id)
    if as_json:
        console.print_json(json.dumps(plain(user)))
        return
    console.print(
        f"[bold]{escape(user.id)}[/] · {user.gender} · trendiness {user.trendiness:.2f} · "
        f"lives at {user.residence.lat:.5f}, {user.residence.lon:.5f}"
    )
    if not user.purchases:
        console.print("no purchases")
        return
    named = any(p.name for p in user.purchases)
    priced = any(p.price is not None for p in user.purchases)
    table = Table(
        "time",
        Column("item", overflow="fold"),
        *([Column("name", overflow="fold")] if named else []),
        *([Column("price", justify="right")] if priced else []),
        Column("category", overflow="fold"),
        "shop",
        "km away",
        title="purchases",
    )
    for p in user.purchases:
        km = "—" if p.distance_km is None else f"{p.distance_km:.1f}"
        what = p.category if p.in_catalog else "(no longer in the catalog)"
        table.add_row(
            p.timestamp.isoformat(timespec="minutes"),
            Text(p.item_id),
            *([Text(p.name or "—")] if named else []),
            *([price_text(p.price)] if priced else []),
            Text(what or "—"),
            p.store_id or "—",
            km,
        )
    console.print(table)


@users_app.command("list")
def users_list(home: HomeOption = None, qdrant_url: UrlOption = None) -> None:
    """Every user id."""
    with home_of(settings(home, qdrant_url)) as app:
        ids = app.log.user_ids()
    console.print("\n".join(ids) if ids else "no users: run `fashionrec simulate`")


@popularity_app.command("sync")
def popularity_sync(home: HomeOption = None, qdrant_url: UrlOption = None) -> None:
    """Rebuild every item's popularity payload from the event log."""
    from engine.popularity.upkeep import sync_popularity
    from engine.vocabulary.schema import POPULARITY

    with home_of(settings(home, qdrant_url)) as app:
        count = sync_popularity(app.store, app.log)
        low, high = app.store.value_range(POPULARITY) or (0.0, 0.0)
    console.print(f"popularity of {count} item(s) written; catalog range {low:g}..{high:g}")


@popularity_app.command("mode")
def popularity_mode(
    mode: Annotated[
        str | None, typer.Argument(help="all-time or trending (none: show the one in force).")
    ] = None,
    half_life: Annotated[
        float | None, typer.Option(help="Trending: days after which a sale counts half.")
    ] = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Show or set the popularity that ranks: all-time (initial popularity + purchases)
    or trending (purchases halving every half-life); recommend, evaluate and serve use it."""
    from engine.popularity.upkeep import sync_popularity

    with home_of(settings(home, qdrant_url)) as app:
        current = app.log.popularity_settings()
        if mode is None and half_life is None:
            console.print(f"popularity: {current.text()}")
            return
        chosen = current.overridden(mode, half_life)
        app.log.set_popularity_settings(chosen)
        if chosen != current:
            sync_popularity(app.store, app.log)  # the payloads carry the scores it ranks on
    console.print(f"popularity: {chosen.text()} (was {current.text()})")


@popularity_app.command("top")
def popularity_top(
    n: Annotated[int, typer.Option("-n", min=1, help="How many items.")] = 20,
    mode: Annotated[
        str | None, typer.Option(help="all-time or trending (default: the one in force).")
    ] = None,
    half_life: Annotated[
        float | None, typer.Option(help="Trending: half-life in days (default: the store's).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="A date (its end, UTC) or an ISO time with a zone; default now."),
    ] = None,
    gender: Annotated[str | None, typer.Option(help="Only items of this gender.")] = None,
    category: Annotated[str | None, typer.Option(help="Only items of this category.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """The catalog's most popular items as of a time (purchases after it do not count)."""
    import json
    from dataclasses import asdict

    from engine.events.trending import parse_as_of
    from engine.popularity.popular import top_items
    from engine.vocabulary.schema import CATEGORY, GENDER

    when = parse_as_of(as_of)
    with home_of(settings(home, qdrant_url)) as app:
        current = app.log.popularity_settings()
        chosen = current.overridden(mode, half_life)
        equals = app.filters(gender, category)
        top = top_items(
            app.store, app.log, chosen, when, n, equals.get(GENDER), equals.get(CATEGORY)
        )
    if as_json:
        document = {
            "mode": chosen.text(),
            "as_of": when.isoformat(),
            "items": [asdict(p) for p in top],
        }
        console.print_json(json.dumps(document))
        return
    if not top:
        console.print("nothing matches: no item of the catalog has that gender and category")
        return
    named = any(p.name for p in top)
    priced = any(p.price is not None for p in top)
    table = Table(
        "#",
        Column("item", overflow="fold"),  # ids are wrapped whole, never cut
        *([Column("name", overflow="fold")] if named else []),
        *([Column("price", justify="right")] if priced else []),
        "gender",
        Column("category", overflow="fold"),
        "shop",
        "score",
        "sales",
        title=f"most popular, {chosen.text()}, as of {when.isoformat(timespec='seconds')}",
    )
    for p in top:
        score = f"{p.score:.0f}" if chosen.mode == "all-time" else _decayed(p.score)
        described: list[Text | str] = [
            *([Text(p.name or "—")] if named else []),
            *([price_text(p.price)] if priced else []),
        ]
        table.add_row(
            str(p.rank),
            Text(p.item_id),
            *described,
            p.gender,
            p.category,
            p.store_id or "—",
            score,
            str(p.purchases),
        )
    console.print(table)
    console.print(
        "score: initial popularity + sales"
        if chosen.mode == "all-time"
        else f"score: sales, each halved every {chosen.half_life_days:g} days before then"
    )


def _decayed(score: float) -> str:
    """A trending score for people: two decimals, `<0.01` for what has all but decayed."""
    return "<0.01" if 0 < score < 0.005 else f"{score:.2f}"
