-- Parallel month loads of continuous_bars (native layout). A load fills each month it rewrites into an
-- unattached "<month>_stage" table from worker connections (each its own transaction, COPY FREEZE, primary
-- key built there), while one coordinating transaction holds the locks; that transaction then swaps all the
-- stages in at once, so readers still see the old partition or the new one. A killed load leaves stage
-- tables behind: they are never attached, and the next load of the month drops them.

-- @if native
-- Coordinator, inside the load transaction: lock each month of the range (advisory, plus SHARE on an existing
-- month so no row changes under the workers). existing_rows is the
-- planner's row estimate of an existing month, NULL for a month without a partition.
CREATE OR REPLACE FUNCTION hdi_lock_bar_months(p_symbol TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ)
RETURNS TABLE (month_start TIMESTAMPTZ, existing_rows BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    m TIMESTAMPTZ := date_trunc('month', p_from);
    part TEXT;
BEGIN
    IF p_to < p_from OR p_to - p_from > INTERVAL '50 years' THEN
        RAISE EXCEPTION 'hdi_lock_bar_months: implausible range % .. %', p_from, p_to;
    END IF;
    WHILE m <= p_to LOOP
        part := hdi_bar_partition_name(p_symbol, m);
        PERFORM pg_advisory_xact_lock(hashtext('hdi_bar_month'), hashtext(part));
        month_start := m;
        IF to_regclass(quote_ident(part)) IS NULL THEN
            existing_rows := NULL;
        ELSE
            EXECUTE format('LOCK TABLE %I IN SHARE MODE', part);
            SELECT reltuples::BIGINT INTO existing_rows FROM pg_class WHERE oid = to_regclass(quote_ident(part));
        END IF;
        RETURN NEXT;
        m := m + INTERVAL '1 month';
    END LOOP;
END
$$;

-- Worker, in its own transaction: a new stage table for the month (so COPY FREEZE may fill it), holding the
-- month's rows that stay (those NOT matching p_keys) when the month exists. With p_count, returns how many
-- rows the load replaces there (a second scan), else NULL. p_keys: column names (checked) -> literal values;
-- p_defaults (the same form): columns constant in the new rows, which the COPY then leaves out.
CREATE OR REPLACE FUNCTION hdi_stage_bar_month(p_symbol TEXT, p_month TIMESTAMPTZ, p_keys JSONB,
                                               p_count BOOLEAN, p_defaults JSONB)
RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    part TEXT := hdi_bar_partition_name(p_symbol, p_month);
    stage TEXT := hdi_bar_partition_name(p_symbol, p_month) || '_stage';
    cond TEXT := 'TRUE';
    key TEXT;
    val TEXT;
    replaced BIGINT;
BEGIN
    FOR key, val IN SELECT * FROM jsonb_each_text(p_keys) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'continuous_bars'::regclass
                       AND attname = key AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'hdi_stage_bar_month: continuous_bars has no column %', key;
        END IF;
        cond := cond || format(' AND %I = %L', key, val);
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS, '
                   'CONSTRAINT month_bounds CHECK (continuous_symbol = %L AND ts >= %L AND ts < %L))',
                   stage, p_symbol, p_month, p_month + INTERVAL '1 month');
    FOR key, val IN SELECT * FROM jsonb_each_text(p_defaults) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'continuous_bars'::regclass
                       AND attname = key AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'hdi_stage_bar_month: continuous_bars has no column %', key;
        END IF;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT %L', stage, key, val);
    END LOOP;
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE NOT (%s)', stage, part, cond);
        IF p_count THEN
            EXECUTE format('SELECT count(*) FROM %I WHERE %s', part, cond) INTO replaced;
        END IF;
    END IF;
    RETURN replaced;
END
$$;

-- Worker, after the COPY: the primary key of continuous_bars (a constraint, so ATTACH adopts it), built by
-- one sort with the memory the caller set for maintenance.
CREATE OR REPLACE FUNCTION hdi_index_bar_stage(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts)',
                   hdi_bar_partition_name(p_symbol, p_month) || '_stage');
END
$$;

-- Coordinator, last: replace the month (if any) by its stage, in the load transaction (catalog work only).
CREATE OR REPLACE FUNCTION hdi_swap_in_bar_stage(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    parent TEXT := hdi_bar_partition_name(p_symbol, NULL);
    part TEXT := hdi_bar_partition_name(p_symbol, p_month);
    pkey TEXT;
    col TEXT;
BEGIN
    -- A locking lookup: it flushes the cached "no such table" this transaction saw before the workers made it.
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part || '_stage');
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, part);
        EXECUTE format('DROP TABLE %I', part);
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', part || '_stage', part);
    FOR col IN SELECT a.attname FROM pg_attribute a  -- the load's column defaults: not the partition's
               WHERE a.attrelid = to_regclass(quote_ident(part)) AND a.atthasdef AND NOT EXISTS (
                   SELECT 1 FROM pg_attribute b WHERE b.attrelid = 'continuous_bars'::regclass
                   AND b.attname = a.attname AND b.atthasdef) LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP DEFAULT', part, col);
    END LOOP;
    SELECT conindid::regclass::text INTO pkey FROM pg_constraint
        WHERE conrelid = to_regclass(quote_ident(part)) AND contype = 'p';
    IF pkey IS NOT NULL AND pkey <> quote_ident(part || '_pkey') THEN
        EXECUTE format('ALTER INDEX %s RENAME TO %I', pkey, part || '_pkey');
    END IF;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, p_month, p_month + INTERVAL '1 month');
END
$$;

-- After a failed load, from another connection while the failed load's transaction still holds the month's
-- lock: drop the month's stage table at once rather than at the next load.
-- Before a load, in a short transaction of its own: stages left by a failed or killed load of these months are
-- dropped. Under the months' advisory locks, so never a stage that another load is filling right now; and not
-- in the load's own long transaction, where a held-open drop would block a worker's CREATE of the same name.
CREATE OR REPLACE FUNCTION hdi_drop_leftover_bar_stages(p_symbol TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ)
RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    m TIMESTAMPTZ := date_trunc('month', p_from);
    part TEXT;
BEGIN
    WHILE m <= p_to LOOP
        part := hdi_bar_partition_name(p_symbol, m);
        PERFORM pg_advisory_xact_lock(hashtext('hdi_bar_month'), hashtext(part));
        EXECUTE format('DROP TABLE IF EXISTS %I', part || '_stage');
        m := m + INTERVAL '1 month';
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION hdi_lock_bar_months(TEXT, TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_stage_bar_month(TEXT, TIMESTAMPTZ, JSONB, BOOLEAN, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_index_bar_stage(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_swap_in_bar_stage(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_drop_leftover_bar_stages(TEXT, TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
