"""Databento's live (LSG) control protocol as the gateway speaks it: newline-terminated `key=value|...` lines.

Order on a connection (checked against databento/live/gateway.py and protocol.py of the pinned client):
gateway greeting `lsg_version=...`, gateway challenge `cram=...`, client `auth=<sha256(cram|key)>-<key[-5:]>
|dataset=...|encoding=dbn|ts_out=0|compression=none|heartbeat_interval_s=N|client=...`, gateway
`success=1|session_id=...` (or `success=0|error=...` then close), then any number of client subscription lines
`schema=...|stype_in=...|symbols=A,B|start=NS|snapshot=0|id=N|is_last=1` and one `start_session=0`, after
which the gateway sends a DBN stream (metadata, then records) and keeps reading subscription lines.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from hdi_core.errors import HdiError

LSG_VERSION = "0.0.0-hdi"  # what the greeting announces; the client only logs it
BUCKET_ID_LENGTH = 5  # the auth reply ends with the key's last 5 characters (databento.common.cram)
DEFAULT_LIVE_KEY = "db-local-key"  # accepted when no key is configured (README: the local gateway's key)
ENV_GATEWAY_KEYS = "HDI_GATEWAY_KEYS"  # shared with the historical gateway: comma-separated accepted keys
ENV_LIVE_GATEWAY = "HDI_DATABENTO_LIVE"  # the `host:port` line `hdi replay live` prints
DEFAULT_HEARTBEAT_S = 30  # Databento's default when the client does not ask for an interval
MAX_LINE_BYTES = 1 << 20  # a control line longer than this is refused (500 symbols per line fit easily)
AUTH_FAILED_MESSAGE = "Authentication failed."


class ControlError(HdiError):
    """A control line the gateway cannot accept; the text goes back to the client."""


def parse_line(line: bytes | str) -> dict[str, str]:
    """`a=1|b=2\\n` -> {"a": "1", "b": "2"} (as GatewayControl.parse splits it)."""
    text = line.decode("utf-8") if isinstance(line, bytes) else line
    fields: dict[str, str] = {}
    for token in text.strip().split("|"):
        if token:
            key, _, value = token.partition("=")
            fields[key] = value
    return fields


def format_line(**fields: object) -> bytes:
    """{"a": 1, "b": None} -> b"a=1\\n" (None fields are left out, as the client writes them)."""
    return ("|".join(f"{k}={v}" for k, v in fields.items() if v is not None) + "\n").encode("utf-8")


def greeting() -> bytes:
    return format_line(lsg_version=LSG_VERSION)


def new_challenge() -> str:
    return secrets.token_urlsafe(24)


def challenge_response(challenge: str, key: str) -> str:
    """What an honest client answers (databento.common.cram.get_challenge_response, written again here)."""
    digest = hashlib.sha256(f"{challenge}|{key}".encode()).hexdigest()
    return f"{digest}-{key[-BUCKET_ID_LENGTH:]}"


def authenticate(challenge: str, reply: str, keys: Iterable[str]) -> bool:
    """True when `reply` is the challenge response of one of `keys` (constant-time compare)."""
    bucket = reply[-BUCKET_ID_LENGTH:]  # the key's tail (it may hold a "-")
    return any(
        hmac.compare_digest(challenge_response(challenge, key), reply)
        for key in keys
        if key[-BUCKET_ID_LENGTH:] == bucket
    )


def accepted_keys(keys: Iterable[str] | None = None) -> list[str]:
    """--key options, else HDI_GATEWAY_KEYS (comma-separated), else the documented local key.

    CRAM needs the key itself to check a reply, so the historical gateway's "any key starting with db-" cannot
    apply here."""
    listed = [k.strip() for k in (keys or []) if k and k.strip()]
    if not listed:
        listed = [k.strip() for k in os.environ.get(ENV_GATEWAY_KEYS, "").split(",") if k.strip()]
    return listed or [DEFAULT_LIVE_KEY]


@dataclass(frozen=True)
class AuthRequest:
    """The client's `auth=` line."""

    auth: str
    dataset: str
    encoding: str
    compression: str
    ts_out: bool
    heartbeat_interval_s: int
    slow_reader_behavior: str | None
    client: str

    @classmethod
    def parse(cls, fields: dict[str, str]) -> AuthRequest:
        if "auth" not in fields:
            raise ControlError("Expected an authentication request (auth=...)")
        try:
            heartbeat = int(fields.get("heartbeat_interval_s") or DEFAULT_HEARTBEAT_S)
        except ValueError:
            raise ControlError(f"Invalid heartbeat_interval_s {fields['heartbeat_interval_s']!r}") from None
        if heartbeat < 1:
            raise ControlError(f"Invalid heartbeat_interval_s {heartbeat}: must be at least 1 second")
        return cls(
            auth=fields["auth"],
            dataset=fields.get("dataset", ""),
            encoding=fields.get("encoding", "dbn").lower(),
            compression=fields.get("compression", "none").lower(),
            ts_out=fields.get("ts_out", "0") not in ("0", "", "false"),
            heartbeat_interval_s=heartbeat,
            slow_reader_behavior=fields.get("slow_reader_behavior"),
            client=fields.get("client", ""),
        )


@dataclass(frozen=True)
class SubscriptionRequest:
    """One client subscription line (a long symbol list arrives in several lines; `is_last` ends it)."""

    schema: str
    stype_in: str
    symbols: tuple[str, ...]
    start_ns: int | None
    snapshot: bool
    sub_id: int | None
    is_last: bool

    @classmethod
    def parse(cls, fields: dict[str, str]) -> SubscriptionRequest:
        try:
            start = fields.get("start")
            return cls(
                schema=fields["schema"],
                stype_in=fields.get("stype_in", "raw_symbol"),
                symbols=tuple(s for s in fields.get("symbols", "").split(",") if s),
                start_ns=int(start) if start not in (None, "") else None,
                snapshot=fields.get("snapshot", "0") not in ("0", ""),
                sub_id=int(fields["id"]) if fields.get("id") not in (None, "") else None,
                is_last=fields.get("is_last", "1") != "0",
            )
        except (KeyError, ValueError) as exc:
            raise ControlError(f"Invalid subscription request: {exc}") from None
