"""A self-signed TLS certificate for the local gateway: the Databento client forces https on any gateway URL.

One certificate per HDI_HOME, reused by every gateway started there: aiohttp (the client's async path) reads
SSL_CERT_FILE once, when it is imported, so the CA bundle must exist, unchanged, before any gateway starts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hdi_core.environment import hdi_home


@dataclass(frozen=True)
class GatewayCertificate:
    """Where the certificate (also the CA clients must trust), its key and a combined CA bundle live."""

    cert_path: Path
    key_path: Path
    bundle_path: Path  # certifi's CAs plus this certificate, for REQUESTS_CA_BUNDLE / SSL_CERT_FILE

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def gateway_dir() -> Path:
    path = hdi_home() / "gateway"
    path.mkdir(parents=True, exist_ok=True)
    return path


def certificate_paths(folder: Path | None = None) -> GatewayCertificate:
    folder = folder or gateway_dir()
    return GatewayCertificate(
        folder / "gateway-cert.pem", folder / "gateway-key.pem", folder / "ca-bundle.pem"
    )


def ensure_certificate(folder: Path | None = None, min_days_left: int = 7) -> GatewayCertificate:
    """The gateway certificate under `folder` (default hdi_home()/gateway), created or renewed when needed."""
    paths = certificate_paths(folder)
    paths.cert_path.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may start gateways at once: one of them writes, the others wait and reuse.
    with open(paths.cert_path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _usable(paths, min_days_left):
            _write_certificate(paths)
        elif not paths.bundle_path.exists():
            _write_bundle(paths)
    return paths


def _usable(paths: GatewayCertificate, min_days_left: int) -> bool:
    if not (paths.cert_path.exists() and paths.key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_path.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=min_days_left)


def _base_bundle() -> Path:
    """certifi's public CAs: never another gateway's bundle, so an old certificate cannot shadow this one."""
    return Path(certifi.where())


def _write_bundle(paths: GatewayCertificate) -> None:
    """The trusted CAs plus the gateway certificate, for REQUESTS_CA_BUNDLE and SSL_CERT_FILE."""
    cert_pem = paths.cert_path.read_bytes()
    tmp = paths.bundle_path.with_suffix(".tmp")
    tmp.write_bytes(_base_bundle().read_bytes().rstrip(b"\n") + b"\n" + cert_pem)
    os.replace(tmp, paths.bundle_path)


def _write_certificate(paths: GatewayCertificate) -> None:
    """Write a fresh self-signed certificate (SAN 127.0.0.1 and localhost), its 0600 key and the CA bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    # A unique name per certificate: OpenSSL picks trust anchors by subject.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"HDI local Databento gateway {os.urandom(4).hex()}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Create the key file with 0600 from the start so it is never readable by others, even briefly.
    fd = os.open(paths.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    os.chmod(paths.key_path, 0o600)
    paths.cert_path.write_bytes(cert_pem)
    _write_bundle(paths)
