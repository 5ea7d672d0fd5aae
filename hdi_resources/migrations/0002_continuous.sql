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
) /*@native: PARTITION BY LIST (continuous_symbol)*/;

-- @if native
-- Native layout: one list partition per continuous symbol, each split into monthly ts ranges, so the first
-- load of a (symbol, month) can COPY into a brand-new table and attach it (index built once, by sort).

CREATE OR REPLACE FUNCTION hdi_bar_partition_name(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE SET timezone = 'UTC' AS $$
    SELECT 'continuous_bars_' || left(lower(regexp_replace(p_symbol, '[^A-Za-z0-9]+', '_', 'g')), 24) || '_'
           || left(md5(p_symbol), 6) || CASE WHEN p_month IS NULL THEN '' ELSE '_p' || to_char(p_month, 'YYYYMM') END
$$;

-- Short transaction before a load: the per-symbol parent (its creation locks continuous_bars briefly).
CREATE OR REPLACE FUNCTION hdi_ensure_bar_symbol(p_symbol TEXT) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    parent TEXT := hdi_bar_partition_name(p_symbol, NULL);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('hdi_partitions'), hashtext('continuous_bars'));
    IF to_regclass(quote_ident(parent)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF continuous_bars FOR VALUES IN (%L) PARTITION BY RANGE (ts)',
                       parent, p_symbol);
    END IF;
END
$$;

REVOKE ALL ON FUNCTION hdi_ensure_bar_symbol(TEXT) FROM PUBLIC;
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

-- The time range each replace_partition stored, so the next replacement deletes only where rows can be.
CREATE TABLE IF NOT EXISTS hdi_loaded_partitions (
    target TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    min_ts TIMESTAMPTZ,
    max_ts TIMESTAMPTZ,
    row_count BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (target, "partition")
);
