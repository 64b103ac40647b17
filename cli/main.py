"""The `fashionrec` application: composes the command modules, turns errors into one line."""

from __future__ import annotations

from importlib import metadata
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli.bulk import export_command, migrate_command
from cli.common import console, error_line, interrupted
from cli.compact import app as compact_app
from cli.demo import demo_command
from cli.evaluate import evaluate_command, show_command
from cli.info import info_command
from cli.ingest import ingest_command
from cli.items import app as items_app
from cli.recommend import recommend_command
from cli.serve import serve_command
from cli.shoppers import popularity_app, purchases_app, simulate_command, users_app
from cli.shops import app as shops_app
from cli.snapshot import app as snapshot_app
from cli.taxonomy import app as taxonomy_app
from cli.tune import tune_command
from cli.weights import app as weights_app
from engine.errors import FashionrecError


def _usage_line(exc: typer.TyperException) -> str:
    """A click usage error (a missing option, a value of the wrong type, an unknown
    command) as one line that says where the help is."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    if context is None:
        return message
    return f"{message.rstrip('.')}; see `{context.command_path} --help`"


def _flags_take_no_value(command: Any, ctx: Any) -> None:
    """Show a flag (`--json`, `--version`, `--help`) in the help without a type, as it
    takes no value: typer labels every option with its type, `<bool>` included."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_take_no_value(sub, ctx)


class Fashionrec(TyperGroup):
    """The root command group: every command's FashionrecError and every mistake in its
    arguments ends as one line on stderr (exit 1, or click's 2 for arguments); Ctrl-C
    ends as one line and exit 130 (commands that can say more, say it themselves)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        _flags_take_no_value(self, ctx)
        return super().parse_args(ctx, args)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:  # a click Context
        try:
            return super().make_context(*args, **kwargs)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # `fashionrec` alone prints the help
            error_line(_usage_line(exc))
            raise typer.Exit(exc.exit_code) from None

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click)
        try:
            return super().invoke(ctx)
        except FashionrecError as exc:
            error_line(str(exc))
            raise typer.Exit(1) from None
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # `fashionrec stores` alone prints the group's help
            error_line(_usage_line(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise interrupted("interrupted") from None


app = typer.Typer(
    cls=Fashionrec,
    name="fashionrec",
    help="Trend-aware fashion recommendations from garment photos, backed by Qdrant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(asked: bool) -> None:
    if asked:
        console.print(f"fashionrec {metadata.version('fashionrec')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Trend-aware fashion recommendations from garment photos, backed by Qdrant."""


app.command("ingest")(ingest_command)
app.command("info")(info_command)
app.command("demo")(demo_command)
app.add_typer(shops_app, name="shops")
app.add_typer(shops_app, name="stores", hidden=True)  # the former name
app.command("simulate")(simulate_command)
app.command("recommend")(recommend_command)
app.command("serve")(serve_command)
app.command("evaluate")(evaluate_command)
app.command("tune")(tune_command)
app.command("show")(show_command)
app.command("export")(export_command)
app.command("migrate")(migrate_command)
app.add_typer(items_app, name="items")
app.add_typer(purchases_app, name="purchases")
app.add_typer(users_app, name="users")
app.add_typer(popularity_app, name="popularity")
app.add_typer(snapshot_app, name="snapshot")
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(weights_app, name="weights")
app.add_typer(compact_app, name="compact")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
