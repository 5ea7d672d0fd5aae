-- TimescaleDB bar loads write compressed batches directly (issue 12). A load's rows of a 7-day slice are COPYed
-- by worker connections, in pieces, into staging hypertables of their own (continuous_bars' columns, chunk
-- interval and compression settings, but no primary key: that is what lets TimescaleDB compress the rows as
-- the COPY streams them, timescaledb.enable_direct_compress_copy). Each worker keeps its piece's compressed
-- batches in a plain table ("<stage>_<piece>_c") and drops its staging hypertable. The load's own transaction
-- then, last, per piece: where the slice has no chunk, attaches an empty chunk (primary key included) and
-- compresses it (which makes its empty compressed chunk); then appends the batches to the chunk's compressed
-- chunk. No row is written twice and no compression pass runs after the load; a reload into compressed chunks
-- DELETEs its rows there (whole batches) and appends the new ones, with no row-by-row key check against
-- compressed data (the new keys are unique and clash with no other partition's: prepare() and replace ensure
-- it). Readers see all new batches or none; stages a killed load left are never attached, and the next load
-- of the slice drops them.

-- @if timescaledb
-- Worker: a new staging hypertable for the slice's rows (a leftover of a killed load dropped first: the
-- caller's load holds the slice's months); p_defaults: columns constant in the new rows, which the COPY then
-- leaves out.
CREATE OR REPLACE FUNCTION hdi.hdi_stage_bar_batches(p_from TIMESTAMPTZ, p_piece INTEGER, p_defaults JSONB)
RETURNS TEXT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, hdi, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT := hdi_bar_chunk_stage_name(p_from) || '_' || p_piece || '_ht';
    key TEXT;
    val TEXT;
    segmentby TEXT;
    orderby TEXT;
    chunk_interval INTERVAL;
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I, %I', stage, hdi_bar_chunk_stage_name(p_from) || '_' || p_piece || '_c');
    -- No CHECK constraints: replace_partition's prepare() evaluated continuous_bars' CHECKs on every row
    -- (exactly, on int64 prices) and quarantined the rows breaking them; evaluating them again costs time for nothing.
    EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS)', stage);
    FOR key, val IN SELECT * FROM jsonb_each_text(p_defaults) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'continuous_bars'::regclass
                       AND attname = key AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'hdi_stage_bar_batches: continuous_bars has no column %', key;
        END IF;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %L', stage, key, val);
    END LOOP;
    SELECT time_interval INTO chunk_interval FROM timescaledb_information.dimensions
        WHERE hypertable_schema = 'public' AND hypertable_name = 'continuous_bars' AND column_name = 'ts';
    PERFORM create_hypertable(stage::regclass, by_range('ts', chunk_interval), create_default_indexes => FALSE);
    SELECT s.segmentby, s.orderby INTO segmentby, orderby FROM timescaledb_information.hypertable_compression_settings s
        WHERE s.hypertable = 'continuous_bars'::regclass;
    EXECUTE format('ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = %L, '
                   'timescaledb.compress_orderby = %L)', stage, segmentby, orderby);
    RETURN stage;
END
$$;

