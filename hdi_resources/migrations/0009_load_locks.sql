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
-- A load's new rows of a 7-day slice that has no chunk yet go into a plain table created in the load's own
-- transaction (COPY FREEZE, no index to maintain row by row), indexed by one sort and attached as the
-- slice's chunk at the end of that transaction: a killed load leaves nothing behind.
CREATE OR REPLACE FUNCTION hdi_create_bar_chunk_stage(p_from TIMESTAMPTZ) RETURNS TEXT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    stage TEXT := 'continuous_bars_chunk_' || to_char(p_from, 'YYYYMMDD');
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', stage);
    RETURN stage;
END
$$;

CREATE OR REPLACE FUNCTION hdi_attach_bar_chunk(p_stage TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
BEGIN
    IF p_stage !~ '^continuous_bars_chunk_[0-9]{8}$' THEN
        RAISE EXCEPTION 'hdi_attach_bar_chunk: % is not a bar chunk stage', p_stage;
    END IF;
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts)',
                   p_stage);
    CALL attach_chunk('continuous_bars', p_stage::regclass,
                      jsonb_build_object('ts', jsonb_build_array(p_from, p_to)));
END
$$;
REVOKE ALL ON FUNCTION hdi_create_bar_chunk_stage(TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_attach_bar_chunk(TEXT, TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
