"""HDI resources: Databento access, the local gateway, the database and the Parquet lake."""
