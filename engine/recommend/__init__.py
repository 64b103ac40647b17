"""Recommendations: the relevance formula, the rerank, and the recommender over a store."""
