"""Automation: schedules, sensors and jobs that keep the graph current, and how a run executes its steps."""

from dagster import Definitions, in_process_executor

from hdi_assets.automation.jobs import AUTOMATION_JOBS
from hdi_assets.automation.schedules import AUTOMATION_SCHEDULES
from hdi_assets.automation.sensors import AUTOMATION_SENSORS

# A run is one symbol x window: a chain of steps, parallel across partitions (runs), not within one. One
# process per run instead of one per step saves a Python + numba start per step (about 30 s on a busy machine).
defs = Definitions(
    jobs=AUTOMATION_JOBS,
    schedules=AUTOMATION_SCHEDULES,
    sensors=AUTOMATION_SENSORS,
    executor=in_process_executor,
)
