"""The shared vocabulary: payload field names and point ids, shops, shoppers and purchases,
places and distances, backbones and vector spaces."""
