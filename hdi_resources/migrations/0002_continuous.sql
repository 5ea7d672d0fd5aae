-- Back-adjusted continuous bars and the roll events that produced them.

CREATE TABLE IF NOT EXISTS continuous_bars (
    continuous_symbol TEXT NOT NULL,
    root_symbol TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('1s', '1m', '5m', '15m', '1h', '1d')),
    ts TIMESTAMPTZ NOT NULL,
    trade_date DATE NOT NULL,
    open NUMERIC NOT NULL,
    high NUMERIC NOT NULL,
    low NUMERIC NOT NULL,
    close NUMERIC NOT NULL,
    volume BIGINT NOT NULL,
    trade_count BIGINT,
    vwap NUMERIC,
    adjustment_method TEXT NOT NULL,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT continuous_bars_pkey PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts),
    CONSTRAINT bar_high_is_highest CHECK (high >= GREATEST(open, close, low)),
    CONSTRAINT bar_low_is_lowest CHECK (low <= LEAST(open, close, high)),
    CONSTRAINT bar_volume_not_negative CHECK (volume >= 0)
) /*@native: PARTITION BY LIST (continuous_symbol)*/;

-- @if native
-- Native layout: one list partition per continuous symbol, each split into monthly ts ranges, so the first
-- load of a (symbol, month) can COPY into a brand-new table and attach it (index built once, by sort).

CREATE OR REPLACE FUNCTION hdi_bar_partition_name(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE SET timezone = 'UTC' AS $$
    SELECT 'continuous_bars_' || left(lower(regexp_replace(p_symbol, '[^A-Za-z0-9]+', '_', 'g')), 24) || '_'
           || left(md5(p_symbol), 6) || CASE WHEN p_month IS NULL THEN '' ELSE '_p' || to_char(p_month, 'YYYYMM') END
$$;

-- Short transaction before a load: the per-symbol parent (its creation locks continuous_bars briefly).
CREATE OR REPLACE FUNCTION hdi_ensure_bar_symbol(p_symbol TEXT) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    parent TEXT := hdi_bar_partition_name(p_symbol, NULL);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('hdi_partitions'), hashtext('continuous_bars'));
    IF to_regclass(quote_ident(parent)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF continuous_bars FOR VALUES IN (%L) PARTITION BY RANGE (ts)',
                       parent, p_symbol);
    END IF;
END
$$;

-- Inside the load transaction: lock each month of the range; months without a partition get a fresh,
-- unattached table (created in this transaction, so COPY FREEZE may fill it). existing_rows is the
-- planner's row estimate of an existing month (-1 when unknown).
CREATE OR REPLACE FUNCTION hdi_begin_bar_months(p_symbol TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ)
RETURNS TABLE (month_start TIMESTAMPTZ, fresh_table TEXT, existing_rows BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    m TIMESTAMPTZ := date_trunc('month', p_from);
    part TEXT;
BEGIN
    IF p_to < p_from OR p_to - p_from > INTERVAL '50 years' THEN
        RAISE EXCEPTION 'hdi_begin_bar_months: implausible range % .. %', p_from, p_to;
    END IF;
    WHILE m <= p_to LOOP
        part := hdi_bar_partition_name(p_symbol, m);
        PERFORM pg_advisory_xact_lock(hashtext('hdi_bar_month'), hashtext(part));
        month_start := m;
        IF to_regclass(quote_ident(part)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS, '
                           'CONSTRAINT month_bounds CHECK (continuous_symbol = %L AND ts >= %L AND ts < %L))',
                           part, p_symbol, m, m + INTERVAL '1 month');
            fresh_table := part;
            existing_rows := NULL;
        ELSE
            fresh_table := NULL;
            SELECT reltuples::BIGINT INTO existing_rows FROM pg_class WHERE oid = to_regclass(quote_ident(part));
        END IF;
        RETURN NEXT;
        m := m + INTERVAL '1 month';
    END LOOP;
END
$$;

-- Still inside the load transaction: attach the filled fresh tables (indexes are built here, by sort).
CREATE OR REPLACE FUNCTION hdi_attach_bar_month(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   hdi_bar_partition_name(p_symbol, NULL), hdi_bar_partition_name(p_symbol, p_month),
                   p_month, p_month + INTERVAL '1 month');
END
$$;

-- Reload of a month mostly made of the replaced rows: build its successor in this transaction from the
-- rows that stay (those NOT matching p_keys), so the replaced rows need no DELETE. With p_count, returns
-- how many rows are replaced (a second scan), else NULL. p_keys: column names (checked) -> literal values.
CREATE OR REPLACE FUNCTION hdi_rebuild_bar_month(p_symbol TEXT, p_month TIMESTAMPTZ, p_keys JSONB,
                                                 p_count BOOLEAN)
RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    part TEXT := hdi_bar_partition_name(p_symbol, p_month);
    successor TEXT := hdi_bar_partition_name(p_symbol, p_month) || '_new';
    cond TEXT := 'TRUE';
    key TEXT;
    val TEXT;
    replaced BIGINT;
BEGIN
    FOR key, val IN SELECT * FROM jsonb_each_text(p_keys) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'continuous_bars'::regclass
                       AND attname = key AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'hdi_rebuild_bar_month: continuous_bars has no column %', key;
        END IF;
        cond := cond || format(' AND %I = %L', key, val);
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE continuous_bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS, '
                   'CONSTRAINT month_bounds CHECK (continuous_symbol = %L AND ts >= %L AND ts < %L))',
                   successor, p_symbol, p_month, p_month + INTERVAL '1 month');
    EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE NOT (%s)', successor, part, cond);
    IF p_count THEN
        EXECUTE format('SELECT count(*) FROM %I WHERE %s', part, cond) INTO replaced;
    END IF;
    RETURN replaced;
