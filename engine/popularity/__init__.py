"""Popularity: NormPop, the stored popularities and ranks kept in step with the log, and
the top list."""
