"""The client of a running `fashionrec serve`: `ingest --api URL` and `purchases import --api
URL` send their work to the service that holds the store, so a catalog can grow while
recommendations are served."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import Request, urlopen

from cli.common import fail
from engine.recommend.query import RankingQuery
from engine.settings import API_KEY_ENV
from ingest.job import IngestJob

POLL_S: Final = 0.5  # between two looks at a running ingest
TIMEOUT_S: Final = 600.0  # for one request (a large purchase log is imported in one)
IMAGE_TYPES: Final = {".png": "image/png", ".webp": "image/webp"}  # else image/jpeg


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
        headers = {"Accept": "application/json", "Content-Type": kind}  # a write's, even empty
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


def sent(job: IngestJob) -> IngestJob:
    """The job with its paths made absolute: the service reads them on this machine."""
    weights = Path(job.weights)
    local = job.weights not in ("imagenet", "random") and weights.exists()
    return replace(
        job,
        path=job.path.resolve(),
        masks=None if job.masks is None else job.masks.resolve(),
        root=None if job.root is None else job.root.resolve(),
        weights=str(weights.resolve()) if local else job.weights,
    )


def follow_ingest(remote: Remote, job: IngestJob) -> Iterator[dict[str, Any]]:
    """Start an ingest inside the service and yield its state until it ends (the last one
    yielded is done or failed); the state's `url` path follows it."""
    run = remote.call("POST", "/ingest", json.dumps(sent(job).to_json()).encode())
    state = f"/ingest/{quote(str(run['id']), safe='')}"
    while run["state"] in ("checking", "running"):
        yield {**run, "url": state}
        time.sleep(POLL_S)
        run = remote.call("GET", state)
    yield {**run, "url": state}


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


def remote_delete(url: str, item_ids: list[str]) -> int:
    """Delete items through the service, one request each (every id checked first: all or
    none); how many it removed."""
    remote = Remote(url)
    for item_id in item_ids:  # an unknown id stops the command before anything is removed
        remote.call("GET", f"/items/{quote(item_id, safe='')}")
    return sum(
        int(remote.call("DELETE", f"/items/{quote(item_id, safe='')}")["deleted"])
        for item_id in dict.fromkeys(item_ids)
    )


def remote_update(url: str, item_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change an item through the service; the item as it answers it."""
    body = json.dumps(changes).encode()
    return Remote(url).call("PATCH", f"/items/{quote(item_id, safe='')}", body)


def query_string(query: RankingQuery) -> str:
    """The ranking query as the service's query parameters (the fields given)."""
    given = query.model_dump(exclude_defaults=True, exclude_none=True)
    return urlencode(
        {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in given.items()}
    )


def remote_recommend(
    url: str, query: RankingQuery, *, item: str | None, user: str | None, image: Path | None
) -> dict[str, Any]:
    """Recommendations from the service (`recommend` while it holds the store): the same
    document the command line makes, as JSON."""
    remote = Remote(url)
    asked = query_string(query)
    if image is not None:
        kind = IMAGE_TYPES.get(image.suffix.lower(), "image/jpeg")
        try:
            photo = image.read_bytes()
        except OSError as exc:
            raise fail(f"--image {image}: cannot read ({exc.strerror or exc})") from None
        return remote.call("POST", f"/search?{asked}", photo, kind=kind)
    if user is not None:
        return remote.call("GET", f"/users/{quote(user, safe='')}/recommendations?{asked}")
    return remote.call("GET", f"/items/{quote(item or '', safe='')}/similar?{asked}")
