"""The network input of a photo: decoded, masked (the removed labels blacked out), framed to
the square the CNN sees. Ingest embeds it; the service shows it (`/items/ID/image?masked=1`)
from the recipe each item's payload records (engine/vocabulary/schema.py: mask, framing,
removed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.catalog.framing import INPUT_SIZE, Framing, decode_size, frame, pad_colour
from engine.catalog.items import Item
from engine.catalog.masks import DEFAULT_REMOVED, apply_mask
from engine.errors import MaskError

MAX_PIXELS: Final = 40_000_000  # a photo or mask larger is refused before it is decoded


def load_input(
    item: Item,
    framing: Framing = "letterbox",
    removed: Sequence[str] = DEFAULT_REMOVED,
    out: int = INPUT_SIZE,
) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], bool]:
    """The network input of an item (3×out×out uint8) and whether a mask was applied.

    JPEGs are decoded at a reduced scale where framing allows (Image.draft); the
    mask is matched to the decoded size with nearest neighbour. The letterbox pads with
    the photo's background: black when masked, white otherwise (framing.pad_colour).
    """
    image = _decoded(item.image, framing, out)
    masked = item.mask is not None
    if item.mask is not None:
        try:
            with Image.open(item.mask) as mask:
                _check_size(mask.size)
                mask.load()
                image = apply_mask(image, mask, removed)
        except Image.DecompressionBombError as exc:
            raise PixelLimitError(f"mask {item.mask}: {str(exc).rstrip('.')}") from None
        except (OSError, MaskError) as exc:
            raise OSError(f"mask {item.mask}: {unreadable(exc)}") from None
    pixels = np.asarray(frame(image, framing, out, pad_colour(masked)), dtype=np.uint8)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), masked


def load_photo(
    source: Path | IO[bytes], framing: Framing = "letterbox", out: int = INPUT_SIZE
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The network input (3×out×out uint8) of a photo with no mask: a shopper's own, or an
    upload. OSError (PIL's UnidentifiedImageError among them) when it is not an image."""
    pixels = np.asarray(frame(_decoded(source, framing, out), framing, out, pad_colour(False)))
    return np.ascontiguousarray(pixels.astype(np.uint8).transpose(2, 0, 1))


def _decoded(source: Path | IO[bytes], framing: Framing, out: int) -> Image.Image:
    """The photo in RGB, decoded at a reduced scale where the framing allows; OSError saying
    in plain words what is wrong (FileNotFoundError for a missing file)."""
    try:
        with Image.open(source) as raw:
            _check_size(raw.size)
            raw.draft("RGB", decode_size(raw.size, framing, out))
            return raw.convert("RGB")
    except (FileNotFoundError, PixelLimitError):
        raise
    except Image.DecompressionBombError as exc:  # past Pillow's own limit, as it opened it
        raise PixelLimitError(str(exc).rstrip(".")) from None
    except OSError as exc:
        raise OSError(unreadable(exc)) from None


class PixelLimitError(OSError):
    """A picture of more pixels than MAX_PIXELS."""


def _check_size(size: tuple[int, int]) -> None:
    """PixelLimitError for a picture of more than MAX_PIXELS pixels (read from its header:
    nothing is decoded), however small its file (a decompression bomb)."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise PixelLimitError(
            f"{width}×{height} pixels, over the {MAX_PIXELS // 1_000_000}-megapixel limit"
        )


def unreadable(exc: BaseException) -> str:
    """Why a photo or mask cannot be read, in plain words (never a Python object's name)."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image this tool can read (JPEG, PNG, WebP, …)"
    text = str(exc).strip()
    return text or "cannot be read"


def media_type(path: Path) -> str:
    """A photo file's media type, read from the file itself (OSError when it is not one)."""
    try:
        with Image.open(path) as image:
            kind = Image.MIME.get(image.format or "")
    except Image.DecompressionBombError as exc:
        raise PixelLimitError(str(exc).rstrip(".")) from None
    except UnidentifiedImageError:
        raise OSError(unreadable(UnidentifiedImageError())) from None
    return kind or "application/octet-stream"


def png(pixels: np.ndarray[Any, np.dtype[np.uint8]]) -> bytes:
    """A network input (3×H×W uint8) as PNG bytes: the picture the CNN saw."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.transpose(1, 2, 0)).save(buffer, format="PNG")
    return buffer.getvalue()
