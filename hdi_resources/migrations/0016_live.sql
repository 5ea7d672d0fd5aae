-- Live capture (issue 14): today's 1-second bars of each continuous symbol as `hdi live capture` builds them,
-- closed bars and the open bar's latest state (is_closed false), upserted idempotently on (symbol, ts). Prices
-- stay int64 fixed point (1e-9), as the records carry them. Each upsert also sends NOTIFY hdi_live_bars with
-- the bar as JSON, which the API's push endpoint (/live/bars) relays. Once the session is over, history
-- replaces the day (hdi_assets/live) and the rows of that day can be dropped.
CREATE TABLE IF NOT EXISTS live_bars (
    continuous_symbol TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    ts_ns BIGINT NOT NULL,
    trade_date DATE NOT NULL,
    session_id BIGINT NOT NULL,
    instrument_id BIGINT NOT NULL,
    raw_symbol TEXT NOT NULL,
    open_fixed BIGINT NOT NULL,
    high_fixed BIGINT NOT NULL,
    low_fixed BIGINT NOT NULL,
    close_fixed BIGINT NOT NULL,
    volume BIGINT NOT NULL,
    trade_count BIGINT NOT NULL,
    vwap DOUBLE PRECISION NOT NULL,
    is_closed BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT live_bars_pkey PRIMARY KEY (continuous_symbol, ts),
    CONSTRAINT live_bar_high_is_highest CHECK (high_fixed >= GREATEST(open_fixed, close_fixed, low_fixed)),
    CONSTRAINT live_bar_low_is_lowest CHECK (low_fixed <= LEAST(open_fixed, close_fixed, high_fixed)),
    CONSTRAINT live_bar_volume_not_negative CHECK (volume >= 0)
);
CREATE INDEX IF NOT EXISTS idx_live_bars_day ON live_bars (continuous_symbol, trade_date);
-- @if timescaledb
SELECT create_hypertable('live_bars', by_range('ts', INTERVAL '1 day'), if_not_exists => TRUE);
-- @endif
