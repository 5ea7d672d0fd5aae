"""hdi_core/continuous."""
