"""When and how long to retry a Databento call: which failures are transient, and the backoff between tries.

The Databento client retries nothing and ignores `Retry-After`; this module is the only retry layer below
Dagster's own step `RetryPolicy`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import requests
from databento.common.error import BentoError, BentoHttpError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from hdi_core.dbn import TruncatedDbnError
from hdi_core.vendor_schemas.config import RetryPolicySettings
from hdi_resources.settings import redact

log = logging.getLogger("hdi.databento")

T = TypeVar("T")

_DEFAULTS = RetryPolicySettings()  # the defaults are defined once, in the config model
DEFAULT_RETRY_ON_STATUS: tuple[int, ...] = tuple(_DEFAULTS.retry_on_status)

# A 200 response whose DBN body ends before its last record or zstd frame (a cut connection): the codec's error.
TruncatedBodyError = TruncatedDbnError


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings (`retry_policy` of the Databento config file; defaults from RetryPolicySettings)."""

    max_attempts: int = _DEFAULTS.max_attempts
    base_delay_s: float = _DEFAULTS.base_delay_s
    max_delay_s: float = _DEFAULTS.max_delay_s
    jitter_s: float = _DEFAULTS.jitter_s
    max_retry_after_s: float = _DEFAULTS.max_retry_after_s
    retry_on_status: tuple[int, ...] = field(default=DEFAULT_RETRY_ON_STATUS)


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a (possibly multi-line) server message into one redacted line."""
    flat = " ".join(redact(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def retry_reason(exc: BaseException, policy: RetryPolicy) -> str | None:
    """Why `exc` is worth another try, or None when retrying cannot help (bad key, bad request, ...)."""
    if isinstance(exc, BentoHttpError):
        if exc.http_status in policy.retry_on_status:
            return f"HTTP {exc.http_status}"
        return None
    if isinstance(exc, BentoError):
        # The client wraps a connection dropped mid-body in a bare BentoError with this prefix.
        if str(exc).startswith("Error streaming response"):
            return f"stream cut mid-body ({one_line(str(exc), 120)})"
        return None
    if isinstance(exc, TruncatedBodyError):
        return f"truncated body ({one_line(str(exc), 120)})"
    if isinstance(exc, requests.JSONDecodeError):
        return "truncated JSON body"
    if isinstance(exc, ValueError):
        # An empty 200 body reaches DBNStore.from_bytes as "Cannot create data source from empty BytesIO".
        if "from empty" in str(exc):
            return "empty body"
        return None
    if isinstance(exc, requests.exceptions.SSLError):
        return None  # a certificate that fails verification will fail again
    transport_errors = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    if isinstance(exc, transport_errors):
        return f"connection error ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError):
        return f"connection error ({type(exc).__name__})"
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds a 429 asks us to wait (`Retry-After` as delta-seconds), when it says."""
    if not isinstance(exc, BentoHttpError) or exc.http_status != 429:
        return None
    value = (exc.headers or {}).get("Retry-After") or (exc.headers or {}).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:  # the HTTP-date form of Retry-After
        when = parsedate_to_datetime(str(value))
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff_s(exc: BaseException | None, attempt: int, policy: RetryPolicy) -> float:
    """Wait before the next try: the server's capped Retry-After on 429, else capped exponential + jitter."""
    asked = retry_after_s(exc) if exc is not None else None
    if asked is not None:
        return min(asked, policy.max_retry_after_s)
    exponential = min(policy.max_delay_s, policy.base_delay_s * (2 ** max(0, attempt - 1)))
    return exponential + random.uniform(0.0, policy.jitter_s)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    context: Any | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run `fn`, retrying transient failures per `policy`; the last failure is re-raised unchanged.

    Each retry is logged (python logging and, given one, the Dagster context's log) with the attempt,
    the reason and the wait. `what` names the request in those lines and must not hold secrets.
    """

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_s(exc, state.attempt_number, policy)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = retry_reason(exc, policy) if exc is not None else "unknown"
        delay = state.next_action.sleep if state.next_action else 0.0
        line = (
            f"{what}: attempt {state.attempt_number}/{policy.max_attempts} failed ({reason}); "
            f"retrying in {delay:.2f}s"
        )
        line = redact(line)
        log.warning(line)
        if context is not None and getattr(context, "log", None) is not None:
            context.log.warning(line)

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = Retrying(
        stop=stop_after_attempt(max(1, policy.max_attempts)),
        wait=wait,
        retry=retry_if_exception(lambda e: retry_reason(e, policy) is not None),
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )
    return retrying(fn)
