"""`fashionrec compact fit|list|default`: compact spaces learned from the store's own vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Column, Table

from cli.common import (
    HomeOption,
    UrlOption,
    bulk_progress,
    console,
    fail,
    interrupted,
    settings,
    store_for,
)
from engine.spaces.build import DEFAULT_SAMPLE
from engine.spaces.registry import DEFAULT_BACKBONE
from engine.vectorstore.base import Filter, VectorStore
from engine.vocabulary.backbones import BACKBONES, is_compact
from engine.vocabulary.schema import weights_field

app = typer.Typer(
    help="Compact spaces: a backbone's vectors projected by a PCA learned on the store.",
    no_args_is_help=True,
)


@app.command("fit")
def fit_command(
    backbone: Annotated[
        str, typer.Option(help="The backbone whose vectors are projected.")
    ] = "resnet50",
    dim: Annotated[
        int, typer.Option(help="Dimensions kept (below the backbone's size; 512 measured best).")
    ] = 512,
    whiten: Annotated[
        bool, typer.Option("--whiten", help="Whiten: scale each kept axis to unit variance.")
    ] = False,
    shrinkage: Annotated[
        float | None,
        typer.Option(
            help="Whitening: add this share of the mean variance to each axis's "
            "(default 1: less shrinkage measured worse)."
        ),
    ] = None,
    sample: Annotated[
        int, typer.Option(help="Vectors the projection is learned on (all when fewer).")
    ] = DEFAULT_SAMPLE,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Refit a space that exists with other settings (rewrites all)."
        ),
    ] = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Learn a PCA of a backbone's vectors and write every item's projected vector.

    The projection (PCA, or PCA-whitening with --whiten) is learned on a seeded sample and
    stored as the space `<backbone>-pca<dim>`. Resumable and idempotent: items holding this
    projection's vector are skipped, so an interrupted run, run again, writes each
    remaining item once.
    """
    from engine.spaces.build import fill, make_space, pending, plan_fit
    from engine.spaces.registry import FitRequest

    config = settings(home, qdrant_url)
    if shrinkage is None:
        shrinkage = 1.0 if whiten else 0.0
    request = FitRequest(whiten, shrinkage, sample, seed)
    store = store_for(config)
    saved = False
    try:
        plan = plan_fit(store, config.home, backbone, dim, request, replace=replace)
        try:
            if plan.refit:
                console.print(
                    f"learning {plan.name} from {plan.sample:,} {backbone} vector(s) "
                    f"({request.text()})",
                    soft_wrap=True,
                )
            space = make_space(store, config.home, plan)
            saved = plan.refit
            how = space.projection.describe()
            verb = "fitted" if plan.refit else "resuming"
            console.print(f"{verb} {space.name}: {how} · projection {space.tag}", soft_wrap=True)
            todo = pending(store, space)
            total = store.count(Filter(has_vector=space.source))
            written = 0
            if todo:
                with bulk_progress() as bar:
                    task = bar.add_task(f"writing {space.name}", total=len(todo))
                    written = fill(store, space, todo, on_progress=lambda n: bar.advance(task, n))
            if written:
                store.optimize()  # the writes moved points out of the indexed segments
            holding = store.count(Filter(has_vector=space.name))
        except KeyboardInterrupt:
            if saved and replace:
                raise interrupted(
                    "interrupted; run the same command without --replace to resume"
                ) from None
            raise interrupted("interrupted; run the same command again to resume") from None
    finally:
        store.close()
    console.print(
        f"{space.name}: wrote {written} · already written {total - len(todo)} · "
        f"{holding} of {total} {space.source} item(s) hold it · projection {space.tag}",
        soft_wrap=True,
    )
    if written:
        console.print(
            f"search it with `fashionrec recommend --backbone {space.name} …`; make it the "
            f"default with `fashionrec compact default {space.name}`",
            soft_wrap=True,
        )


