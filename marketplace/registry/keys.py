"""The key that signs registry tokens, and its certificate chain (sent as ``x5c``).

From ``REGISTRY_TOKEN_KEY_FILE`` + ``REGISTRY_TOKEN_CERT_FILE`` when set (PEM; the certificate
file may hold a chain, leaf first, whose last certificate the registry trusts); otherwise an EC
P-256 key and a self-signed certificate generated on first use under ``$VAR_DIR/registry-certs``.
The registry's ``rootcertbundle`` is :func:`bundle_pem`. Tokens carry ``x5c`` rather than a
libtrust ``kid``: distribution 2.8 and 3.x both verify it the same way.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings

_lock = threading.Lock()


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]

    @property
    def algorithm(self) -> str:
        return "ES256" if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else "RS256"

    @property
    def x5c(self) -> list[str]:
        return [
            base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
            for cert in self.chain
        ]


def _generated_paths() -> tuple[Path, Path]:
    directory = Path(settings.VAR_DIR) / "registry-certs"
    return directory / "token.key", directory / "token.crt"


def _generate(key_path: Path, cert_path: Path) -> None:
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "marketplace registry tokens")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Write both files before either is visible, and the key readable by its owner only.
    tmp_key, tmp_cert = key_path.with_suffix(".key.tmp"), cert_path.with_suffix(".crt.tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem_key)
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_cert, cert_path)
    os.replace(tmp_key, key_path)


def _paths() -> tuple[Path, Path]:
    key_file, cert_file = settings.REGISTRY_TOKEN_KEY_FILE, settings.REGISTRY_TOKEN_CERT_FILE
    if key_file and cert_file:
        return Path(key_file), Path(cert_file)
    key_path, cert_path = _generated_paths()
    if key_path.exists() and cert_path.exists():
        return key_path, cert_path
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # The web server, the agents and `manage.py registry` may all get here first: one of them
    # generates, under a lock file, and the others read its key.
    with _lock, open(key_path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (key_path.exists() and cert_path.exists()):
            _generate(key_path, cert_path)
    return key_path, cert_path


@functools.cache
def _load(key_path: Path, cert_path: Path, mtime: float) -> SigningKey:
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path}: registry tokens need an EC or RSA key")
    chain = tuple(x509.load_pem_x509_certificates(cert_path.read_bytes()))
    if not chain:
        raise ValueError(f"{cert_path}: no certificate found")
    return SigningKey(private_key, chain)


def signing_key() -> SigningKey:
    key_path, cert_path = _paths()
    return _load(key_path, cert_path, cert_path.stat().st_mtime)


def bundle_pem() -> bytes:
    """What the registry's ``rootcertbundle`` must contain: the last certificate of the chain."""
    return signing_key().chain[-1].public_bytes(serialization.Encoding.PEM)
