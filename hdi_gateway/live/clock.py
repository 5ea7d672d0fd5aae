"""The replay clock: the market time "now" of the live gateway.

At a finite speed, now = at + (wall seconds since the gateway started) x speed, shared by every session, so a
client that reconnects finds the market moved on and fills the gap with `start=`. At speed max there is no
wall-clock pace: each session streams as fast as its reader takes records, and the gateway's "now" is the
furthest market time any session has streamed to (a new session starts live there).
"""

from __future__ import annotations

import threading
import time

from hdi_core.errors import HdiError

NS = 1_000_000_000
SPEED_MAX = "max"


def parse_speed(text: str | float | None) -> float | None:
    """"max" -> None (as fast as possible); "60" -> 60.0; must be positive."""
    if text is None or (isinstance(text, str) and text.strip().lower() == SPEED_MAX):
        return None
    try:
        speed = float(text)
    except ValueError:
        raise HdiError(f"--speed {text!r}: give a positive number (1 = real time) or 'max'") from None
    if not speed > 0:
        raise HdiError(f"--speed {text!r}: give a positive number (1 = real time) or 'max'")
    return speed


class ReplayClock:
    """Market time in ns since the epoch; `speed=None` is max."""

    def __init__(self, at_ns: int, speed: float | None = 1.0) -> None:
        self.at_ns = int(at_ns)
        self.speed = speed
        self._wall0 = time.monotonic()
        self._high_water = int(at_ns)
        self._lock = threading.Lock()

    @property
    def is_max(self) -> bool:
        return self.speed is None

    def now(self) -> int:
        if self.speed is None:
            with self._lock:
                return self._high_water
        return self.at_ns + int((time.monotonic() - self._wall0) * self.speed * NS)

    def advance(self, market_ns: int) -> None:
        """A max-speed session streamed up to `market_ns` (no effect at a finite speed)."""
        with self._lock:
            self._high_water = max(self._high_water, int(market_ns))

    def wall_seconds(self, market_ns: int) -> float:
        """Wall seconds until the clock reaches `market_ns` (0 when passed; at max always 0)."""
        if self.speed is None:
            return 0.0
        return max(0.0, (market_ns - self.now()) / NS / self.speed)
