"""`hdi live status` on a stalled feed: STALLED, exit code 2, the metrics say so; the capture warns, stops
cleanly on SIGTERM (pid file gone, its relay child process gone) and status then says it is not running."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from conftest import kill_own_process, private_home
from live_fixtures import NS, capture_env, hdi, live_gateway, ns_of, start_capture, wait_for

from hdi_app.cli import live  # noqa: F401 - the commands under test, run as `hdi live ...`

AT = "2024-03-05T15:00"


def _children(pid: int, marker: str) -> list[int]:
    """Pids of `pid`'s child processes whose command line holds `marker` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and marker.encode() in command:
            found.append(int(stat.parent.name))
    return found


def test_a_stalled_stream_is_reported_by_status_and_metrics() -> None:
    home = private_home("live-status-")
    stall_at = ns_of(AT) + 10 * 60 * NS
    with live_gateway(AT, "60", faults=f"stall_at={stall_at},stall_s=60") as gateway:
        env = capture_env({"HDI_HOME": str(home)}, gateway)
        proc = start_capture(env, "--products", "ES", "--schemas", "trades", "--start", str(ns_of(AT)),
                             "--stall-after", "2", "--no-database", "--flush-interval", "0.5")
        try:
            running = wait_for(lambda: "STREAMING" in (r := hdi(env, "live", "status")).stdout and r, 60, "STREAMING")
            assert running.returncode == 0 and "records/s" in running.stdout

            def stalled_by_the_fault() -> dict | None:
                answer = hdi(env, "live", "status", "--json")
                doc = json.loads(answer.stdout)
                stuck = answer.returncode == 2 and (doc["last_ts_recv_ns"] or 0) >= stall_at - NS
                return doc if stuck and doc["judged_state"] == "STALLED" else None

            doc = wait_for(stalled_by_the_fault, 60, "STALLED at the fault")
            status = hdi(env, "live", "status")
            assert status.returncode == 2 and "STALLED" in status.stdout and "ALERT" in status.stderr
            with urllib.request.urlopen(doc["metrics_url"], timeout=10) as answer:
                metrics = answer.read().decode()
            assert "hdi_live_stalled 1" in metrics and 'hdi_live_messages_total{schema="trades"}' in metrics
            relays = _children(proc.pid, "live_relay")
            assert len(relays) == 1  # the databento.Live client runs in the capture's relay child process
        finally:
            kill_own_process(proc.pid, signal.SIGTERM, "live")
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "STALLED" in err  # the service logged the alert itself
    assert not (Path(home) / "live" / "capture.pid").exists()
    assert not Path(f"/proc/{relays[0]}").exists()  # the relay stopped with the capture
    after = hdi(env, "live", "status")
    assert after.returncode == 1 and "STOPPED" in after.stdout
