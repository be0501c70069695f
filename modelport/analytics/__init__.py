"""Datasets, their profiles and the pages that explore them."""
