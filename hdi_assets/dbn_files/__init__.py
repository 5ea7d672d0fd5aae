"""DBN-file ingestion: the landing folder, its sensor and one partition per file."""