END
$$;

-- After the new rows are in: give the successor the primary key of continuous_bars (a constraint, so
-- ATTACH adopts it instead of building another), then swap it for the old month. Only the swap holds the
-- symbol's exclusive lock, briefly.
CREATE OR REPLACE FUNCTION hdi_index_bar_month(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (continuous_symbol, granularity, adjustment_method, ts)',
                   hdi_bar_partition_name(p_symbol, p_month) || '_new');
END
$$;

CREATE OR REPLACE FUNCTION hdi_swap_bar_month(p_symbol TEXT, p_month TIMESTAMPTZ) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    parent TEXT := hdi_bar_partition_name(p_symbol, NULL);
    part TEXT := hdi_bar_partition_name(p_symbol, p_month);
BEGIN
    EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, part);
    EXECUTE format('DROP TABLE %I', part);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', part || '_new', part);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, p_month, p_month + INTERVAL '1 month');
END
$$;
REVOKE ALL ON FUNCTION hdi_rebuild_bar_month(TEXT, TIMESTAMPTZ, JSONB, BOOLEAN) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_index_bar_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_swap_bar_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_ensure_bar_symbol(TEXT) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_begin_bar_months(TEXT, TIMESTAMPTZ, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION hdi_attach_bar_month(TEXT, TIMESTAMPTZ) FROM PUBLIC;
-- @endif
-- @if timescaledb
SELECT create_hypertable('continuous_bars', by_range('ts', INTERVAL '7 days'), if_not_exists => TRUE);
-- @endif

CREATE TABLE IF NOT EXISTS roll_events (
    continuous_symbol TEXT NOT NULL,
    switch_ts TIMESTAMPTZ NOT NULL,
    old_instrument_id BIGINT,
    new_instrument_id BIGINT NOT NULL,
    old_raw_symbol TEXT,
    new_raw_symbol TEXT NOT NULL,
    old_price NUMERIC,
    new_price NUMERIC,
    roll_gap NUMERIC,
    method TEXT NOT NULL,
    reference_ts TIMESTAMPTZ,
    "window" DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT roll_events_pkey PRIMARY KEY (continuous_symbol, method, switch_ts)
);
CREATE INDEX IF NOT EXISTS idx_roll_events_window ON roll_events (continuous_symbol, "window");

-- The time range each replace_partition stored, so the next replacement deletes only where rows can be.
CREATE TABLE IF NOT EXISTS hdi_loaded_partitions (
    target TEXT NOT NULL,
    "partition" TEXT NOT NULL,
    min_ts TIMESTAMPTZ,
    max_ts TIMESTAMPTZ,
    row_count BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (target, "partition")
);
