-- Order flow as data (issue 15): aggressor flow per bar, footprint, volume profile per session (adjusted
-- continuous prices), absorption zones and iceberg candidates (the front contract's book, raw prices). Each
-- table is loaded per continuous symbol x window by replace_partition (hdi_resources/db/orderflow.py).
-- Native: plain tables with their primary key and a (symbol, window) index. TimescaleDB: hypertables on their
-- time column with a columnstore (one symbol and granularity per segment, ordered by time); the loader
-- compresses a window's closed chunks once its load commits (no background policy, as 0011 explains).

CREATE TABLE IF NOT EXISTS orderflow_delta (
    continuous_symbol TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('1s', '1m', '5m', '15m', '1h', '1d')),
    ts TIMESTAMPTZ NOT NULL,
    trade_date DATE NOT NULL,
    buy_volume BIGINT NOT NULL,
    sell_volume BIGINT NOT NULL,
    no_side_volume BIGINT NOT NULL,
    buy_count BIGINT NOT NULL,
    sell_count BIGINT NOT NULL,
    no_side_count BIGINT NOT NULL,
    volume BIGINT NOT NULL,
    trade_count BIGINT NOT NULL,
    delta BIGINT NOT NULL,
    cum_delta BIGINT NOT NULL,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orderflow_delta_pkey PRIMARY KEY (continuous_symbol, granularity, ts),
    CONSTRAINT orderflow_delta_sums CHECK (volume = buy_volume + sell_volume + no_side_volume
                                           AND delta = buy_volume - sell_volume)
);

CREATE TABLE IF NOT EXISTS orderflow_footprint (
    continuous_symbol TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('1s', '1m', '5m', '15m', '1h', '1d')),
    ts TIMESTAMPTZ NOT NULL,
    price NUMERIC NOT NULL,
    buy_volume BIGINT NOT NULL,
    sell_volume BIGINT NOT NULL,
    no_side_volume BIGINT NOT NULL,
    buy_imbalance BOOLEAN NOT NULL,
    sell_imbalance BOOLEAN NOT NULL,
    adjustment_method TEXT NOT NULL,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orderflow_footprint_pkey PRIMARY KEY (continuous_symbol, granularity, ts, price)
);

CREATE TABLE IF NOT EXISTS orderflow_profile (
    continuous_symbol TEXT NOT NULL,
    trade_date DATE NOT NULL,
    ts TIMESTAMPTZ NOT NULL,  -- the session's open (its daily bar's timestamp)
    price NUMERIC NOT NULL,
    volume BIGINT NOT NULL,
    buy_volume BIGINT NOT NULL,
    sell_volume BIGINT NOT NULL,
    no_side_volume BIGINT NOT NULL,
    is_poc BOOLEAN NOT NULL,
    in_value_area BOOLEAN NOT NULL,
    node TEXT CHECK (node IN ('high', 'low')),
    adjustment_method TEXT NOT NULL,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orderflow_profile_pkey PRIMARY KEY (continuous_symbol, ts, price)
);

CREATE TABLE IF NOT EXISTS orderflow_absorption (
    continuous_symbol TEXT NOT NULL,
    instrument_id BIGINT NOT NULL,
    raw_symbol TEXT NOT NULL,
    trade_date DATE NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('A', 'B')),
    price NUMERIC NOT NULL,
    start_ts TIMESTAMPTZ NOT NULL,
    end_ts TIMESTAMPTZ NOT NULL,
    duration_ns BIGINT NOT NULL,
    volume BIGINT NOT NULL,
    trades BIGINT NOT NULL,
    refills BIGINT NOT NULL,
    initial_size BIGINT NOT NULL,
    max_displayed BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('held', 'broke', 'open')),
    first_ts_recv BIGINT NOT NULL,  -- evidence: the first and last absorbed trades (ns ts_recv, sequence)
    first_sequence BIGINT NOT NULL,
    last_ts_recv BIGINT NOT NULL,
    last_sequence BIGINT NOT NULL,
    rule TEXT NOT NULL,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orderflow_absorption_pkey PRIMARY KEY (continuous_symbol, start_ts, side, price, first_sequence)
);

CREATE TABLE IF NOT EXISTS orderflow_icebergs (
    continuous_symbol TEXT NOT NULL,
    instrument_id BIGINT NOT NULL,
    raw_symbol TEXT NOT NULL,
    trade_date DATE NOT NULL,
    rule TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label = 'inference'),
    side TEXT NOT NULL CHECK (side IN ('A', 'B')),
    price NUMERIC NOT NULL,
    first_ts TIMESTAMPTZ NOT NULL,
    last_ts TIMESTAMPTZ NOT NULL,
    refills BIGINT NOT NULL,
    max_displayed BIGINT NOT NULL,
    executed BIGINT NOT NULL,
    first_ts_recv BIGINT NOT NULL,  -- evidence: the chain's first add and last fill (ns ts_recv, sequence)
    first_sequence BIGINT NOT NULL,
    last_ts_recv BIGINT NOT NULL,
    last_sequence BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    order_ids TEXT NOT NULL,  -- space-separated order ids, in the order they appeared
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orderflow_icebergs_pkey PRIMARY KEY (continuous_symbol, rule, first_ts, side, price, first_sequence)
);

-- @if native
CREATE INDEX IF NOT EXISTS idx_orderflow_delta_window ON orderflow_delta (continuous_symbol, "window");
CREATE INDEX IF NOT EXISTS idx_orderflow_footprint_window ON orderflow_footprint (continuous_symbol, "window");
CREATE INDEX IF NOT EXISTS idx_orderflow_profile_window ON orderflow_profile (continuous_symbol, "window");
CREATE INDEX IF NOT EXISTS idx_orderflow_absorption_window ON orderflow_absorption (continuous_symbol, "window");
CREATE INDEX IF NOT EXISTS idx_orderflow_icebergs_window ON orderflow_icebergs (continuous_symbol, "window");
-- @endif
-- @if timescaledb
SELECT create_hypertable('orderflow_delta', by_range('ts', INTERVAL '7 days'), if_not_exists => TRUE);
SELECT create_hypertable('orderflow_footprint', by_range('ts', INTERVAL '7 days'), if_not_exists => TRUE);
SELECT create_hypertable('orderflow_profile', by_range('ts', INTERVAL '28 days'), if_not_exists => TRUE);
SELECT create_hypertable('orderflow_absorption', by_range('start_ts', INTERVAL '28 days'), if_not_exists => TRUE);
SELECT create_hypertable('orderflow_icebergs', by_range('first_ts', INTERVAL '28 days'), if_not_exists => TRUE);
ALTER TABLE orderflow_delta SET (timescaledb.compress, timescaledb.compress_segmentby = 'continuous_symbol, granularity',
                                 timescaledb.compress_orderby = 'ts');
ALTER TABLE orderflow_footprint SET (timescaledb.compress,
                                     timescaledb.compress_segmentby = 'continuous_symbol, granularity',
                                     timescaledb.compress_orderby = 'ts, price');
ALTER TABLE orderflow_profile SET (timescaledb.compress, timescaledb.compress_segmentby = 'continuous_symbol',
                                   timescaledb.compress_orderby = 'ts, price');
ALTER TABLE orderflow_absorption SET (timescaledb.compress, timescaledb.compress_segmentby = 'continuous_symbol',
                                      timescaledb.compress_orderby = 'start_ts, side, price, first_sequence');
ALTER TABLE orderflow_icebergs SET (timescaledb.compress, timescaledb.compress_segmentby = 'continuous_symbol',
                                    timescaledb.compress_orderby = 'first_ts, rule, side, price, first_sequence');
-- @endif
