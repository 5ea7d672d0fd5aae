-- Loads that never hang (issue 12): a load takes every lock on its own connection in one order (its partition,
-- its months ascending, then tables), and a stage table left by a killed load is dropped by the connection
-- that holds the month's lock (the worker about to refill it, or the load itself for a month it does not
-- stage) instead of by a second connection waiting on the load's own locks.

COMMENT ON TABLE hdi_loaded_partitions IS
    'The time range and row count each replace_partition stored, one row per target x partition';

-- @if native
-- Worker (its own transaction) before it builds the month's stage, or the load for a month it does not
-- stage: drop the stage a failed or killed load left. The caller's load holds the month's advisory lock, so
-- no other load is filling this stage.
CREATE OR REPLACE FUNCTION hdi_drop_bar_stage(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT := hdi_bar_partition_name(p_symbol, p_month) || '_stage';
BEGIN
    IF to_regclass(quote_ident(stage)) IS NULL THEN
        RETURN FALSE;
    END IF;
    EXECUTE format('DROP TABLE %I', stage);
    RETURN TRUE;
END
$$;
REVOKE ALL ON FUNCTION hdi_drop_bar_stage(TEXT, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
-- @if timescaledb
-- A load's new rows of a 7-day slice without a chunk go into a plain stage table, filled by a worker connection
-- in a transaction of its own (COPY FREEZE, no index to maintain row by row, the primary key then built by one
-- sort), and the load attaches it as the slice's chunk at the end of its transaction. A stage a killed load
-- left is never attached, so no reader sees it; the next load of its slice drops it.
CREATE OR REPLACE FUNCTION hdi_bar_chunk_stage_name(p_from TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE SET timezone = 'UTC' AS $$
    SELECT 'continuous_bars_stage_' || to_char(p_from, 'YYYYMMDD')
$$;

-- Worker: a new stage for the slice (a leftover of a killed load dropped first: the caller's load holds the
-- slice's months); p_defaults: columns constant in the new rows, which the COPY then leaves out.
CREATE OR REPLACE FUNCTION hdi_stage_bar_chunk(p_from TIMESTAMPTZ, p_defaults JSONB) RETURNS TEXT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT := hdi_bar_chunk_stage_name(p_from);
    key TEXT;
    val TEXT;
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I', stage);
    EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', stage);
    FOR key, val IN SELECT * FROM jsonb_each_text(p_defaults) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'continuous_bars'::regclass
                       AND attname = key AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'hdi_stage_bar_chunk: continuous_bars has no column %', key;
        END IF;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %L', stage, key, val);
    END LOOP;
    RETURN stage;
END
$$;

-- Worker, after the COPY: the primary key, by one sort.
CREATE OR REPLACE FUNCTION hdi_index_bar_chunk_stage(p_from TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts)',
                   hdi_bar_chunk_stage_name(p_from));
END
$$;

-- The load, for slices of its range it does not stage: drop stages a killed load left there.
CREATE OR REPLACE FUNCTION hdi_drop_bar_chunk_stages(p_from TIMESTAMPTZ, p_to TIMESTAMPTZ, p_keep TIMESTAMPTZ[])
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT;
    dropped INTEGER := 0;
BEGIN
    FOR stage IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname ~ '^continuous_bars_stage_[0-9]{8}$'
                   AND to_date(right(c.relname, 8), 'YYYYMMDD') >= p_from::date
                   AND to_date(right(c.relname, 8), 'YYYYMMDD') < p_to::date
                   AND c.relname <> ALL (SELECT hdi_bar_chunk_stage_name(k) FROM unnest(p_keep) k) LOOP
        EXECUTE format('DROP TABLE %I', stage);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

-- The load, last: the slice's stage becomes its chunk (catalog work, and the chunk's other indexes).
CREATE OR REPLACE FUNCTION hdi_attach_bar_chunk(p_from TIMESTAMPTZ, p_to TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT := hdi_bar_chunk_stage_name(p_from);
    chunk TEXT := 'continuous_bars_chunk_' || to_char(p_from, 'YYYYMMDD');
    col TEXT;
BEGIN
    -- A locking lookup: it flushes the cached "no such table" this transaction saw before the worker made it.
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', stage);
    FOR col IN SELECT a.attname FROM pg_attribute a  -- the load's column defaults: not the chunk's
               WHERE a.attrelid = to_regclass(quote_ident(stage)) AND a.atthasdef AND NOT EXISTS (
                   SELECT 1 FROM pg_attribute b WHERE b.attrelid = 'continuous_bars'::regclass
                   AND b.attname = a.attname AND b.atthasdef) LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP DEFAULT', stage, col);
    END LOOP;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', stage, chunk);
    CALL attach_chunk('continuous_bars', chunk::regclass, jsonb_build_object('ts', jsonb_build_array(p_from, p_to)));
END
$$;
REVOKE ALL ON FUNCTION hdi_stage_bar_chunk(TIMESTAMPTZ, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_index_bar_chunk_stage(TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_drop_bar_chunk_stages(TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_attach_bar_chunk(TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
