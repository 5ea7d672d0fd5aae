"""A Databento-compatible Historical gateway for offline use: synthetic CME market or a folder of DBN files."""
