"""Shops: generated or imported, and items placed in them."""