-- Worker, after the COPY: the piece's compressed batches into "<stage>_<piece>_c" (a plain table shaped like a
-- compressed chunk), with p_new_chunk the empty chunk-to-be "<stage>" (primary key included), then the
-- staging hypertable goes. Returns rows, batches, and (piece 0) the uncompressed heap and index bytes those
-- rows would take, measured on a sample of them (hdi db info's compression ratio).
CREATE OR REPLACE FUNCTION hdi.hdi_seal_bar_batches(p_from TIMESTAMPTZ, p_piece INTEGER, p_new_chunk BOOLEAN)
RETURNS TABLE (row_count BIGINT, batch_count BIGINT, heap_bytes BIGINT, index_bytes BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, hdi, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    chunk_stage TEXT := hdi_bar_chunk_stage_name(p_from);
    base TEXT := hdi_bar_chunk_stage_name(p_from) || '_' || p_piece;
    stage TEXT := hdi_bar_chunk_stage_name(p_from) || '_' || p_piece || '_ht';
    compressed REGCLASS;
    sample_rows BIGINT;
    index_sql TEXT;
BEGIN
    SELECT format('%I.%I', cc.schema_name, cc.table_name)::regclass INTO compressed
        FROM _timescaledb_catalog.hypertable h
        JOIN _timescaledb_catalog.chunk c ON c.hypertable_id = h.id
        JOIN _timescaledb_catalog.chunk cc ON cc.id = c.compressed_chunk_id
        WHERE h.schema_name = 'public' AND h.table_name = stage;
    IF compressed IS NULL THEN
        RAISE EXCEPTION 'hdi_seal_bar_batches: % holds no compressed batches (direct compression off?)', stage;
    END IF;
    IF (SELECT count(*) FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.hypertable h
        ON h.id = c.hypertable_id WHERE h.schema_name = 'public' AND h.table_name = stage) <> 1 THEN
        RAISE EXCEPTION 'hdi_seal_bar_batches: the rows of % span more than one chunk', stage;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING ALL)', base || '_c', compressed);
    EXECUTE format('INSERT INTO %I SELECT * FROM %s', base || '_c', compressed);
    EXECUTE format('SELECT count(*), coalesce(sum(_ts_meta_count), 0) FROM %I', base || '_c')
        INTO batch_count, row_count;
    -- What the rows take uncompressed (hdi db info's ratio): a sample in a plain table with the key (once a slice).
    heap_bytes := 0;
    index_bytes := 0;
    IF p_piece = 0 THEN
        CREATE TEMP TABLE hdi_bar_sample (LIKE continuous_bars) ON COMMIT DROP;
        EXECUTE format('INSERT INTO hdi_bar_sample SELECT * FROM %I LIMIT 5000', stage);
        GET DIAGNOSTICS sample_rows = ROW_COUNT;
        FOR index_sql IN SELECT regexp_replace(pg_get_indexdef(indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON \S+',
                                               'CREATE \1INDEX ON pg_temp.hdi_bar_sample')
                         FROM pg_index WHERE indrelid = 'continuous_bars'::regclass LOOP
            EXECUTE index_sql;  -- a chunk's indexes, built by one sort each as an attached stage's are
        END LOOP;
        heap_bytes := pg_relation_size('hdi_bar_sample') * row_count / greatest(sample_rows, 1);
        index_bytes := (pg_indexes_size('hdi_bar_sample') - 8192 * (SELECT count(*) FROM pg_index
                        WHERE indrelid = 'hdi_bar_sample'::regclass)) * row_count / greatest(sample_rows, 1);
        DROP TABLE hdi_bar_sample;
    END IF;
    EXECUTE format('DROP TABLE %I', stage);
    IF p_new_chunk THEN
        EXECUTE format('DROP TABLE IF EXISTS %I', chunk_stage);
        EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS, '
                       'CONSTRAINT %I PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts))',
                       chunk_stage, 'continuous_bars_chunk_' || to_char(p_from, 'YYYYMMDD') || '_pkey');
    END IF;
    RETURN NEXT;
END
$$;

-- What a row of continuous_bars would take uncompressed (heap and key index), per chunk that got batches this
-- way: TimescaleDB's own statistics only know what compress_chunk compressed (hdi db info adds the rest).
CREATE TABLE IF NOT EXISTS hdi_compressed_batches (
    chunk TEXT PRIMARY KEY,                      -- schema.table of the chunk
    bytes_per_row DOUBLE PRECISION NOT NULL
);

-- The load, last: the slice's batches become visible. Without a chunk there: the empty stage is attached as
-- the chunk and compressed (which makes its empty compressed chunk). Then the batches are appended to the
-- chunk's compressed chunk (the chunk locked first, as any write to it is: a concurrent recompression waits
-- for this commit).
CREATE OR REPLACE FUNCTION hdi.hdi_attach_bar_batches(p_from TIMESTAMPTZ, p_to TIMESTAMPTZ, p_piece INTEGER,
                                                      p_rows BIGINT, p_heap_bytes BIGINT, p_index_bytes BIGINT)
RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, hdi, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    base TEXT := hdi_bar_chunk_stage_name(p_from) || '_' || p_piece;
    chunk_schema NAME;
    chunk_name NAME;
    compressed TEXT;
    columns TEXT;
BEGIN
    -- A locking lookup: it flushes the cached "no such table" this transaction saw before the worker made it.
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', base || '_c');
    SELECT c.chunk_schema, c.chunk_name INTO chunk_schema, chunk_name FROM timescaledb_information.chunks c
        WHERE c.hypertable_schema = 'public' AND c.hypertable_name = 'continuous_bars' AND c.range_start = p_from;
    IF chunk_name IS NULL THEN
        PERFORM hdi_attach_bar_chunk(p_from, p_to);  -- the empty stage becomes continuous_bars_chunk_<day>
        chunk_schema := 'public';
        chunk_name := 'continuous_bars_chunk_' || to_char(p_from, 'YYYYMMDD');
        PERFORM compress_chunk(format('%I.%I', chunk_schema, chunk_name)::regclass);
    END IF;
    EXECUTE format('LOCK TABLE %I.%I IN ROW EXCLUSIVE MODE', chunk_schema, chunk_name);
    SELECT format('%I.%I', cc.schema_name, cc.table_name) INTO compressed
        FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.chunk cc ON cc.id = c.compressed_chunk_id
        WHERE c.schema_name = chunk_schema AND c.table_name = chunk_name;
    IF compressed IS NULL THEN
        RAISE EXCEPTION 'hdi_attach_bar_batches: chunk %.% is not compressed', chunk_schema, chunk_name;
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns FROM pg_attribute
        WHERE attrelid = compressed::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %I', compressed, columns, columns, base || '_c');
    EXECUTE format('DROP TABLE %I', base || '_c');
    IF p_rows > 0 AND p_heap_bytes > 0 THEN
        INSERT INTO hdi_compressed_batches VALUES (format('%I.%I', chunk_schema, chunk_name),
                                                   (p_heap_bytes + p_index_bytes)::float8 / p_rows)
        ON CONFLICT (chunk) DO UPDATE SET bytes_per_row = EXCLUDED.bytes_per_row;
    END IF;
END
$$;

-- Replaces 0009's (which kept whole slices): the load drops the stages a killed load left in its range, now also
-- batch tables and staging hypertables, but for the names its own workers are about to make (p_keep; a worker
-- drops its own leftover, as a drop held open by the load would block the worker's CREATE of the same name).
DROP FUNCTION IF EXISTS hdi.hdi_drop_bar_chunk_stages(TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ[]);
CREATE OR REPLACE FUNCTION hdi.hdi_drop_bar_chunk_stages(p_from TIMESTAMPTZ, p_to TIMESTAMPTZ, p_keep TEXT[])
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, hdi, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT;
    dropped INTEGER := 0;
BEGIN
    FOR stage IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                   AND c.relname ~ '^continuous_bars_stage_[0-9]{8}(_[0-9]+_(c|ht))?$'
                   AND to_date(substring(c.relname FROM 23 FOR 8), 'YYYYMMDD') >= p_from::date
                   AND to_date(substring(c.relname FROM 23 FOR 8), 'YYYYMMDD') < p_to::date
                   AND c.relname <> ALL (p_keep)
                 ORDER BY c.relname DESC LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', stage);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;
REVOKE ALL ON FUNCTION hdi.hdi_drop_bar_chunk_stages(TIMESTAMPTZ, TIMESTAMPTZ, TEXT[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi.hdi_stage_bar_batches(TIMESTAMPTZ, INTEGER, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi.hdi_seal_bar_batches(TIMESTAMPTZ, INTEGER, BOOLEAN) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi.hdi_attach_bar_batches(TIMESTAMPTZ, TIMESTAMPTZ, INTEGER, BIGINT, BIGINT, BIGINT)
    FROM PUBLIC;
-- @endif
