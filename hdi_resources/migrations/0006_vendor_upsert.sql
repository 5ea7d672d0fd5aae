-- Faster vendor upserts.

-- @if native
-- Inside an upsert's transaction: a month of a partitioned vendor table with no partition yet is filled as an
-- unattached "<partition>_stage" table (created here, so COPY FREEZE applies and WAL is skipped at
-- wal_level=minimal) and attached at the end, its indexes built by one sort each. Returns the stage's name,
-- or NULL when the month's partition exists (the caller then writes through the parent). The month's lock
-- is held to the end of the transaction, so a second load of the month waits and then finds the partition.
CREATE OR REPLACE FUNCTION hdi_stage_vendor_month(p_table TEXT, p_month TIMESTAMPTZ) RETURNS TEXT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    time_col TEXT;
    month_start TIMESTAMPTZ := date_trunc('month', p_month);
    part TEXT := p_table || '_p' || to_char(date_trunc('month', p_month), 'YYYYMM');
BEGIN
    SELECT time_column INTO time_col FROM hdi_partitioned_tables WHERE table_name = p_table;
    IF time_col IS NULL THEN
        RAISE EXCEPTION 'hdi_stage_vendor_month: % is not a partitioned table', p_table;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('hdi_vendor_month'), hashtext(part));
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS, '
                   'CONSTRAINT month_bounds CHECK (%I >= %L AND %I < %L))', part || '_stage', p_table,
                   time_col, month_start, time_col, month_start + INTERVAL '1 month');
    RETURN part || '_stage';
END
$$;

-- Last step of the upsert's transaction: the filled stage becomes the month's partition (ATTACH builds the
-- parent's indexes on it; the month_bounds CHECK spares the validation scan).
CREATE OR REPLACE FUNCTION hdi_attach_vendor_month(p_table TEXT, p_month TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    month_start TIMESTAMPTZ := date_trunc('month', p_month);
    part TEXT := p_table || '_p' || to_char(date_trunc('month', p_month), 'YYYYMM');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hdi_partitioned_tables WHERE table_name = p_table) THEN
        RAISE EXCEPTION 'hdi_attach_vendor_month: % is not a partitioned table', p_table;
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', part || '_stage', part);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   p_table, part, month_start, month_start + INTERVAL '1 month');
END
$$;
REVOKE ALL ON FUNCTION hdi_stage_vendor_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_attach_vendor_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
