"""Seeded, deterministic fault injection for the local gateway (rate limits, 5xx, dropped streams, slowness).

SPEC is comma-separated `name=value` pairs, e.g. "429=0.2,500=0.05,503=0.05,504=0.05,reset=0.1,slow=0.05,
retry_after=1,seed=3". Fault names take a probability per request (their sum must be <= 1); `retry_after`
(seconds, the 429 Retry-After header), `slow_s` (seconds a slow response waits, default 2) and `seed`
tune them. The n-th request that can fault draws the n-th number of a seeded generator, so a given seed
and request order always produce the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from hdi_core.errors import ConfigError

FAULT_KINDS = ("429", "500", "502", "503", "504", "reset", "slow")
_SETTINGS = ("retry_after", "slow_s", "seed")


@dataclass
class FaultPlan:
    """Probabilities per fault kind plus their settings; `draw()` picks the fault for the next request."""

    probabilities: dict[str, float] = field(default_factory=dict)
    retry_after: int = 1
    slow_s: float = 2.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return any(p > 0 for p in self.probabilities.values())

    def draw(self) -> str | None:
        """The fault for the next request (one of FAULT_KINDS) or None; thread-safe, seeded order."""
        if not self.active:
            return None
        with self._lock:
            u = self._rng.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:
            cumulative += self.probabilities.get(kind, 0.0)
            if u < cumulative:
                return kind
        return None


def parse_fault_spec(spec: str | None) -> FaultPlan | None:
    """Parse `--faults SPEC`; a malformed SPEC raises ConfigError with one line naming the bad item."""
    if spec is None or not spec.strip():
        return None
    probabilities: dict[str, float] = {}
    settings: dict[str, float] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise ConfigError(f"--faults: '{item}' is not name=value (e.g. 429=0.2)")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(
                f"--faults: value of '{name}' must be a number, got '{value.strip()}'"
            ) from None
        if name in FAULT_KINDS:
            if not 0.0 <= number <= 1.0:
                raise ConfigError(f"--faults: probability of '{name}' must be within 0..1, got {number}")
            probabilities[name] = number
        elif name in _SETTINGS:
            if number < 0:
                raise ConfigError(f"--faults: '{name}' must not be negative, got {number}")
            settings[name] = number
        else:
            known = ", ".join(FAULT_KINDS + _SETTINGS)
            raise ConfigError(f"--faults: unknown item '{name}' (known: {known})")
    total = sum(probabilities.values())
    if total > 1.0 + 1e-9:
        raise ConfigError(f"--faults: fault probabilities add up to {total:g}, more than 1")
    return FaultPlan(
        probabilities=probabilities,
        retry_after=int(settings.get("retry_after", 1)),
        slow_s=float(settings.get("slow_s", 2.0)),
        seed=int(settings.get("seed", 0)),
    )
