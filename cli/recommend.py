"""`fashionrec recommend`: items like an item, or for a user, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.table import Column, Table
from rich.text import Text

from cli.common import (
    HomeOption,
    TaxonomyOption,
    UrlOption,
    console,
    errors,
    fail,
    home_of,
    price_text,
    serving,
    settings,
)
from cli.ranking import DEFAULT, flag, ranking_options
from engine.application.documents import Recommended, plain, recommended_from
from engine.recommend.query import RankingQuery
from engine.recommend.recommender import Params
from engine.recommend.rerank import Recommendation
from engine.settings import Settings
from engine.vocabulary.schema import provenance_text

# every field of a Recommendation, in order: the CSV carries each term the JSON does
COLUMNS: Final = tuple(f.name for f in fields(Recommendation))


@dataclass(frozen=True)
class _Column:
    """A column of the recommendation table: its header, cells, and whether it may fold."""

    header: str
    cells: list[str]
    fold: int = 0  # 0: never wraps; else the narrowest it may fold to
    right: bool = True

    @property
    def natural(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])

    @property
    def least(self) -> int:
        return min(self.natural, self.fold) if self.fold else self.natural


def decimals(values: list[float], least: int, most: int = 8) -> int:
    """The fewest decimals (least..most) at which values that differ print differently:
    a table never shows a tie the numbers do not have."""
    distinct = sorted(set(values))
    for places in range(least, most + 1):
        printed = {f"{v:.{places}f}" for v in distinct}
        if len(printed) == len(distinct):
            return places
    return most


# the order optional columns are dropped in when the terminal is too narrow
_DROP_ORDER: Final = (
    "sources",
    "product",
    "gender",
    "match",
    "shop",
    "km",
    "cat.",
    "pop.",
    "category",
    "price",
)


def _columns(recs: list[Recommendation]) -> list[_Column]:
    relevance = decimals([r.relevance for r in recs], 3)
    visual = decimals([r.visual for r in recs if r.visual is not None], 4)
    named = (
        [_Column("name", [r.name or "—" for r in recs], fold=12, right=False)]
        if any(r.name for r in recs)
        else []
    )
    priced = (
        [_Column("price", [price_text(r.price) for r in recs])]
        if any(r.price is not None for r in recs)
        else []
    )
    products = [r.product_id for r in recs]
    return [
        _Column("#", [str(r.rank) for r in recs]),
        _Column("item", [r.item_id for r in recs], fold=14, right=False),
        *named,
        *priced,
        # a catalog whose items are its products (one photo each) needs no product column
        *(
            [_Column("product", products, fold=11, right=False)]
            if products != [r.item_id for r in recs]
            else []
        ),
        _Column("category", [r.category for r in recs], fold=8, right=False),
        _Column("gender", [r.gender for r in recs], right=False),
        _Column("shop", [r.store_id or "—" for r in recs]),
        _Column("km", ["—" if r.distance_km is None else f"{r.distance_km:.1f}" for r in recs]),
        _Column("visual", ["—" if r.visual is None else f"{r.visual:.{visual}f}" for r in recs]),
        _Column("pop.", [f"{r.norm_popularity:.2f}" for r in recs]),
        _Column("match", [f"{r.popularity_term:.3f}" for r in recs]),
        _Column("cat.", [f"{r.category_sim:.2g}" for r in recs]),
        _Column("relev.", [f"{r.relevance:.{relevance}f}" for r in recs]),
        *(
            [_Column("sources", [" ".join(r.sources) for r in recs], fold=8, right=False)]
            if any(r.sources for r in recs)
            else []
        ),
    ]


def _fitting(columns: list[_Column], width: int) -> tuple[list[_Column], list[str]]:
    """The columns that fit in `width` (optional ones dropped in _DROP_ORDER) and the
    headers of those dropped."""
    kept, dropped = list(columns), []

    def needed(cs: list[_Column]) -> int:
        return sum(c.least + 3 for c in cs) + 1  # a space either side and a rule per column

    for header in _DROP_ORDER:
        if needed(kept) <= width:
            break
        if any(c.header == header for c in kept):
            kept = [c for c in kept if c.header != header]
            dropped.append(header)
    return kept, dropped


def _widths(columns: list[_Column], width: int) -> list[int]:
    """Each column's width: its natural one where the table fits, else the folding columns
    share what the others leave (each at least its narrowest)."""
    natural = [c.natural for c in columns]
    if sum(w + 3 for w in natural) + 1 <= width:
        return natural
    folding = [n for n, c in enumerate(columns) if c.fold]
    fixed = sum(natural[n] + 3 for n, c in enumerate(columns) if not c.fold) + 1
    room = width - fixed - 3 * len(folding)
    widths = list(natural)
    for left, n in enumerate(folding):  # the narrowest first, each to its share of the room
        share = room // (len(folding) - left)
        widths[n] = max(columns[n].least, min(natural[n], share))
        room -= widths[n]
    return widths


def _table(recs: list[Recommendation], width: int) -> tuple[Table, list[str]]:
    """The recommendations as a table no wider than `width` (folding the item and
    category, then dropping optional columns); the headers of the columns dropped."""
    kept, dropped = _fitting(_columns(recs), width)
    table = Table(
        *(
            Column(
                c.header,
                justify="right" if c.right else "left",
                no_wrap=not c.fold,
                overflow="fold",
                width=w,
            )
            for c, w in zip(kept, _widths(kept, width), strict=True)
        ),
        padding=(0, 1),
    )
    for row in zip(*(c.cells for c in kept), strict=True):
        table.add_row(*(Text(cell) for cell in row))  # ids are text, never markup
    return table, dropped


def _legend(found: Recommended, trendiness: str, preset: str, gone: set[str]) -> str:
    """What each column means and the weights used (printed under the tables)."""
    weights, space = found.weights, found.vectors.space
    scaled = (
        "percentile rank of the popularity in the catalog"
        if found.normalise == "rank"
        else "popularity scaled to 0..1 over the catalog (min–max)"
    )
    if found.profile is not None:
        return _blended_legend(found, trendiness, gone)
    formula = (
        f"relev. = {weights.visual:g}·visual + {weights.popularity:g}·match + "
        f"{weights.category:g}·cat."
    )
    if weights.distance:
        formula += f" + {weights.distance:g}·exp(−km/{weights.distance_scale_km:g})"
    lines = [
        f"visual: cosine similarity of the {space} embeddings to the query item's · "
        f"pop.: {scaled} · "
        f"match: the trend match 1 − |pop. − t|^{weights.gamma:g}, t = {trendiness} · "
        "cat.: category similarity (taxonomy) · km: distance to the item's shop",
        f"{formula} (weights: preset {preset}, w_v {weights.visual:g}, w_p "
        f"{weights.popularity:g}, w_c {weights.category:g}, γ {weights.gamma:g}"
        + (f", w_d {weights.distance:g}" if weights.distance else "")
        + ")",
    ]
    if gone:
        lines.append(
            f"not shown for want of width: {', '.join(sorted(gone))} (a wider terminal, "
            "--json or --csv shows every term)"
        )
    return "\n".join(lines)


def _blended_legend(found: Recommended, trendiness: str, gone: set[str]) -> str:
    """The legend of a blended list: the sources, the columns and the fitted weights."""
    profile = found.profile
    assert profile is not None
    scores = ", ".join(f"{name} {value:.3f}" for name, value in profile.validation.items())
    strongest = sorted(profile.weights.items(), key=lambda kv: -abs(kv[1]))[:5]
    lines = [
        "sources: visual (neighbours of the purchases), trending (selling now), category "
        "(best sellers of the categories bought), copurchase (bought by the same shoppers), "
        "colour (colours like a purchase's)",
        f"visual: the best cosine of the {found.vectors.space} embeddings to a purchase · "
        "pop.: percentile rank of the sales now · "
        f"match: 1 − |pop. − t|^γ, t = {trendiness} · cat.: category similarity · "
        "km: distance to the item's shop",
        "relev. = the fitted profile's weighted sum of every feature (`fashionrec tune`; "
        f"validation hit rate@{profile.fitted.get('k', 10)}: {scores}); the strongest: "
        + ", ".join(f"{name} {weight:+.2f}" for name, weight in strongest)
        + " (--preset default ranks by the hand-set weights)",
    ]
    if gone:
        lines.append(f"not shown for want of width: {', '.join(sorted(gone))}")
    return "\n".join(lines)


@ranking_options()
def recommend_command(
    item: Annotated[str | None, typer.Option(help="Recommend items like this item id.")] = None,
    user: Annotated[str | None, typer.Option(help="Recommend for this user id.")] = None,
    image: Annotated[
        Path | None,
        typer.Option(help="Recommend items like this photo (a shopper's own, any gender)."),
    ] = None,
    query: RankingQuery = DEFAULT,
    taxonomy: TaxonomyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Recommend for an item (--item), a user (--user) or a photo (--image): filtered ANN
    search, then rerank."""
    if sum(x is not None for x in (item, user, image)) != 1:
        raise fail("give exactly one of --item ITEM_ID, --user USER_ID or --image PATH")
    if image is not None and not image.is_file():
        raise fail(f"--image {image}: no such file")
    if as_json and as_csv:
        raise fail("--json and --csv both given; choose one")
    params = query.params() if user is None else query.for_user(named=flag)
    config = settings(home, qdrant_url, taxonomy)
    server = None if config.qdrant_url else serving(config.home)
    if server is not None:  # it holds the embedded store: it answers, as it would anyone
        from cli.remote import remote_recommend

        if taxonomy is not None:
            raise fail(
                f"--taxonomy: the service at {server.url} holds this home and names "
                "the catalog by its own taxonomy; drop --taxonomy"
            )
        errors.print(f"asked the service at {server.url}, which holds this home", style="dim")
        found = recommended_from(
            remote_recommend(server.url, query, item=item, user=user, image=image)
        )
    else:
        found = _recommended(config, params, item=item, user=user, image=image)
    if as_json:
        json.dump(plain(found), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(("list", *COLUMNS))
        for ranked in found.lists:
            for r in ranked.recommendations:
                writer.writerow((ranked.list, *(getattr(r, c) for c in COLUMNS)))
    else:
        _print_tables(found, query.hand_set if found.profile is None else "tuned", params)


def _recommended(
    config: Settings, params: Params, *, item: str | None, user: str | None, image: Path | None
) -> Recommended:
    """The recommendations, from this home opened here."""
    from ingest.photos import PhotoNetworks

    note = PhotoNetworks(on_note=lambda text: errors.print(text, style="dim"))
    with home_of(config, networks=note if image is not None else None) as app:
        if image is not None:
            return app.search_photo(image, params, str(image))
        if user is not None:
            return app.for_user(user, params)
        return app.similar(item or "", params)


def _print_tables(found: Recommended, preset: str, params: Params) -> None:
    """The lists as tables no wider than the terminal, a header and the legend."""
    vectors = found.vectors
    source = vectors.source
    made = (
        f" ({source['backbone']} {provenance_text(vectors.underlying)} weights)"
        if source
        else " weights"
    )
    warning = "" if vectors.meaningful else " — visual similarity is not meaningful"
    console.print(
        f"{vectors.space} vectors: {provenance_text(vectors.weights)}{made}{warning} · taxonomy "
        f"{vectors.taxonomy} · popularity {found.popularity} · strategy {found.strategy}"
    )
    if found.user is not None:
        u = found.user
        console.print(
            Text.assemble((u.id, "bold"), f" · {u.gender} · trendiness {u.trendiness:.2f}")
        )
        t = f"{u.trendiness:.2f}"
    else:
        t = f"{params.trendiness:g}"
    gone: set[str] = set()
    for ranked in found.lists:
        console.print(Text(ranked.list, style="bold"))
        if not ranked.recommendations:
            console.print(f"nothing matches{_narrowed(params)}")
            continue
        table, dropped = _table(ranked.recommendations, console.width)
        gone.update(dropped)
        console.print(table)
    if any(ranked.recommendations for ranked in found.lists):
        console.print(_legend(found, t, preset, gone), style="dim")


def _narrowed(params: Params) -> str:
    """What may have left a list empty, as the line that says so ends."""
    asked = [
        f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
        for flag, value in (
            ("--category", params.category),
            ("--min-price", params.min_price),
            ("--max-price", params.max_price),
            ("--max-km", params.max_km),
        )
        if value is not None
    ]
    stock = " (in stock only; --any-stock lists the rest)" if params.in_stock else ""
    return f" {' '.join(asked)}{stock}: widen the filters" if asked else stock
