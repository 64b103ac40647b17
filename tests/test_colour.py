"""An item's colours: the garment's pixels only (no studio white, no masked-out black),
compared by the dot product of their square-rooted shares."""

from __future__ import annotations

import numpy as np

from ingest.colour import BINS, colour_histograms


def photo(rgb: tuple[int, int, int], background: tuple[int, int, int]) -> np.ndarray:
    """A 3×32×32 photo: a 16×16 garment of one colour on a background."""
    image = np.empty((32, 32, 3), dtype=np.uint8)
    image[:] = background
    image[8:24, 8:24] = rgb
    return image.transpose(2, 0, 1)


def test_the_background_is_left_out_and_like_colours_compare_alike() -> None:
    white, black = (255, 255, 255), (0, 0, 0)
    red_on_white = photo((200, 30, 30), white)
    red_on_black = photo((200, 30, 30), black)  # a masked photo: the removed pixels black
    navy = photo((20, 30, 120), white)
    grey = photo((120, 120, 120), white)
    found = colour_histograms(
        np.stack([red_on_white, red_on_black, navy, grey]), np.array([False, True, False, False])
    )
    assert found.shape == (4, BINS)
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0)
    assert found[0] @ found[1] > 0.999  # the same garment, whatever the background
    assert found[0] @ found[2] < 0.01 and found[0] @ found[3] < 0.01  # red, navy, grey apart
    blank = colour_histograms(photo(white, white)[None], np.array([False]))
    assert not blank.any()  # nothing but background: no colours
