"""Versioned SQL migrations, applied in order by hdi_resources.db.core.Database.migrate."""
