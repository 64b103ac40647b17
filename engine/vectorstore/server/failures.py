"""A Qdrant server's failures (transport, answers, refusals) as one-line StoreErrors
(engine/vectorstore/server/)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import ValidationError
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from engine.errors import StoreError, one_line

T = TypeVar("T")


@contextmanager
def guard(location: str) -> Iterator[None]:
    """Turn transport and server errors into one-line StoreErrors."""
    try:
        yield
    except UnexpectedResponse as exc:
        detail = one_line(exc.content.decode(errors="replace")) if exc.content else ""
        raise StoreError(
            f"the Qdrant server at {location} answered {exc.status_code}: {detail}"
        ) from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise StoreError(
            f"the server for {location} did not answer as Qdrant does ({one_line(exc)}); "
            "check that the URL points at a Qdrant server"
        ) from None
    except (ResponseHandlingException, OSError, TimeoutError) as exc:
        reason = one_line(getattr(exc, "source", None) or exc)
        raise StoreError(
            f"cannot reach the Qdrant server for {location} ({reason}); "
            "check the URL and that the server runs"
        ) from None


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Run a store method (of an object with a `location`) under guard."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        with guard(self.location):
            return method(self, *args, **kwargs)

    return wrapper
