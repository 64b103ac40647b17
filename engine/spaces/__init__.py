"""Compact spaces: a backbone's vectors projected by a PCA(-whitening) learned on the catalog."""