@app.command("list")
def list_command(home: HomeOption = None, qdrant_url: UrlOption = None) -> None:
    """The store's compact spaces: source, size, whitening, sample, items, the default."""
    from engine.spaces.registry import list_spaces, space_in_force

    config = settings(home, qdrant_url)
    spaces = list_spaces(config.home)
    default = space_in_force(config.home, None)
    store = store_for(config)
    try:
        dims = store.vector_dims()
        held = {n: store.count(Filter(has_vector=n)) for n in dims}
        done = {  # the items holding this projection's vector
            s.name: store.count(Filter(has_vector=s.name, equals={weights_field(s.name): s.tag}))
            if s.name in dims
            else 0
            for s in spaces
        }
    finally:
        store.close()
    table = Table(
        Column("space", no_wrap=True),
        Column("source", no_wrap=True),
        Column("dims", justify="right"),
        Column("whitening", no_wrap=True),
        Column("samples", justify="right"),
        Column("var.", justify="right"),
        Column("items", justify="right", no_wrap=True),
        title="compact spaces",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for s in spaces:
        p = s.projection
        whitening = ("yes" if not p.shrinkage else f"yes, s={p.shrinkage:g}") if p.whiten else "no"
        table.add_row(
            s.name + (" *" if s.name == default else ""), s.source, str(s.dim), whitening,
            f"{p.samples:,}", f"{p.kept_variance:.1%}", f"{done[s.name]}/{held.get(s.source, 0)}",
        )  # fmt: skip
    orphans = sorted(n for n in dims if is_compact(n) and n not in {s.name for s in spaces})
    for name in orphans:
        table.add_row(name, "no projection in this home", str(dims[name]), "", "", "", "")
    if not spaces and not orphans:
        console.print(
            "no compact spaces; make one with `fashionrec compact fit --backbone resnet50 "
            "--dim 512`",
            soft_wrap=True,
        )
        console.print(f"queries search {default} unless --backbone says otherwise")
        return
    console.print(table)
    console.print(
        f"queries search {default}{' (*)' if is_compact(default) else ''} unless --backbone "
        "says otherwise · var.: share of the variance kept · items: holding the space's "
        "vector / holding the source's",
        soft_wrap=True,
    )


@app.command("default")
def default_command(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A compact space, or a backbone (resnet50: back to the raw vectors); none: "
            "show the default."
        ),
    ] = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Make a space the one queries search unless they name one (resnet50: the raw vectors)."""
    from engine.spaces.build import pending
    from engine.spaces.registry import load_space, set_default_space, space_in_force

    config = settings(home, qdrant_url)
    if name is None:
        console.print(f"queries search {space_in_force(config.home, None)}")
        return
    if name not in BACKBONES and not is_compact(name):
        raise fail(
            f"unknown space {name!r}: give a compact space (`fashionrec compact list`) or a "
            f"backbone ({', '.join(BACKBONES)})"
        )
    store = store_for(config)
    try:
        dims = store.vector_dims()
        if name not in dims and name != DEFAULT_BACKBONE:
            have = ", ".join(sorted(dims)) or "nothing"
            raise fail(f"the store has no {name} vectors (it has {have})")
        space = load_space(config.home, name) if is_compact(name) else None
        if is_compact(name):
            if space is None:
                raise fail(
                    f"{config.home} has no projection for {name}: items ingested later could "
                    "not be projected; fit it here with `fashionrec compact fit`"
                )
            left = len(pending(store, space))
            if left:
                raise fail(
                    f"{left} item(s) lack {name} vectors; finish them first: run "
                    f"`fashionrec compact fit --backbone {space.source} --dim {space.dim}` "
                    "with the settings it was fitted with"
                )
    finally:
        store.close()
    set_default_space(config.home, name)
    raw = "" if is_compact(name) else " (raw backbone vectors)"
    console.print(f"queries now search {name}{raw} unless --backbone says otherwise")


def print_spaces(store: VectorStore, home: Path) -> None:
    """`info`'s part: each compact space, how it was made, and the default space."""
    from engine.spaces.registry import list_spaces, space_in_force

    default = space_in_force(home, None)
    for space in list_spaces(home):
        mark = " (default)" if space.name == default else ""
        made = space.projection.describe()
        console.print(
            f"compact space {space.name}{mark}: {made}; projection {space.tag}", soft_wrap=True
        )
    console.print(f"queries search {default} unless --backbone says otherwise")
