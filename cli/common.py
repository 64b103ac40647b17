"""What the commands share: the consoles, settings from flags, opening a home, one-line errors
and progress bars."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from engine.settings import SERVE_FILE, Settings
from engine.vectorstore import VectorStore, open_store

if TYPE_CHECKING:
    from engine.application import Application, PhotoNetworks
    from engine.vectorstore.holder import Holder

FILE_WIDTH: Final = 1000  # columns when the output is a file or a pipe (COLUMNS overrides)


class _Console(Console):
    """A console as wide as its terminal, and, writing to a file or a pipe, as wide as its
    content needs (rich's 80 columns would cut tables and wrap markdown rows)."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self.is_terminal or "COLUMNS" in os.environ:
            return measured
        return ConsoleDimensions(FILE_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        vars(Console)["size"].fset(self, new_size)  # rich's own setter


console = _Console(highlight=False)
errors = _Console(stderr=True, highlight=False)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Store folder (default ./.fashionrec or $FASHIONREC_HOME)."),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--qdrant-url",
        help="Use a Qdrant server instead of the embedded store (default $FASHIONREC_QDRANT_URL).",
    ),
]

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="Send the writes through a running `fashionrec serve` at this URL "
        "(e.g. http://127.0.0.1:8000; the key from $FASHIONREC_API_KEY).",
    ),
]

TaxonomyOption = Annotated[
    str | None,
    typer.Option(
        "--taxonomy",
        help="deepfashion, retail or a TOML file (default $FASHIONREC_TAXONOMY, else the one "
        "the catalog was ingested with).",
    ),
]


def settings(home: Path | None, qdrant_url: str | None, taxonomy: str | None = None) -> Settings:
    """Settings from defaults, environment and these flags."""
    return Settings.load(home=home, qdrant_url=qdrant_url, taxonomy=taxonomy)


def store_for(config: Settings) -> VectorStore:
    """Open the configured store (embedded unless a server URL is set)."""
    return open_store(config)


INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def error_line(message: str) -> None:
    """Print `error: MESSAGE` on stderr as one line (a message of several lines, such as a
    library's, is joined); the message is text, never markup (a value in brackets, such as
    `[groups]` or a user's `[/x]`, prints as it is)."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    errors.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)


def price_text(price: float | None) -> str:
    """A price as a shop prints it: two decimals, or — where the catalog has none."""
    return "—" if price is None else f"{price:.2f}"


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    error_line(message)
    return typer.Exit(1)


def interrupted(message: str) -> typer.Exit:
    """Print what a Ctrl-C left behind (one line) and return the exit (130) to raise."""
    errors.print(escape(message), soft_wrap=True)
    return typer.Exit(INTERRUPTED)


def warn_random_weights() -> None:
    """The loud warning every use of random-init weights must print."""
    errors.print(
        "[bold yellow]WARNING: random-init weights (--weights random). The embeddings carry "
        "no visual meaning and similarities are NOT meaningful: for tests and offline demos "
        "only. Use --weights imagenet or --weights PATH for real recommendations.[/]",
        soft_wrap=True,
    )


def serving(home: Path) -> Holder | None:
    """The running `fashionrec serve` that holds this home's embedded store, if any (not
    this process): read-only commands ask it rather than open the store."""
    from engine.vectorstore.holder import read_holder

    holder = read_holder(home / SERVE_FILE)
    return holder if holder is not None and holder.pid != os.getpid() else None


def home_of(config: Settings, networks: PhotoNetworks | None = None) -> Application:
    """The application over the configured home (store and event log), to use in a `with`;
    `networks` embed photos to search by."""
    from engine.application import Application

    return Application.open(config, networks=networks)


def bulk_progress(*rates: ProgressColumn) -> Progress:
    """The bar of a bulk command: stage, items done of the total, the given rate columns,
    time elapsed and left (kept on screen when done)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *rates,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
