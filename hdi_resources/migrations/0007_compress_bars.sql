-- TimescaleDB only: continuous_bars chunks are compressed (columnstore) once a window is loaded
-- (hdi_resources/db/compression.py, called after each bars load), not by wall-clock age: a window is final
-- when its load commits, and background policy jobs are not relied upon. Segments are the primary key's
-- low-cardinality columns (one symbol, granularity and adjustment per segment, so reads of one series touch
-- only its segments), ordered by ts, which covers the whole primary key as TimescaleDB wants.
-- @if timescaledb
ALTER TABLE continuous_bars SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'continuous_symbol, granularity, adjustment_method',
    timescaledb.compress_orderby = 'ts'
);
-- @endif
