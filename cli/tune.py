"""`fashionrec tune`: the ranking's weights fitted on the home's own purchase log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.common import HomeOption, UrlOption, console, home_of, settings
from engine.recommend.pool import FEATURES


def tune_command(
    space: Annotated[
        str | None,
        typer.Option("--space", "--backbone", help="The space to rank in (default: the home's)."),
    ] = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Fit the ranking's weights on the shop's purchase log and keep them in the home.

    Fits on the earlier purchases and validates on each shopper's later ones (the latest
    fifth of the log); prints the validation hit rate beside the hand-set presets."""
    with home_of(settings(home, qdrant_url)) as app:
        with console.status("fitting the ranking's weights on the purchase log…"):
            profile = app.tune(space)
        where = app.settings.home / "profile.json"
    fitted = profile.fitted
    console.print(
        f"fitted on {fitted['fitted_purchases']} purchases before {fitted['split'][:10]}, "
        f"validated on {fitted['validated_purchases']} later ones "
        f"({fitted['shoppers']} shoppers with 2+ purchases, space {fitted['space']})"
    )
    scores = Table(title=f"validation: hit rate@{fitted['k']} on the later purchases")
    scores.add_column("weights")
    scores.add_column(f"hit rate@{fitted['k']}", justify="right")
    for name, value in profile.validation.items():
        scores.add_row(name, f"{value:.3f}")
    console.print(scores)
    weights = Table(title="fitted weights (per unit of each feature)")
    weights.add_column("feature")
    weights.add_column("weight", justify="right")
    for feature in FEATURES:
        weights.add_row(feature, f"{profile.weights.get(feature, 0.0):+.3f}")
    console.print(weights)
    console.print(f"saved to {where}")
