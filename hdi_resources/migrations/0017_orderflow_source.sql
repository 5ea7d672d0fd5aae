-- Order flow built live (issue 15): `hdi live capture` upserts closed order-flow results (and the open
-- session's provisional profile) into the order-flow tables as source 'live'; the historical loads write
-- 'history' (the default) and, replacing their symbol x window, replace the live rows of the days they cover.
-- A live upsert never overwrites a historical row (hdi_resources/db/orderflow.py upsert_live_orderflow).
ALTER TABLE orderflow_delta ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'history';
ALTER TABLE orderflow_footprint ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'history';
ALTER TABLE orderflow_profile ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'history';
ALTER TABLE orderflow_absorption ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'history';
ALTER TABLE orderflow_icebergs ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'history';
