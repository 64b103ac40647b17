"""Shoppers: simulated (the paper's, and shoppers with taste) or real, and their purchases
recorded, imported and exported."""
