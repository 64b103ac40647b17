"""A Qdrant server that is unreachable, too slow or failing: one line, exit 1, nothing written."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from engine.errors import StoreError
from engine.settings import QDRANT_KEY_ENV, Settings
from engine.vectorstore import open_store
from engine.vectorstore.server import ServerStore
from tests.builders import FailingCollection, fashionrec, serving


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(StoreError, match=r"cannot reach the Qdrant server.*check the URL"):
        ServerStore.connect(url, timeout=2)
    result = fashionrec("info", "--qdrant-url", url, home=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Qdrant server")


def test_too_slow(silent_server: str) -> None:
    """A server that never answers ends in the client's timeout, said as such."""
    with pytest.raises(StoreError, match=r"cannot reach the Qdrant server.*\(timed out\)"):
        ServerStore.connect(silent_server, timeout=1)


def test_server_error(failing_server: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"answered 500.*disk quota exceeded"):
        ServerStore.connect(failing_server, timeout=2)
    result = fashionrec("info", "--qdrant-url", failing_server, home=tmp_path)
    assert result.returncode == 1 and "answered 500" in result.stderr
    assert "Traceback" not in result.stderr


class KeyedQdrant(FailingCollection):
    """A Qdrant server with an API key: it notes the key of every call it gets."""

    keys: ClassVar[list[str | None]] = []

    def _answer(self) -> None:
        self.keys.append(self.headers.get("api-key"))
        super()._answer()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


def test_a_secured_server_gets_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FASHIONREC_QDRANT_API_KEY reaches a secured server (or Qdrant Cloud) with every call;
    never a flag, so that no process list shows it."""
    KeyedQdrant.keys = []
    monkeypatch.setenv(QDRANT_KEY_ENV, "cloud-secret")
    with serving(KeyedQdrant) as url:
        settings = Settings.load(qdrant_url=url)
        assert "cloud-secret" not in repr(settings)
        with warnings.catch_warnings():  # "an API key over plain http": this test's server
            warnings.simplefilter("ignore")
            store = open_store(settings)
        store.close()
    assert KeyedQdrant.keys and set(KeyedQdrant.keys) == {"cloud-secret"}
