-- The symbol catalogue: one small row per stored series (a continuous symbol's granularity and adjustment, a
-- vendor table's instrument and granularity, a continuous symbol's rolls) with its row count and time span.
-- Reads resolve symbols and report stored ranges from here instead of a full-table DISTINCT per call; the
-- loads refresh the rows of what they wrote (hdi_resources/db/catalog.py), and an empty catalogue over stored
-- data is rebuilt once on first read.
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
