"""The capture's health: judged states and exit codes, Prometheus text, the pid file."""

from __future__ import annotations

import os
import time

import pytest

from hdi_app.live.health import Health, State, claim_pid_file, judge, prometheus_text, release_pid_file
from hdi_core.errors import HdiError


def test_judge_streaming_stalled_and_not_running() -> None:
    now = time.time()
    alive = {"pid": os.getpid(), "state": State.STREAMING, "stall_after_s": 5, "last_data_at": now - 1,
             "updated_at": now}
    assert judge(alive, now) == (State.STREAMING, 0)
    assert judge({**alive, "last_data_at": now - 6}, now) == (State.STALLED, 2)
    assert judge({**alive, "updated_at": now - 60}, now) == (State.STALLED, 2)  # the service stopped reporting
    assert judge({**alive, "state": State.STOPPED}, now) == (State.STOPPED, 1)
    assert judge({**alive, "pid": 2**22 + 12345}, now)[1] == 1


def test_prometheus_text_has_every_figure() -> None:
    health = Health(stall_after_s=3)
    health.count("mbo", 7)
    health.tick(time.time())
    text = prometheus_text(health)
    assert 'hdi_live_messages_total{schema="mbo"} 7' in text and "hdi_live_lag_seconds NaN" in text
    for name in ("message_rate", "reconnects_total", "seconds_since_data", "stalled", "bars_published_total"):
        assert f"# TYPE hdi_live_{name}" in text


def test_one_capture_per_home(tmp_path) -> None:
    path = tmp_path / "capture.pid"
    path.write_text("1\n")  # init is alive and not us
    with pytest.raises(HdiError, match="already running"):
        claim_pid_file(path)
    path.write_text(f"{2**22 + 12345}\n")  # a dead pid: taken over
    assert claim_pid_file(path).read_text() == f"{os.getpid()}\n"
    release_pid_file(path)
    assert not path.exists()
