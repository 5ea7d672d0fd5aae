"""hdi_assets/dbn_files."""
