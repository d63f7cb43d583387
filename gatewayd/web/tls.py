"""The box's own TLS key and certificate for the status page on the shop network.

Beyond loopback the page speaks HTTPS by default (``[web] tls = "auto"``). No public CA
can vouch for ``shibuya-gw.local``, so the box makes a self-signed certificate (ECDSA
P-256, 825 days: the longest iOS accepts) in ``{state_dir}/web-tls/`` the first time it
is needed and again when the host name changes or it nears its end. Staff check it by its
SHA-256 fingerprint, printed on the setup slip and in the page footer (or install it on
the phone once: docs/status-page.md). ``[web] tls_cert``/``tls_key`` bring your own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatewayd.errors import ConfigError, StorageError

TLS_DIR = "web-tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALIDITY = dt.timedelta(days=825)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:…"
    created: bool = False


def fingerprint_of(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def fingerprint_lines(fingerprint: str, per_line: int = 8) -> list[str]:
    """The fingerprint in short lines (a receipt is 32–48 columns wide)."""
    parts = fingerprint.split(":")
    return [":".join(parts[i : i + per_line]) for i in range(0, len(parts), per_line)]


def box_names(extra: Iterable[str] = ()) -> list[str]:
    """DNS names the certificate must cover: the host name, ``name.local``, localhost."""
    host = socket.gethostname().lower()
    names = [host, f"{host}.local", "localhost", *extra]
    return list(dict.fromkeys(n.lower() for n in names if n))


def _covers(cert: x509.Certificate, names: list[str], now: dt.datetime) -> bool:
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    return all(n in have for n in names)


def _generate(names: list[str], addresses: list[str], now: dt.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gatewayd (self-signed)"),
    ])
    ips: list[x509.GeneralName] = []
    for a in ["127.0.0.1", "::1", *addresses]:
        with contextlib.suppress(ValueError):
            ips.append(x509.IPAddress(ipaddress.ip_address(a)))
    san = x509.SubjectAlternativeName([*(x509.DNSName(n) for n in names), *ips])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def ensure_certificate(
    state_dir: Path,
    *,
    names: Iterable[str] | None = None,
    addresses: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> Certificate:
    """The box's certificate, made (or remade: new host name, near its end) when needed."""
    now = now or dt.datetime.now(dt.UTC)
    wanted = list(names) if names is not None else box_names()
    directory = state_dir / TLS_DIR
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    try:
        if cert_path.is_file() and key_path.is_file():
            pem = cert_path.read_bytes()
            if _covers(x509.load_pem_x509_certificate(pem), wanted, now):
                return Certificate(cert_path, key_path, fingerprint_of(pem))
        owner = None
        if os.geteuid() == 0:  # firstboot/install as root for the daemon's user
            st = state_dir.stat()
            owner = (st.st_uid, st.st_gid)
        directory.mkdir(mode=0o700, exist_ok=True)
        if owner is not None:
            os.chown(directory, *owner)
        key_pem, cert_pem = _generate(wanted, list(addresses), now)
        _write(key_path, key_pem, 0o600, owner)
        _write(cert_path, cert_pem, 0o644, owner)
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot make the status page's TLS certificate in {directory}: "
                           f"{exc}") from None
    return Certificate(cert_path, key_path, fingerprint_of(cert_pem), created=True)


def load_certificate(cert: Path, key: Path) -> Certificate:
    """A certificate the installer brought (``tls_cert``/``tls_key``), checked now."""
    try:
        pem = cert.read_bytes()
        fingerprint = fingerprint_of(pem)
        server_context(Certificate(cert, key, fingerprint))
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use the TLS certificate: {exc}",
            key="web.tls_cert",
            value=f"{cert} / {key}",
            expected="a PEM certificate (chain) and its PEM private key, readable by gatewayd",
        ) from None
    return Certificate(cert, key, fingerprint)


def server_context(cert: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert.cert), str(cert.key))
    return context
