-- Vendor tables keep Databento's exact nanoseconds: TIMESTAMPTZ floors to microseconds, so two records in one
-- microsecond lost their order and, with equal other key fields (two trades of one packet: same sequence, price,
-- size and side), collided on the primary key, one of them overwritten. ts_event_ns / ts_recv_ns are the DBN u64
-- times as BIGINT ns since the epoch, filled by the vendor mapping (configs/api_specific/databento_mappings.yaml).
-- ts_event_ns joins the primary key of the tick-level tables; rows stored before this migration never kept their
-- nanoseconds and get the floored microsecond (x 1000), which is what they hold. ohlcv_data's interval starts are
-- whole seconds, so its key needs no ns. Both storage modes: ADD COLUMN, SET NOT NULL and a new primary key
-- propagate to native partitions and to TimescaleDB chunks (compressed ones too, TimescaleDB >= 2.11).
ALTER TABLE ohlcv_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;

ALTER TABLE trades_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE trades_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
UPDATE trades_data SET ts_event_ns = (extract(epoch FROM ts_event) * 1000000)::bigint * 1000
 WHERE ts_event_ns IS NULL;
ALTER TABLE trades_data ALTER COLUMN ts_event_ns SET NOT NULL;
ALTER TABLE trades_data DROP CONSTRAINT IF EXISTS trades_data_pkey;
ALTER TABLE trades_data ADD PRIMARY KEY (instrument_id, ts_event, ts_event_ns, sequence, price, size, side);

ALTER TABLE tbbo_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE tbbo_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
UPDATE tbbo_data SET ts_event_ns = (extract(epoch FROM ts_event) * 1000000)::bigint * 1000
 WHERE ts_event_ns IS NULL;
ALTER TABLE tbbo_data ALTER COLUMN ts_event_ns SET NOT NULL;
ALTER TABLE tbbo_data DROP CONSTRAINT IF EXISTS tbbo_data_pkey;
ALTER TABLE tbbo_data ADD PRIMARY KEY (instrument_id, ts_event, ts_event_ns, sequence, price, size, side);

ALTER TABLE statistics_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE statistics_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
UPDATE statistics_data SET ts_event_ns = (extract(epoch FROM ts_event) * 1000000)::bigint * 1000
 WHERE ts_event_ns IS NULL;
ALTER TABLE statistics_data ALTER COLUMN ts_event_ns SET NOT NULL;
ALTER TABLE statistics_data DROP CONSTRAINT IF EXISTS statistics_data_pkey;
ALTER TABLE statistics_data ADD PRIMARY KEY (instrument_id, ts_event, ts_event_ns, stat_type, sequence);

ALTER TABLE definitions_data ADD COLUMN IF NOT EXISTS ts_event_ns BIGINT NULL;
ALTER TABLE definitions_data ADD COLUMN IF NOT EXISTS ts_recv_ns BIGINT NULL;
UPDATE definitions_data SET ts_event_ns = (extract(epoch FROM ts_event) * 1000000)::bigint * 1000
 WHERE ts_event_ns IS NULL;
ALTER TABLE definitions_data ALTER COLUMN ts_event_ns SET NOT NULL;
ALTER TABLE definitions_data DROP CONSTRAINT IF EXISTS definitions_data_pkey;
ALTER TABLE definitions_data ADD PRIMARY KEY (instrument_id, ts_event, ts_event_ns, leg_index);

-- Databento's UNDEF_TIMESTAMP is "no value": equities have no expiration, ICE and OPRA definitions no activation.
-- Both ingest paths store it as NULL (never 1969-12-31T23:59:59.999999999Z), so the columns must allow it.
ALTER TABLE definitions_data ALTER COLUMN expiration DROP NOT NULL;
ALTER TABLE definitions_data ALTER COLUMN activation DROP NOT NULL;
