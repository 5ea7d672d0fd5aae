"""HDI's Dagster asset graph."""
