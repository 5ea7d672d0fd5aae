"""`hdi ingest` (ad-hoc Databento pulls) and `hdi ingest-file` (downloaded DBN files)."""
