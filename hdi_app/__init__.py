"""hdi_app."""
