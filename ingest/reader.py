"""Reader: catalog items → decoded, masked, framed uint8 tensors, in DataLoader workers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.catalog.framing import Framing
from engine.catalog.inputs import load_input, unreadable
from engine.catalog.items import Item

MISSING: Final = "missing photo"  # the kinds of an item that cannot be read
UNREADABLE: Final = "unreadable image"


def item_to_line(item: Item, needs: Sequence[str]) -> str:
    """One line of the work list: the item and the backbones it still needs."""
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(item).items()}
    return json.dumps({"item": fields, "needs": list(needs)}) + "\n"


def item_from_line(line: str) -> tuple[Item, list[str]]:
    """Inverse of item_to_line."""
    record = json.loads(line)
    fields = record["item"]
    fields["image"] = Path(fields["image"])
    fields["mask"] = Path(fields["mask"]) if fields["mask"] else None
    fields["attributes"] = tuple(tuple(pair) for pair in fields.get("attributes", ()))
    return Item(**fields), list(record["needs"])


# n → up to n photos of the work list (uint8 network inputs) and their categories: what int8
# is calibrated on and a setting is judged on (ingest.pipeline.sampler draws them)
Sampler = Callable[[int], tuple[torch.Tensor, list[str]]]


@dataclass(frozen=True)
class Sample:
    """A prepared item (with the backbones it needs), or the reason it could not be prepared."""

    item: Item
    needs: list[str]
    pixels: torch.Tensor | None
    masked: bool
    error: str | None
    kind: str = ""  # of the error: MISSING or UNREADABLE


class WorkList(Dataset[Sample]):
    """The items of a work-list file, read by byte offset so no list lives in memory."""

    def __init__(
        self,
        path: Path,
        offsets: np.ndarray[Any, np.dtype[np.int64]],
        framing: Framing,
        removed: Sequence[str],
    ) -> None:
        self.path = path
        self.offsets = offsets
        self.framing = framing
        self.removed = tuple(removed)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> Sample:
        with self.path.open("rb") as handle:
            handle.seek(int(self.offsets[index]))
            item, needs = item_from_line(handle.readline().decode("utf-8"))
        try:
            pixels, masked = load_input(item, self.framing, self.removed)
        except FileNotFoundError:
            return Sample(item, needs, None, False, "no such file", MISSING)
        except Exception as exc:  # any per-item failure is reported, never fatal
            return Sample(item, needs, None, False, unreadable(exc), UNREADABLE)
        return Sample(item, needs, torch.from_numpy(pixels), masked, None)


@dataclass(frozen=True)
class Batch:
    """Prepared samples with their pixels stacked, and the samples that failed."""

    samples: list[Sample]
    pixels: torch.Tensor
    failures: list[Sample]


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack the good samples of a batch; keep failures aside."""
    good = [s for s in samples if s.pixels is not None]
    pixels = [s.pixels for s in good if s.pixels is not None]
    return Batch(
        samples=good,
        pixels=torch.stack(pixels) if pixels else torch.empty((0, 3, 224, 224), dtype=torch.uint8),
        failures=[s for s in samples if s.pixels is None],
    )
