"""TLS channel credentials from PEM files (or PEM bytes)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

__all__ = ["PemSource", "tls_credentials"]

#: A PEM file's path, or the PEM text itself as bytes.
PemSource = str | os.PathLike[str] | bytes


def _pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def tls_credentials(
    ca: PemSource | None = None,
    cert: PemSource | None = None,
    key: PemSource | None = None,
) -> grpc.ChannelCredentials:
    """Channel credentials for a server that serves TLS.

    `ca` is the CA certificate to trust (None: the system's roots); `cert` and `key`
    are this client's certificate chain and private key, for a server that requires
    mutual TLS. Each is a path or the PEM bytes. Pass the result as `credentials=` to
    `Client` or `Worker`.

    Raises:
        ValueError: `cert` without `key`, or `key` without `cert`.
        OSError: a file cannot be read.
    """
    if (cert is None) != (key is None):
        raise ValueError("a client certificate and its key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca), private_key=_pem(key), certificate_chain=_pem(cert)
    )
