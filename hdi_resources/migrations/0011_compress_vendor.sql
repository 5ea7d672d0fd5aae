-- TimescaleDB only: vendor hypertables are compressed the way HDI writes them, not by wall-clock age. 0003's
-- 7-day policies compressed a backfill of history at their first run, and reloading a compressed range was ~6x
-- slower; background policy jobs are not relied upon either (they fail on Debian's PostgreSQL 15.20 build).
-- Instead, after a vendor upsert commits, HDI compresses the closed chunks it wrote (entirely before the current
-- UTC day; hdi_resources/db/compression.py). Every vendor table gets a columnstore (one instrument per segment,
-- ordered by time) unless it has one already (trades_data and tbbo_data since 0003, kept as they are).
-- @if timescaledb
SELECT remove_compression_policy('trades_data', if_exists => TRUE);
SELECT remove_compression_policy('tbbo_data', if_exists => TRUE);
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['ohlcv_data', 'trades_data', 'tbbo_data', 'statistics_data', 'definitions_data'] LOOP
        IF NOT (SELECT h.compression_enabled FROM timescaledb_information.hypertables h
                WHERE h.hypertable_schema = 'public' AND h.hypertable_name = t) THEN
            EXECUTE format('ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = '
                           '''instrument_id'', timescaledb.compress_orderby = ''ts_event'')', t);
        END IF;
    END LOOP;
END
$$;
-- @endif
