"""Writes through a running `fashionrec serve`: `ingest --api URL` and `purchases import
--api URL` send their work to the service that holds the store, so a catalog can grow
while recommendations are served."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit
from urllib.request import Request, urlopen

import typer

from cli.common import console, errors, fail, warn_random_weights
from engine.settings import API_KEY_ENV
from ingest.options import IngestJob
from ingest.outcome import Outcome

POLL_S: Final = 0.5  # between two looks at a running ingest
TIMEOUT_S: Final = 600.0  # for one request (a large purchase log is imported in one)
INTERRUPTED: Final = 130


class Remote:
    """A running service at a URL, with the API key from $FASHIONREC_API_KEY (if set)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise fail(f"--api {url!r} is not a service URL; give e.g. http://127.0.0.1:8000")
        self.url = url.rstrip("/")
        self.key = os.environ.get(API_KEY_ENV) or None

    def call(
        self, method: str, path: str, body: bytes | None = None, kind: str = "application/json"
    ) -> dict[str, Any]:
        """The JSON answer; a one-line error (exit 1) naming the service when it refuses or
        cannot be reached."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = kind
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urlopen(request, timeout=TIMEOUT_S) as answer:
                return dict(json.loads(answer.read()))
        except HTTPError as exc:
            raise fail(f"{self.url}: {_message(exc)} (HTTP {exc.code})") from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise fail(
                f"cannot reach {self.url} ({reason}); is `fashionrec serve` running there?"
            ) from None
        except ValueError:
            raise fail(f"{self.url} did not answer JSON; is it a fashionrec service?") from None


def _message(exc: HTTPError) -> str:
    """The service's one-line error, else the HTTP reason."""
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason)


def remote_ingest(url: str, job: IngestJob, report: Path | None) -> bool:
    """Run an ingest inside the service and follow it with a progress bar; returns whether
    every item of the catalog is stored (as `run_ingest`)."""
    from cli.ingest import print_outcome, progress_bar

    if report is not None:
        raise fail("with --api the service writes the failure report under its home; drop --report")
    weights = Path(job.weights)
    local = job.weights not in ("imagenet", "random") and weights.exists()
    job = replace(
        job,
        path=job.path.resolve(),
        masks=None if job.masks is None else job.masks.resolve(),
        root=None if job.root is None else job.root.resolve(),
        weights=str(weights.resolve()) if local else job.weights,
    )
    remote = Remote(url)
    run = remote.call("POST", "/ingest", json.dumps(job.to_json()).encode())
    state = f"/ingest/{quote(str(run['id']), safe='')}"
    shown = False
    try:
        with progress_bar() as progress:
            task = progress.add_task(str(run["stage"]), total=None)
            while run["state"] in ("checking", "running"):
                if run["header"] and not shown:
                    _started(run)
                    shown = True
                progress.update(
                    task, description=str(run["stage"]), total=run["total"], completed=run["done"]
                )
                time.sleep(POLL_S)
                run = remote.call("GET", state)
            progress.update(
                task, description=str(run["stage"]), total=run["total"], completed=run["done"]
            )
    except KeyboardInterrupt:
        errors.print(
            f"interrupted; the ingest goes on in the service ({url}{state} follows it)",
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED) from None
    if run["state"] == "failed":
        raise fail(f"{url}: {run['error']}")
    if run["header"] and not shown:
        _started(run)
    outcome = Outcome.from_json(run["outcome"])
    print_outcome(outcome)
    return outcome.not_stored == 0


def _started(run: dict[str, Any]) -> None:
    """What a local run prints once its checks pass: the warning, then the header."""
    if run["weights"] == "random":
        warn_random_weights()
    console.print(run["header"], soft_wrap=True)


def remote_import(url: str, path: Path, timezone: str | None = None) -> dict[str, Any]:
    """Send a purchase log to the service, which imports it all or nothing; its summary."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or exc})") from None
    target = f"/purchases/import?name={quote(path.name)}"
    if timezone is not None:
        target += f"&timezone={quote(timezone)}"
    return Remote(url).call("POST", target, data, kind="text/csv")
