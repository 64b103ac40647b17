"""The compact spaces of a home: their names, their projections on disk, the default space.

A compact space is named `<backbone>-pca<dim>` (e.g. `resnet50-pca512`): the backbone's
vectors projected by a PCA(-whitening) learned on the store's own vectors. Its projection
lives with the store, under the home, as `spaces/<name>.npz` (Projection.to_bytes), beside
`spaces/<name>.json` (how it was fitted: sample size, seed); both are written atomically.
The projection's tag, `pca:<first 8 hex of its file's sha256>`, is what every item's
`weights_<name>` payload records, so that a refit is told apart from the projection that
wrote an item's vector. `spaces/default.json` names the space queries use by default.
The folder travels with snapshots (engine/snapshot.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from engine.errors import ConfigError
from engine.spaces.projection import Projection
from engine.vocabulary.backbones import COMPACT_NAME, is_compact, source_of, space_name

if TYPE_CHECKING:
    from engine.vectorstore.base import VectorStore

SPACES_DIR: Final = "spaces"  # under the home
DEFAULT_FILE: Final = "default.json"
DEFAULT_BACKBONE: Final = "resnet50"  # what queries search when neither flag nor store says
TAG_PREFIX: Final = "pca:"


def spaces_dir(home: Path) -> Path:
    """The folder of a home's compact spaces."""
    return home / SPACES_DIR


@dataclass(frozen=True)
class FitRequest:
    """What `compact fit` was asked for: two fits with equal requests are the same space."""

    whiten: bool
    shrinkage: float
    sample: int  # the largest sample asked for (fewer when the store holds fewer)
    seed: int

    def text(self) -> str:
        """The request for people."""
        kind = f"whitening, shrinkage {self.shrinkage:g}" if self.whiten else "no whitening"
        return f"{kind}, sample {self.sample:,}, seed {self.seed}"


@dataclass(frozen=True)
class Space:
    """A compact space of a home: its projection, the tag its vectors carry, its request."""

    name: str
    projection: Projection
    tag: str  # pca:<hash8>: what weights_<name> holds on the items this projection wrote
    request: FitRequest | None  # None: the file of the request is missing
    fitted: str | None  # when (UTC, ISO 8601)

    @property
    def source(self) -> str:
        """The backbone it is learned on."""
        return self.projection.source

    @property
    def dim(self) -> int:
        """The length of its vectors."""
        return self.projection.dim


def tag_of(data: bytes) -> str:
    """The tag of a projection file's bytes."""
    return TAG_PREFIX + hashlib.sha256(data).hexdigest()[:8]


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file beside it, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write ({exc})") from None


def save_space(home: Path, name: str, projection: Projection, request: FitRequest) -> Space:
    """Store a space's projection (replacing one of that name); returns the space.

    The request is written first and the projection last: a space exists once its .npz
    does, and then its request is beside it.
    """
    expected = space_name(projection.source, projection.dim)
    if name != expected:
        raise ConfigError(
            f"a {projection.source} projection to {projection.dim} dims is {expected}"
        )
    data = projection.to_bytes()
    fitted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    folder = spaces_dir(home)
    record = {"space": name, **asdict(request), "fitted": fitted, "tag": tag_of(data)}
    write_atomically(folder / f"{name}.json", json.dumps(record, indent=2).encode())
    write_atomically(folder / f"{name}.npz", data)
    return Space(name, projection, tag_of(data), request, fitted)


def _request(path: Path) -> tuple[FitRequest | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        request = FitRequest(
            bool(data["whiten"]), float(data["shrinkage"]), int(data["sample"]), int(data["seed"])
        )
        return request, str(data.get("fitted") or "") or None
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def load_space(home: Path, name: str) -> Space | None:
    """A space of the home by name; None when it has none of that name; ConfigError
    naming the file when it cannot be read."""
    path = spaces_dir(home) / f"{name}.npz"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    try:
        projection = Projection.from_bytes(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}; fit it again with --replace") from None
    if space_name(projection.source, projection.dim) != name:
        raise ConfigError(
            f"{path} holds a {projection.source} projection to {projection.dim} dims, not {name}"
        )
    request, fitted = _request(path.with_suffix(".json"))
    return Space(name, projection, tag_of(data), request, fitted)


def list_spaces(home: Path) -> list[Space]:
    """The home's spaces, by name."""
    folder = spaces_dir(home)
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.npz") if is_compact(p.stem))
    return [space for n in names if (space := load_space(home, n)) is not None]


def derived_from(home: Path, backbones: tuple[str, ...] | list[str]) -> list[Space]:
    """The home's spaces learned on any of these backbones."""
    return [s for s in list_spaces(home) if s.source in backbones]


def default_space(home: Path) -> str | None:
    """The space (or backbone) a store's queries use when none is named; None: resnet50."""
    try:
        data = json.loads((spaces_dir(home) / DEFAULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("default") if isinstance(data, dict) else None
    return str(name) if name else None


def set_default_space(home: Path, name: str | None) -> None:
    """Record the default space (None or resnet50: back to the raw resnet50)."""
    path = spaces_dir(home) / DEFAULT_FILE
    if name is None or name == DEFAULT_BACKBONE:
        path.unlink(missing_ok=True)
        return
    write_atomically(path, json.dumps({"default": name}).encode())


def space_in_force(home: Path, given: str | None, stored: Iterable[str] = ()) -> str:
    """The vector space a query searches: the one given, else the store's default space,
    else resnet50 unless the store's spaces (`stored`, when known) lack it, then the first
    of them by name (a store of one space: that one). The one place the default backbone
    of queries comes from."""
    chosen = given or default_space(home)
    if chosen:
        return chosen
    spaces = sorted(stored)
    return DEFAULT_BACKBONE if not spaces or DEFAULT_BACKBONE in spaces else spaces[0]


def missing_space(name: str, stored: dict[str, int]) -> str | None:
    """For a compact space the store lacks, the message that says so and how to make it;
    None when the store has it, or when the name is no compact space's."""
    if not is_compact(name) or name in stored:
        return None
    found = COMPACT_NAME.match(name)
    assert found is not None
    have = [n for n in sorted(stored) if is_compact(n)]
    known = f" (it has {', '.join(have)})" if have else ""
    return (
        f"the store has no compact space {name}{known}; make it with "
        f"`fashionrec compact fit --backbone {found['source']} --dim {found['dim']}`"
    )


def source_weights(store: VectorStore, name: str) -> dict[str, dict[str, Any]]:
    """For a compact space, `{"source": {"backbone": …, "weights": {label: points}}}`:
    which weights embedded the vectors it was projected from (a random-init backbone
    makes a space without visual meaning too); {} for a backbone."""
    if not is_compact(name):
        return {}
    source = source_of(name)
    return {"source": {"backbone": source, "weights": store.provenance(source)}}


def weights_text(store: VectorStore, name: str) -> str:
    """Which weights made a space's vectors, for people: the backbone's provenance
    (`imagenet-keras`), or for a compact space its projection and the source's
    (`pca:1a2b3c4d of resnet50 imagenet-keras`)."""
    from engine.vocabulary.schema import provenance_text

    own = provenance_text(store.provenance(name))
    if not is_compact(name):
        return own
    source = source_of(name)
    return f"{own} of {source} {provenance_text(store.provenance(source))}"
