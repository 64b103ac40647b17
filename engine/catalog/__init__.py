"""Catalogs on disk: items and their names, categories, masks and framing."""
