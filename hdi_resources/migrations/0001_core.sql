-- Bookkeeping shared by every load: ingest-run audit (seed 003), quarantine, partition helpers.

CREATE TABLE IF NOT EXISTS data_ingest_runs (
    id BIGSERIAL PRIMARY KEY,
    vendor TEXT NOT NULL DEFAULT 'databento',
    dataset TEXT,
    file_name TEXT,
    file_sha256 TEXT,
    target_table TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    row_count BIGINT,
    inserted_count BIGINT,
    updated_count BIGINT,
    unchanged_count BIGINT,
    quarantined_count BIGINT,
    min_ts TIMESTAMPTZ,
    max_ts TIMESTAMPTZ,
    status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
    error TEXT
);
CREATE INDEX IF NOT EXISTS idx_ingest_runs_started ON data_ingest_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS idx_ingest_runs_dataset ON data_ingest_runs (dataset);
CREATE INDEX IF NOT EXISTS idx_ingest_runs_status ON data_ingest_runs (status);

CREATE TABLE IF NOT EXISTS quarantine (
    id BIGSERIAL PRIMARY KEY,
    target TEXT NOT NULL,
    record JSONB NOT NULL,
    rule TEXT NOT NULL,
    source TEXT,
    "partition" TEXT,
    run_id BIGINT REFERENCES data_ingest_runs (id) ON DELETE SET NULL,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_quarantine_target_partition ON quarantine (target, "partition");

-- Tables natively partitioned by month on a time column (empty in TimescaleDB mode).
CREATE TABLE IF NOT EXISTS hdi_partitioned_tables (
    table_name TEXT PRIMARY KEY,
    time_column TEXT NOT NULL
);

-- The app role may not run DDL; this owner-defined function creates the monthly partitions a load needs.
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
        -- Wait for a month an upsert is filling as a fresh table (0006): then find it attached, not a name clash.
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
