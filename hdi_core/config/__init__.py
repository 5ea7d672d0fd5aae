"""Validated models of HDI's configuration files (pure: no Dagster)."""
