"""Certificates made at test time: a CA, a server certificate and a client certificate it
signed, and a second, unrelated CA with a client certificate of its own.

Keys are ECDSA P-256 (fast to generate). The server certificate names DNS `localhost`
and IP `127.0.0.1`, since the tests connect to `127.0.0.1:PORT`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclasses.dataclass(frozen=True)
class Certs:
    """Paths of PEM files."""

    ca: Path  # the CA of the server and of `client_*`
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # an unrelated CA, and a client certificate it signed
    other_client_cert: Path
    other_client_key: Path


@dataclasses.dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "invoctl tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _write(directory: Path, stem: str, cert: x509.Certificate, key=None) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    return cert_path, key_path


_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _ca(directory: Path, stem: str, common_name: str) -> tuple[_Issuer, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    path, _ = _write(directory, stem, cert)
    return _Issuer(name, key), path


def _leaf(
    directory: Path,
    stem: str,
    issuer: _Issuer,
    common_name: str,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName] | None = None,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(common_name), issuer.name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(directory, stem, builder.sign(issuer.key, hashes.SHA256()), key)


def make_certs(directory: Path) -> Certs:
    """Write a fresh set of certificates and keys into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_path = _ca(directory, "ca", "invoctl test CA")
    server_cert, server_key = _leaf(
        directory, "server", ca, "localhost", ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))],
    )  # fmt: skip
    client_cert, client_key = _leaf(
        directory, "client", ca, "test-client", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    other, other_path = _ca(directory, "other-ca", "unrelated test CA")
    other_cert, other_key = _leaf(
        directory, "other-client", other, "stranger", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Certs(
        ca=ca_path,
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        other_ca=other_path,
        other_client_cert=other_cert,
        other_client_key=other_key,
    )
