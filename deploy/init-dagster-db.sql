-- Dagster's own run/event storage lives in a database beside HDI's data.
CREATE DATABASE dagster;
