"""Faults on demand for the live gateway: dropped connections, stalled streams, a bounded send buffer.

SPEC is comma-separated `name=value` pairs (the `--faults` option, or the contents of the control file):
  drop_after=N       close the connection abruptly (TCP reset) after N data records of a session
  drop_at=ISO|NS     ... when the session's stream reaches this market time
  stall_at=ISO|NS    stop sending anything (heartbeats too) when the stream reaches this market time ...
  stall_s=S          ... for S wall seconds; stall_s alone (no stall_at) stalls at once
  send_buffer_kb=K   bytes the gateway buffers for a client before it counts as a slow reader (default 16384)
  slow_reader_s=S    wall seconds a slow reader may stay over the buffer before it is disconnected with an
                     ErrorMsg (default 5)
  repeat=1           the drop/stall faults fire in every session (default: once, in the first session that
                     reaches them, so a reconnecting client is served)
The control file (`--control FILE`) is read again whenever it changes; its spec replaces the faults then, and
counts (drop_after) start from that moment for the sessions already running. An empty file clears the faults.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdi_core.errors import ConfigError

DEFAULT_SEND_BUFFER_BYTES = 16 << 20
DEFAULT_SLOW_READER_S = 5.0
_KEYS = ("drop_after", "drop_at", "stall_at", "stall_s", "send_buffer_kb", "slow_reader_s", "repeat")


def _time_ns(name: str, value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        stamp = np.datetime64(value.rstrip("Z"), "ns")
    except ValueError:
        raise ConfigError(f"live faults: {name}={value!r} is neither ns since the epoch nor an ISO time") from None
    return int(stamp.astype(np.int64))


@dataclass
class LiveFaults:
    """One version of the fault settings; `generation` changes each time the control file changes."""

    drop_after: int | None = None
    drop_at_ns: int | None = None
    stall_at_ns: int | None = None
    stall_s: float = 0.0
    send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES
    slow_reader_s: float = DEFAULT_SLOW_READER_S
    repeat: bool = False
    generation: int = 0
    _fired: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, spec: str | None, generation: int = 0) -> LiveFaults:
        faults = cls(generation=generation)
        for token in (spec or "").replace("\n", ",").split(","):
            token = token.strip()
            if not token or token.startswith("#"):
                continue
            name, sep, value = token.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or name not in _KEYS:
                raise ConfigError(f"live faults: {token!r} is not one of {', '.join(k + '=...' for k in _KEYS)}")
            try:
                if name == "drop_after":
                    faults.drop_after = int(value)
                elif name == "drop_at":
                    faults.drop_at_ns = _time_ns(name, value)
                elif name == "stall_at":
                    faults.stall_at_ns = _time_ns(name, value)
                elif name == "stall_s":
                    faults.stall_s = float(value)
                elif name == "send_buffer_kb":
                    faults.send_buffer_bytes = int(value) << 10
                elif name == "slow_reader_s":
                    faults.slow_reader_s = float(value)
                else:
                    faults.repeat = value not in ("0", "false", "")
            except ValueError:
                raise ConfigError(f"live faults: {name}={value!r} is not a number") from None
        return faults

    def claim(self, kind: str) -> bool:
        """True if fault `kind` may fire now (once per gateway unless repeat)."""
        if self.repeat:
            return True
        with self._lock:
            if kind in self._fired:
                return False
            self._fired.add(kind)
            return True


class FaultSource:
    """The current LiveFaults: from --faults, replaced by the control file's spec whenever the file changes."""

    def __init__(self, spec: str | None = None, control_file: Path | None = None) -> None:
        self._faults = LiveFaults.parse(spec)
        self._control = control_file
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def current(self) -> LiveFaults:
        if self._control is None:
            return self._faults
        try:
            stat = self._control.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            return self._faults
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                text = self._control.read_text()
                try:
                    self._faults = LiveFaults.parse(text, self._faults.generation + 1)
                except ConfigError:
                    pass  # a half-written file: keep the previous faults until it changes again
            return self._faults
