-- File / fetch ingestion audit (seed 003): what was asked for, and raw symbols seen in vendor data.

-- The schema (ohlcv-5m and ohlcv-1m share ohlcv_data) and any --symbol/--limit selection of a run:
-- a file counts as already ingested only for the same sha256, schema and selection.
ALTER TABLE data_ingest_runs ADD COLUMN IF NOT EXISTS schema_name TEXT;
ALTER TABLE data_ingest_runs ADD COLUMN IF NOT EXISTS selection TEXT;
CREATE INDEX IF NOT EXISTS idx_ingest_runs_sha256 ON data_ingest_runs (file_sha256) WHERE file_sha256 IS NOT NULL;

-- Raw symbol -> instrument id as the vendor data said (DBN symbol mappings), so vendor rows of a raw symbol
-- can be found without its definition record.
CREATE TABLE IF NOT EXISTS vendor_symbols (
    dataset TEXT NOT NULL,
    symbol TEXT NOT NULL,
    instrument_id INTEGER NOT NULL,
    first_date DATE NOT NULL,
    last_date DATE NOT NULL,
    PRIMARY KEY (dataset, symbol, instrument_id)
);
CREATE INDEX IF NOT EXISTS idx_vendor_symbols_symbol ON vendor_symbols (symbol);
