-- Least privilege: HDI's own functions live in their own schema `hdi`, so the app role is granted EXECUTE on
-- that schema's functions alone (core.py _grant_app) instead of on public's hdi_* functions by name, and never
-- on an extension's (TimescaleDB puts thousands in public). Callers name them schema-qualified (hdi.hdi_...).
-- Both modes: every hdi_* function in public that no extension owns moves (ALTER .. SET SCHEMA keeps its body,
-- settings and grants); the SECURITY DEFINER ones also look in hdi for the helpers they call
-- (hdi_bar_partition_name, hdi_bar_chunk_stage_name). New HDI functions: CREATE FUNCTION hdi.hdi_...
CREATE SCHEMA IF NOT EXISTS hdi;
REVOKE ALL ON SCHEMA hdi FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA hdi REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
DO $$
DECLARE
    fn OID;
BEGIN
    FOR fn IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proname LIKE 'hdi\_%' AND NOT EXISTS (
                  SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') LOOP
        EXECUTE format('ALTER FUNCTION %s SET SCHEMA hdi', fn::regprocedure);
        IF (SELECT prosecdef FROM pg_proc WHERE oid = fn) THEN
            EXECUTE format('ALTER FUNCTION %s SET search_path = public, hdi, pg_temp', fn::regprocedure);
        END IF;
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn::regprocedure);
    END LOOP;
END
$$;
