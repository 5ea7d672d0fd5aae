"""The `databento.Historical` client: which server (Databento or a local gateway), with which key, and turning
its failures into one-line HdiErrors. The key is read from the environment when not configured and is never
logged: every message goes through `redact`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import databento as db
import requests
from databento.common.error import BentoClientError, BentoError, BentoHttpError

from hdi_core.dbn import DbnError
from hdi_core.errors import ConfigError, GatewayNotConfiguredError, HdiError
from hdi_resources.retry import RetryPolicy, call_with_retries, one_line, retry_reason
from hdi_resources.settings import ENV_API_KEY, ENV_CA, ENV_GATEWAY, redact

T = TypeVar("T")

HOW_TO_START_GATEWAY = (
    f"set {ENV_API_KEY} to your Databento key, or start the offline gateway with `hdi replay serve` "
    f"and run the export lines it prints ({ENV_GATEWAY}, {ENV_CA}, {ENV_API_KEY})"
)


def gateway_url(configured: str | None) -> str | None:
    """The local gateway's URL (setting, else HDI_DATABENTO_GATEWAY); None = Databento itself."""
    return (configured or os.environ.get(ENV_GATEWAY) or "").strip() or None


def gateway_ca_path(configured: str | None) -> str | None:
    """The local gateway's PEM CA file (setting, else HDI_DATABENTO_CA); None = public roots only."""
    return (configured or os.environ.get(ENV_CA) or "").strip() or None


def source_label(gateway: str | None) -> str:
    """Who serves the data: the cache is namespaced by it so gateway data never passes for real data."""
    if gateway is None:
        return "databento"
    parts = urlsplit(gateway if "://" in gateway else f"https://{gateway}")
    return f"gateway:{parts.netloc or parts.path}"


def resolve_key(api_key: str, key_env_var: str, gateway: str | None) -> str:
    """The API key (setting, else the environment variable), or a ConfigError saying what to set."""
    key = (api_key or os.environ.get(key_env_var) or "").strip()
    if not key and gateway is None:
        raise GatewayNotConfiguredError(f"no Databento API key and no local gateway configured: {HOW_TO_START_GATEWAY}")
    if not key:
        raise ConfigError(
            f"{ENV_GATEWAY} is set ({redact(gateway or '')}) but {key_env_var} is empty; "
            f"the gateway needs a key too: use the export lines printed by `hdi replay serve`"
        )
    if key == "YOUR_API_KEY":
        raise ConfigError(f"{key_env_var} is still the placeholder YOUR_API_KEY; set your real key")
    return key


class ClientPool:
    """One `databento.Historical` per (key, gateway), built on first use; keys are held only as hashes."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str | None], db.Historical] = {}

    def get(self, key: str, gateway: str | None) -> db.Historical:
        pool_key = (hashlib.sha256(key.encode()).hexdigest(), gateway)
        client = self._clients.get(pool_key)
        if client is None:
            try:
                client = db.Historical(key=key, gateway=gateway) if gateway else db.Historical(key=key)
            except ValueError as exc:
                raise ConfigError(f"invalid Databento gateway {redact(gateway or '')}: {one_line(str(exc))}") from None
            self._clients[pool_key] = client
        return client


def call_api(fn: Callable[[], T], what: str, policy: RetryPolicy, *, key_env_var: str, where: str,
             context: Any | None = None) -> T:
    """Run one API call with retries; any failure leaves as a one-line HdiError without the key.

    `where` names the server in messages (already redacted); `what` names the request.
    """
    try:
        return call_with_retries(fn, policy, what, context=context)
    except DbnError as exc:  # a body that is not complete DBN (retried above when it was cut off)
        attempts = f" after {policy.max_attempts} attempts" if retry_reason(exc, policy) else ""
        raise HdiError(f"{what}: failed{attempts} talking to {where} ({type(exc).__name__}: "
                       f"{one_line(str(exc))})") from None
    except HdiError:
        raise
    except BentoClientError as exc:
        detail = one_line(exc.message or "")
        if exc.http_status in (401, 403):
            raise HdiError(
                f"{what}: Databento refused the API key (HTTP {exc.http_status}: {detail}); check "
                f"{key_env_var} (for the local gateway, the key printed by `hdi replay serve`)"
            ) from None
        attempts = f" after {policy.max_attempts} attempts" if retry_reason(exc, policy) else ""
        raise HdiError(f"{what}: request rejected{attempts} (HTTP {exc.http_status}: {detail})") from None
    except BentoHttpError as exc:
        attempts = f" after {policy.max_attempts} attempts" if retry_reason(exc, policy) else ""
        raise HdiError(
            f"{what}: server error{attempts} (HTTP {exc.http_status}: {one_line(exc.message or '')})"
        ) from None
    except requests.exceptions.SSLError as exc:
        raise HdiError(
            f"{what}: TLS verification of {where} failed; for the local gateway set {ENV_CA} to its CA file "
            f"({one_line(str(exc), 200)})"
        ) from None
    except ValueError as exc:
        if retry_reason(exc, policy) is None:  # the client's own argument checks (schema, stype, ...)
            raise HdiError(f"{what}: invalid request ({one_line(str(exc))})") from None
        raise HdiError(
            f"{what}: failed after {policy.max_attempts} attempts ({type(exc).__name__}: {one_line(str(exc))})"
        ) from None
    except (BentoError, OSError, requests.RequestException) as exc:
        reason = retry_reason(exc, policy)
        attempts = f" after {policy.max_attempts} attempts" if reason else ""
        raise HdiError(
            f"{what}: failed{attempts} talking to {where} ({type(exc).__name__}: {one_line(str(exc))})"
        ) from None
