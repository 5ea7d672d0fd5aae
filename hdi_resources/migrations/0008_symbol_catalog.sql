-- The symbol catalogue: one small row per stored series (a continuous symbol's granularity and adjustment, a
-- vendor table's instrument and granularity, a continuous symbol's rolls) with its row count and time span.
-- Reads resolve symbols and report stored ranges from here instead of a full-table DISTINCT per call. The loads
-- keep it (hdi_resources/db/catalog.py): each load recounts only what it wrote, one window of a continuous
-- symbol or the days of the instruments an upsert touched, into symbol_catalog_parts, and sums the parts into
-- symbol_catalog. An empty catalogue over stored data is rebuilt once on first read.
CREATE TABLE IF NOT EXISTS symbol_catalog (
    target TEXT NOT NULL,                          -- the table: continuous_bars, roll_events, ohlcv_data, ...
    symbol TEXT NOT NULL,                          -- continuous symbol (ES.v.0) or the instrument id as text
    granularity TEXT NOT NULL DEFAULT '',          -- bars only
    adjustment_method TEXT NOT NULL DEFAULT '',    -- continuous bars and rolls only
    instrument_id BIGINT,                          -- vendor tables only
    raw_symbol TEXT,                               -- ESU4: from definitions or the vendor's symbol mappings
    root_symbol TEXT,                              -- ES
    row_count BIGINT NOT NULL,
    min_ts TIMESTAMPTZ,
    max_ts TIMESTAMPTZ,
    min_trade_date DATE,
    max_trade_date DATE,
    refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (target, symbol, granularity, adjustment_method)
);
CREATE INDEX IF NOT EXISTS idx_symbol_catalog_root ON symbol_catalog (root_symbol);
CREATE INDEX IF NOT EXISTS idx_symbol_catalog_raw ON symbol_catalog (raw_symbol);
CREATE INDEX IF NOT EXISTS idx_symbol_catalog_instrument ON symbol_catalog (instrument_id);

-- Counts and spans per window (continuous bars) or per UTC day (vendor rows), summed into symbol_catalog.
CREATE TABLE IF NOT EXISTS symbol_catalog_parts (
    target TEXT NOT NULL,
    symbol TEXT NOT NULL,
    part TEXT NOT NULL,                            -- the window (continuous bars) or the UTC day (vendor rows)
    granularity TEXT NOT NULL DEFAULT '',
    adjustment_method TEXT NOT NULL DEFAULT '',
    instrument_id BIGINT,
    root_symbol TEXT,
    row_count BIGINT NOT NULL,
    min_ts TIMESTAMPTZ,
    max_ts TIMESTAMPTZ,
    min_trade_date DATE,
    max_trade_date DATE,
    PRIMARY KEY (target, symbol, part, granularity, adjustment_method)
);
CREATE INDEX IF NOT EXISTS idx_symbol_catalog_parts_instrument ON symbol_catalog_parts (target, instrument_id, part);
