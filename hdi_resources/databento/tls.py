"""Trusting a local gateway's CA without trusting less of anything else, and without a global setting.

The installed `databento` client (0.88) sends every sync call through module-level `requests.get` /
`requests.post` with no session and no `verify` argument, so nothing can hand it a CA file directly: the only
input `requests` reads is `REQUESTS_CA_BUNDLE`, per request, from the environment. `trusting` therefore sets it
(and `SSL_CERT_FILE`) only while a call to the gateway runs, to a bundle of certifi's roots plus the gateway's
CA, and puts the previous values back afterwards. Calls that want a different bundle wait for the current one
to finish. Verification is never switched off: every peer is still checked against that bundle.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hdi_core.errors import ConfigError
from hdi_resources.settings import ENV_CA, hdi_home

CA_ENV_NAMES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # read by requests (sync client) and ssl/aiohttp
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.S)
_bundle_lock = threading.Lock()


def _gateway_certs(ca_bytes: bytes, base_bytes: bytes) -> list[bytes]:
    """The CA file's certificates not already in the base store, the LAST one kept per subject.

    Every gateway certificate is named alike; OpenSSL trusts the first of a subject it meets, so a stale
    one earlier in the file (a bundle built on an older bundle) would hide the gateway's current one.
    """
    from cryptography import x509

    known = set(_PEM_CERT.findall(base_bytes))
    latest: dict[bytes, bytes] = {}
    for block in _PEM_CERT.findall(ca_bytes):
        if block in known:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old public roots with odd serial numbers warn on load
            try:
                subject = x509.load_pem_x509_certificate(block).subject.public_bytes()
            except ValueError:
                subject = block
        latest.pop(subject, None)
        latest[subject] = block
    return list(latest.values())


def combined_ca_bundle(ca_path: str) -> Path:
    """A CA bundle = certifi's roots + the gateway's CA, written once (atomically) under HDI_HOME/tls."""
    import certifi

    gateway_ca = Path(ca_path).expanduser()
    if not gateway_ca.is_file():
        raise ConfigError(f"{ENV_CA} / ca_path points to {gateway_ca}, which is not a readable file")
    ca_bytes = gateway_ca.read_bytes()
    # certifi only, never an inherited bundle: it may hold another gateway's CA under the same subject.
    base_bytes = Path(certifi.where()).read_bytes()
    extra = _gateway_certs(ca_bytes, base_bytes)
    if not extra:
        raise ConfigError(f"{ENV_CA} / ca_path file {gateway_ca} holds no PEM certificate beyond certifi's")
    tls_dir = hdi_home() / "tls"
    content = base_bytes.rstrip(b"\n") + b"\n" + b"\n".join(extra) + b"\n"
    bundle = tls_dir / f"hdi-ca-{hashlib.sha256(content).hexdigest()[:16]}.pem"
    with _bundle_lock:
        if not bundle.is_file():
            tls_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=tls_dir, prefix=".bundle-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, bundle)
    return bundle


class _CaScope:
    """Who is inside `trusting` right now, with which bundle, and the environment values to restore."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.bundle: Path | None = None
        self.users = 0
        self.saved: dict[str, str | None] = {}


_scope = _CaScope()


@contextmanager
def trusting(bundle: Path | None) -> Iterator[None]:
    """Run the body with `bundle` as the CA bundle `requests` verifies against (see the module docstring).

    None changes nothing. Threads using the same bundle share the scope; the environment is restored when
    the last one leaves.
    """
    if bundle is None:
        yield
        return
    with _scope.changed:
        while _scope.users and _scope.bundle != bundle:
            _scope.changed.wait()
        if not _scope.users:
            _scope.saved = {name: os.environ.get(name) for name in CA_ENV_NAMES}
            for name in CA_ENV_NAMES:
                os.environ[name] = str(bundle)
            _scope.bundle = bundle
        _scope.users += 1
    try:
        yield
    finally:
        with _scope.changed:
            _scope.users -= 1
            if not _scope.users:
                for name, value in _scope.saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                _scope.bundle = None
                _scope.changed.notify_all()
