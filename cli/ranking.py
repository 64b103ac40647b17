"""The ranking options of the command line, made of the one ranking query
(engine/recommend/query.py): each of its fields an option with the field's help. A command
decorated with `ranking_options` receives the RankingQuery its options make."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import typer
from pydantic import ValidationError

from cli.common import fail
from engine.recommend.query import RankingQuery
from engine.vocabulary.geo import Location

# the options spelled otherwise than --field-name (a user's scripts use these)
SPELLED: Final = {
    "k": ("-k", "--k"),
    "space": ("--space", "--backbone"),
    "in_stock": ("--in-stock/--any-stock",),
}
NOT_OPTIONS: Final = ("backbone", "lat", "lon")  # --backbone names --space; --at LAT,LON a place
AT_HELP: Final = "Item and photo queries: LAT,LON where distances start."
KIND: Final = inspect.Parameter.POSITIONAL_OR_KEYWORD
DEFAULT: Final = RankingQuery()  # a decorated command's `query` default (its options replace it)


def _cli_type(annotation: Any) -> Any:
    """The type typer reads for a field: a closed list (Literal) as text, which the model
    checks, optional where the field is."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    optional = get_origin(annotation) in (Union, UnionType) and len(args) == 1
    inner = args[0] if optional else annotation
    inner = str if get_origin(inner) is Literal else inner
    return inner | None if optional else inner


def _options(fields: Sequence[str]) -> list[inspect.Parameter]:
    """One keyword parameter per field, annotated as typer reads an option (lat and lon:
    one --at LAT,LON)."""
    made = []
    for name in fields:
        if name == "lat":
            annotation: Any = Annotated[str | None, typer.Option("--at", help=AT_HELP)]
            made.append(inspect.Parameter("at", KIND, default=None, annotation=annotation))
        if name in NOT_OPTIONS:
            continue
        info = RankingQuery.model_fields[name]
        spelled = SPELLED.get(name, (f"--{name.replace('_', '-')}",))
        shown = info.default is not None
        option = typer.Option(*spelled, help=info.description, show_default=shown)
        annotation = Annotated[_cli_type(info.annotation), option]
        made.append(inspect.Parameter(name, KIND, default=info.default, annotation=annotation))
    return made


def flag(name: str) -> str:
    """The option that gives a field of the query (lat and lon: --at)."""
    if name in ("lat", "lon"):
        return "--at"
    return SPELLED.get(name, (f"--{name.replace('_', '-')}",))[-1].split("/")[0]


def ranking_query(values: dict[str, Any]) -> RankingQuery:
    """The query the options make; a mistake in one line naming its option."""
    at = values.pop("at", None)
    if at is not None:
        place = Location.parse(at, "--at")
        values |= {"lat": place.lat, "lon": place.lon}
    try:
        return RankingQuery(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raise fail(f"{flag(name)}: {first['msg'].lower()}") from None


def ranking_options(
    fields: Sequence[str] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the options of these fields of the ranking query (default: every
    one) where its `query` parameter stands, and pass it the RankingQuery they make."""
    chosen = list(RankingQuery.model_fields) if fields is None else list(fields)

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        generated = _options(chosen)
        names = [p.name for p in generated]
        parameters = []
        for parameter in signature.parameters.values():
            parameters.extend(generated if parameter.name == "query" else [parameter])

        @functools.wraps(command)
        def wrapper(**given: Any) -> None:
            # a caller in Python (the demo) may give only some: the rest are the defaults
            values = {name: given.pop(name) for name in names if name in given}
            command(**given, query=ranking_query(values))

        made: Any = wrapper  # typer reads the options from the signature given here
        made.__signature__ = signature.replace(parameters=parameters)
        made.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
