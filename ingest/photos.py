"""The networks that embed a query photo (search by photo: engine/application/ranking.py) as
the store's vectors of a backbone were made: the weights, pooling, runtime and precision the
store records. Importing it loads no torch: the first photo does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from engine.vectorstore.base import VectorStore
from engine.vocabulary.backbones import IMAGENET, RANDOM
from ingest.options import AUTO, numerics_for, pooling_for

if TYPE_CHECKING:
    from ingest.embedder import Embedder


class PhotoNetworks:
    """Each backbone's network, loaded once (by its first photo), running one photo at a
    time; `on_note` hears what loading says."""

    def __init__(self, on_note: Callable[[str], None] = lambda note: None) -> None:
        self.on_note = on_note
        self.networks: dict[str, Embedder] = {}
        self.lock = threading.Lock()

    def __call__(
        self, store: VectorStore, backbone: str, pixels: NDArray[np.uint8]
    ) -> NDArray[np.float32]:
        """The photos' unit vectors (network inputs, N×3×H×W uint8)."""
        import torch

        with self.lock:
            network = self._network(store, backbone)
            return network(torch.from_numpy(np.ascontiguousarray(pixels)))

    def _network(self, store: VectorStore, backbone: str) -> Embedder:
        """The backbone's network as the store's vectors were made (loaded once)."""
        from ingest.embedder import Embedder

        if backbone not in self.networks:
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
