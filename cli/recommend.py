"""`fashionrec recommend`: items like an item, or for a user, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from cli.common import (
    HomeOption,
    TaxonomyOption,
    UrlOption,
    console,
    fail,
    settings,
    taxonomy_for,
    world,
)
from engine.geo import Location
from engine.recommend.scoring import preset_weights
from engine.schema import provenance_text

if TYPE_CHECKING:
    from engine.recommend.rerank import Recommendation

COLUMNS = (
    "rank",
    "item_id",
    "product_id",
    "category",
    "gender",
    "store_id",
    "distance_km",
    "visual",
    "norm_popularity",
    "category_sim",
    "relevance",
)


def _table(title: str, recs: list[Recommendation], wide: bool) -> Table:
    """The recommendations as a table; narrow terminals drop product and gender (the item id
    holds the product, and every row has the query's gender)."""
    text = [("item", 12), ("product", 11), ("category", 8), ("gender", 5)]
    if not wide:
        text = [text[0], text[2]]
    numbers = ("store", "km", "visual", "pop.", "cat.", "relev.")
    table = Table(
        Column("#", no_wrap=True),
        *(Column(h, overflow="fold", min_width=w) for h, w in text),
        *(Column(h, no_wrap=True, justify="right") for h in numbers),
        title=title,
        padding=(0, 1),
    )
    for r in recs:
        km = "—" if r.distance_km is None else f"{r.distance_km:.1f}"
        cells = [r.item_id, r.product_id, r.category, r.gender] if wide else [r.item_id, r.category]
        table.add_row(
            str(r.rank),
            *cells,
            r.store_id or "—",
            km,
            f"{r.visual:.4f}",
            f"{r.norm_popularity:.2f}",
            f"{r.category_sim:.1f}",
            f"{r.relevance:.3f}",
        )
    return table


def recommend_command(
    item: Annotated[str | None, typer.Option(help="Recommend items like this item id.")] = None,
    user: Annotated[str | None, typer.Option(help="Recommend for this user id.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Recommendations per list.")] = 5,
    backbone: Annotated[str, typer.Option(help="Vector space to search.")] = "resnet50",
    candidates: Annotated[int, typer.Option(help="ANN candidates before the rerank.")] = 100,
    preset: Annotated[
        str, typer.Option(help="default (0.6/0.2/0.2) or paper (0.7/0.3/0).")
    ] = "default",
    w_visual: Annotated[float | None, typer.Option(help="w_v, visual similarity.")] = None,
    w_popularity: Annotated[
        float | None, typer.Option(help="w_p, trend-matched popularity.")
    ] = None,
    w_category: Annotated[float | None, typer.Option(help="w_c, category similarity.")] = None,
    gamma: Annotated[float | None, typer.Option(help="γ of 1 − |NormPop − t|^γ.")] = None,
    w_distance: Annotated[float, typer.Option(help="w_d of w_d·exp(−d/scale).")] = 0.0,
    distance_scale_km: Annotated[float, typer.Option(help="scale of the distance term.")] = 5.0,
    max_km: Annotated[float | None, typer.Option(help="Only stores within this many km.")] = None,
    trendiness: Annotated[float, typer.Option(help="t for item queries.")] = 0.5,
    gender: Annotated[
        str | None, typer.Option(help="Item queries: a gender of the taxonomy (MEN, WOMEN, …).")
    ] = None,
    at: Annotated[str | None, typer.Option(help="Item queries: LAT,LON for distances.")] = None,
    taxonomy: TaxonomyOption = None,
    rerank: Annotated[
        str, typer.Option(help="client (numpy) or server (the formula inside Qdrant).")
    ] = "client",
    diversity: Annotated[
        float,
        typer.Option(
            help="λ of maximal marginal relevance: 0 ranks by relevance (off), 1 by "
            "unlikeness to what is already listed."
        ),
    ] = 0.0,
    popularity: Annotated[
        str | None,
        typer.Option(help="all-time or trending (default: the store's, `popularity mode`)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Recommend for an item (--item) or a user (--user): filtered ANN search, then rerank."""
    from engine.recommend.recommender import Params, Recommender

    if (item is None) == (user is None):
        raise fail("give exactly one of --item ITEM_ID or --user USER_ID")
    weights = preset_weights(
        preset,
        visual=w_visual,
        popularity=w_popularity,
        category=w_category,
        gamma=gamma,
        distance=w_distance,
        distance_scale_km=distance_scale_km,
    )
    params = Params(
        backbone=backbone,
        k=k,
        candidates=candidates,
        weights=weights,
        trendiness=trendiness,
        gender=None,
        max_km=max_km,
        at=None if at is None else Location.parse(at, "--at"),
        rerank=rerank,  # type: ignore[arg-type]
        diversity=diversity,
        popularity=popularity or "all-time",  # type: ignore[arg-type]
    ).validate()
    config = settings(home, qdrant_url, taxonomy)
    with world(config) as (store, log):
        if popularity is None:
            params = replace(params, popularity=log.popularity_settings().mode)
        names = taxonomy_for(config, log)
        if gender is not None:
            known = names.gender(gender)
            if known is None:
                genders = ", ".join(names.all_genders)
                raise fail(f"--gender must be one of {genders}, got {gender!r}")
            params = replace(params, gender=known)
        recommender = Recommender(store, names)
        if item is not None:
            lists = [(f"like {item}", recommender.for_item(item, params))]
            header: dict[str, object] = {"item": item}
        else:
            shopper = log.user(user or "")
            if shopper is None:
                raise fail(f"unknown user {user!r}; `fashionrec users list` shows them")
            result = recommender.for_user(shopper, list(log.purchases(shopper.id)), params)
            lists = [(f"after {p.item_id}", recs) for p, recs in result.per_purchase]
            lists.append(("merged", result.merged))
            header = {"user": asdict(shopper)}
        provenance = store.provenance(backbone)
        ranking = log.popularity_settings()
    trend = replace(ranking, mode=params.popularity).text()
    vectors = {"backbone": backbone, "weights": provenance, "taxonomy": names.name}
    warning = (
        ""
        if provenance and "random" not in provenance
        else " — visual similarity is not meaningful"
    )
    if as_json:
        body = [
            {"list": name, "recommendations": [asdict(r) for r in recs]} for name, recs in lists
        ]
        document = {
            **header,
            "vectors": vectors,
            "weights": asdict(weights),
            "popularity": trend,
            "lists": body,
        }
        json.dump(document, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(("list", *COLUMNS))
        for name, recs in lists:
            for r in recs:
                writer.writerow((name, *(getattr(r, c) for c in COLUMNS)))
    else:
        console.print(
            f"{backbone} vectors: {provenance_text(provenance)} weights{warning} · taxonomy "
            f"{names.name} · popularity {trend}"
        )
        if user is not None:
            u = header["user"]
            console.print(
                f"[bold]{user}[/] · {u['gender']} · trendiness {u['trendiness']:.2f}"  # type: ignore[index]
            )
        for name, recs in lists:
            console.print(_table(name, recs, wide=console.width >= 140))
