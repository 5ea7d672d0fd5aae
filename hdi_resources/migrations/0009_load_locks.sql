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
