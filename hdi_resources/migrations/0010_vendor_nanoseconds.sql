-- Vendor tables keep Databento's exact nanoseconds: TIMESTAMPTZ floors to microseconds, so two records in one
-- microsecond would lose their order. ts_event_ns / ts_recv_ns are the DBN u64 times as BIGINT ns since the epoch
-- (filled by the vendor mapping, configs/api_specific/databento_mappings.yaml); NULL in rows stored before this
-- migration, whose nanoseconds were never kept. Both storage modes: ADD COLUMN propagates to native partitions and
-- to TimescaleDB chunks (compressed ones too), and a nullable column without default rewrites nothing.
ALTER TABLE ohlcv_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE trades_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE trades_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
ALTER TABLE tbbo_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE tbbo_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
ALTER TABLE statistics_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE statistics_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
ALTER TABLE definitions_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE definitions_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;

-- Databento's UNDEF_TIMESTAMP is "no value": equities have no expiration, ICE and OPRA definitions no activation.
-- Both ingest paths store it as NULL (never 1969-12-31T23:59:59.999999999Z), so the columns must allow it.
ALTER TABLE definitions_data ALTER COLUMN expiration DROP NOT NULL;
ALTER TABLE definitions_data ALTER COLUMN activation DROP NOT NULL;
