"""The vendor-schema domain: YAML-configured Databento jobs and DBN file ingestion."""

from dagster import Definitions

defs = Definitions()
