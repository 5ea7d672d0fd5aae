-- Back-adjusted continuous bars and the roll events that produced them.

CREATE TABLE IF NOT EXISTS continuous_bars (
    continuous_symbol TEXT NOT NULL,
    root_symbol TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('1s', '1m', '5m', '15m', '1h', '1d')),
    ts TIMESTAMPTZ NOT NULL,
    trade_date DATE NOT NULL,
    open NUMERIC NOT NULL,
    high NUMERIC NOT NULL,
    low NUMERIC NOT NULL,
    close NUMERIC NOT NULL,
    volume BIGINT NOT NULL,
    trade_count BIGINT,
    vwap NUMERIC,
    adjustment_method TEXT NOT NULL,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT continuous_bars_pkey PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts),
    CONSTRAINT bar_high_is_highest CHECK (high >= GREATEST(open, close, low)),
    CONSTRAINT bar_low_is_lowest CHECK (low <= LEAST(open, close, high)),
    CONSTRAINT bar_volume_not_negative CHECK (volume >= 0)
) /*@partition_by_range(ts)*/;
-- replace_partition deletes by (symbol, granularity, window): this index finds those rows in every chunk.
CREATE INDEX IF NOT EXISTS idx_continuous_bars_window ON continuous_bars (continuous_symbol, granularity, "window");

-- @if native
INSERT INTO hdi_partitioned_tables VALUES ('continuous_bars', 'ts') ON CONFLICT DO NOTHING;
-- @endif
-- @if timescaledb
SELECT create_hypertable('continuous_bars', by_range('ts', INTERVAL '7 days'), if_not_exists => TRUE);
-- @endif

CREATE TABLE IF NOT EXISTS roll_events (
    continuous_symbol TEXT NOT NULL,
    switch_ts TIMESTAMPTZ NOT NULL,
    old_instrument_id BIGINT,
    new_instrument_id BIGINT NOT NULL,
    old_raw_symbol TEXT,
    new_raw_symbol TEXT NOT NULL,
    old_price NUMERIC,
    new_price NUMERIC,
    roll_gap NUMERIC,
    method TEXT NOT NULL,
    reference_ts TIMESTAMPTZ,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT roll_events_pkey PRIMARY KEY (continuous_symbol, method, switch_ts)
);
CREATE INDEX IF NOT EXISTS idx_roll_events_window ON roll_events (continuous_symbol, "window");
