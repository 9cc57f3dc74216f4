"""What every listener of the server shares: a port another process holds is refused.

gRPC turns SO_REUSEPORT on by default, so a second server on the port of a running one
would start without error and the kernel would split connections between the two (one
with tokens, one without, say). Every listener binds exclusively instead, and a bind that
fails because the port is taken says so in these words.
"""

from __future__ import annotations

import errno
import socket


class AddressInUse(OSError):
    """Another process listens on the address."""

    def __init__(self, address: str) -> None:
        super().__init__(errno.EADDRINUSE, f"{address} is already in use")

    def __str__(self) -> str:
        return self.strerror or ""


def bind_failure(address: str) -> OSError:
    """Why binding `address` (host:port) failed: AddressInUse when a probe bind of the
    same address finds it taken, a plain OSError otherwise."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        return OSError(f"cannot listen on {address}: {exc}")
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return AddressInUse(address)
                return OSError(f"cannot listen on {address}: {exc.strerror}")
    return OSError(f"cannot listen on {address}")
