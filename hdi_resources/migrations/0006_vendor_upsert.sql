-- Faster vendor upserts. The (instrument_id, ts_event DESC) indexes duplicate the leading columns of their
-- table's primary key (a backward scan of it serves the same queries) and cost ~40% of every insert's time.
DROP INDEX IF EXISTS idx_ohlcv_instrument_time;
DROP INDEX IF EXISTS idx_trades_instrument_time;
DROP INDEX IF EXISTS idx_tbbo_instrument_time;
DROP INDEX IF EXISTS idx_definitions_instrument_time;

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
-- hdi_ensure_partitions (0001) as before, but it also waits for a month an upsert is filling as a fresh table:
-- it then finds the attached partition instead of failing on the name.
CREATE OR REPLACE FUNCTION hdi_ensure_partitions(p_table TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    month_start TIMESTAMPTZ;
    part_name TEXT;
    created INTEGER := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hdi_partitioned_tables WHERE table_name = p_table) THEN
        RETURN 0;
    END IF;
    IF p_to < p_from OR p_to - p_from > INTERVAL '50 years' THEN
        RAISE EXCEPTION 'hdi_ensure_partitions: implausible range % .. %', p_from, p_to;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('hdi_partitions'), hashtext(p_table));
    month_start := date_trunc('month', p_from);
    WHILE month_start <= p_to LOOP
        part_name := p_table || '_p' || to_char(month_start, 'YYYYMM');
        PERFORM pg_advisory_xact_lock(hashtext('hdi_vendor_month'), hashtext(part_name));
        IF to_regclass(quote_ident(part_name)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           part_name, p_table, month_start, month_start + INTERVAL '1 month');
            created := created + 1;
        END IF;
        month_start := month_start + INTERVAL '1 month';
    END LOOP;
    RETURN created;
END
$$;
REVOKE ALL ON FUNCTION hdi_ensure_partitions(TEXT, TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_stage_vendor_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_attach_vendor_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
