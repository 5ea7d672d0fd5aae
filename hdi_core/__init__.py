"""hdi_core."""
