"""Automation: schedules, sensors and jobs that keep the graph current."""

from dagster import Definitions

defs = Definitions()
