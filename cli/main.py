"""The `fashionrec` application: composes the command modules, turns errors into one line."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from cli.bulk import export_command, migrate_command
from cli.common import errors
from cli.demo import demo_command
from cli.evaluate import evaluate_command, show_command
from cli.info import info_command
from cli.ingest import ingest_command
from cli.recommend import recommend_command
from cli.serve import serve_command
from cli.shoppers import popularity_app, purchases_app, simulate_command, users_app
from cli.snapshot import app as snapshot_app
from cli.stores import app as stores_app
from cli.taxonomy import app as taxonomy_app
from cli.weights import app as weights_app
from engine.errors import FashionrecError


class Fashionrec(TyperGroup):
    """The root command group: every command's FashionrecError ends as one line, exit 1."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click)
        try:
            return super().invoke(ctx)
        except FashionrecError as exc:
            errors.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            errors.print("interrupted; run the same command again to continue where it stopped")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=Fashionrec,
    name="fashionrec",
    help="Trend-aware fashion recommendations from garment photos, backed by Qdrant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(ingest_command)
app.command("info")(info_command)
app.command("demo")(demo_command)
app.add_typer(stores_app, name="stores")
app.command("simulate")(simulate_command)
app.command("recommend")(recommend_command)
app.command("serve")(serve_command)
app.command("evaluate")(evaluate_command)
app.command("show")(show_command)
app.command("export")(export_command)
app.command("migrate")(migrate_command)
app.add_typer(purchases_app, name="purchases")
app.add_typer(users_app, name="users")
app.add_typer(popularity_app, name="popularity")
app.add_typer(snapshot_app, name="snapshot")
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(weights_app, name="weights")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
