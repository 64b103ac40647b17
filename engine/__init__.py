"""fashionrec engine: the pure core of the recommender and its few adapters."""
