"""Search by photo: a shopper's or merchandiser's own photo, embedded as the store's vectors of
the searched space were made (backbone, weights, pooling, runtime, precision, framing; a
compact space's projection after), then searched and reranked like any item. Importing it
loads no torch: the first search does."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from engine.application import Application
from engine.catalog.framing import Framing
from engine.catalog.inputs import load_photo, unreadable
from engine.documents import Recommended
from engine.errors import ConfigError, NotFoundError
from engine.recommend.recommender import Params
from engine.spaces.registry import load_space
from engine.vectorstore.base import Filter
from engine.vocabulary.backbones import IMAGENET, RANDOM, is_compact, source_of
from engine.vocabulary.schema import FRAMING
from ingest.options import AUTO, numerics_for, pooling_for

if TYPE_CHECKING:
    from ingest.embedder import Embedder

Photo = Path | bytes  # a file, or an upload's bytes


class PhotoSearch:
    """Embeds photos for one application's store; each backbone's network loaded once."""

    def __init__(self, app: Application, on_note: Callable[[str], None] = lambda n: None) -> None:
        self.app = app
        self.on_note = on_note
        self.networks: dict[str, Embedder] = {}
        self.lock = threading.Lock()  # a network runs one photo at a time

    def __call__(self, photo: Photo, params: Params, name: str = "the photo") -> Recommended:
        """Items like the photo, with the ranking asked for (the home's defaults filled in)."""
        asked = self.app.ranking(params)
        return self.app.by_photo(self.embed(photo, asked.searched, name), asked)

    def embed(self, photo: Photo, space: str, name: str = "the photo") -> NDArray[np.float32]:
        """The photo's vector in a space of the store (unit length)."""
        store = self.app.store
        if space not in store.vector_dims():
            raise NotFoundError(f"the store has no {space} vectors to search")
        backbone = source_of(space)
        framing = self._framing(backbone)
        try:
            pixels = load_photo(photo if isinstance(photo, Path) else io.BytesIO(photo), framing)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{name}: {unreadable(exc)}; send a JPEG or PNG photo") from None
        import torch  # a service starts without it: loaded by its first search

        with self.lock:
            vector = self._network(backbone)(torch.from_numpy(pixels[None]))[0]
        if is_compact(space):
            compact = load_space(self.app.settings.home, space)
            if compact is None:
                raise NotFoundError(f"compact space {space} has no projection in this home")
            vector = compact.projection(vector[None])[0]
        return np.asarray(vector, dtype=np.float32)

    def _framing(self, backbone: str) -> Framing:
        """How the store framed its photos for this backbone (an item's recorded framing;
        items ingested before it was recorded: letterbox)."""
        held = self.app.store.scroll([FRAMING], Filter(has_vector=backbone), page=1)
        first = next(iter(held), None)
        found = None if first is None else first.payload.get(FRAMING)
        return "center-crop" if found == "center-crop" else "letterbox"

    def _network(self, backbone: str) -> Embedder:
        """The backbone's network as the store's vectors were made (loaded once)."""
        from ingest.embedder import Embedder

        if backbone not in self.networks:
            store = self.app.store
            labels = store.provenance(backbone)
            weights = RANDOM if _most_common(labels, IMAGENET) == RANDOM else IMAGENET
            asked = numerics_for(store, backbone, AUTO, AUTO)
            # one photo at a time: torch, with no compile cost, gives fp32's and bf16's
            # features; int8 runs where its vectors were made (the store's model)
            runtime = asked.runtime if asked.precision == "int8" else "torch"
            network = Embedder(
                backbone,
                weights,
                "auto",
                precision=asked.precision,
                pooling=pooling_for(store, backbone, AUTO),
                runtime=runtime,
                calibration=asked.calibration,
                on_note=self.on_note,
            )
            network.ready_for_queries()
            self.networks[backbone] = network
        return self.networks[backbone]


def _most_common(counts: dict[str, int], default: str) -> str:
    return max(sorted(counts), key=lambda k: counts[k]) if counts else default
