"""Commands the CLI suggests in its hints, written so they can be pasted as they are.

A hint that drops `--server` (or the TLS options) sends the user to the default server
with the next command, which then fails or, worse, acts on another server.
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
import ssl

import grpc

from invoctl.client import DEFAULT_ADDRESS, InvoctlError

__all__ = ["command", "for_error", "probe"]

# How long the probe of an unreachable server may take: it runs once, after a failure.
_PROBE_SECONDS = 2.0
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d+)")


def command(args: argparse.Namespace, *words: str) -> str:
    """`invoctl [--server S] [--tls-... PEM] WORDS...`, with the connection options this
    run used. The token is never repeated: it stays where the user put it."""
    parts = ["invoctl"]
    server = getattr(args, "server", DEFAULT_ADDRESS)
    if server and server != DEFAULT_ADDRESS:
        parts += ["--server", server]
    for option in ("tls_ca", "tls_cert", "tls_key"):
        value = getattr(args, option, None)
        if value:
            parts += ["--" + option.replace("_", "-"), value]
    parts += words
    return shlex.join(parts)


def _uses_tls(args: argparse.Namespace) -> bool:
    return any(getattr(args, o, None) for o in ("tls_ca", "tls_cert", "tls_key"))


def probe(address: str, timeout: float = _PROBE_SECONDS) -> str:
    """What listens at `address` (`host:port`): "refused" (nothing), "tls" (it completed
    or answered a TLS handshake), "plain" (it answered, but not with TLS), or "unknown"
    (no answer in time, a name that does not resolve, an address that is not host:port).
    """
    match = _HOST_PORT.fullmatch(address)
    if match is None:
        return "unknown"
    host = match["v6"] or match["host"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, int(match["port"])), timeout=timeout) as raw:
            try:
                with context.wrap_socket(raw, server_hostname=host):
                    return "tls"
            except (ssl.SSLEOFError, ConnectionResetError, TimeoutError):
                return "plain"  # it hung up on (or ignored) a ClientHello
            except ssl.SSLError as err:
                # A TLS server refuses with an alert (e.g. mutual TLS without a client
                # certificate); anything else sent back what is not TLS (the messages
                # vary with the OpenSSL version: wrong version number, record layer...).
                return "tls" if "ALERT" in str(err).upper() else "plain"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "unknown"


def for_error(err: InvoctlError, args: argparse.Namespace) -> list[str]:
    """What to do about a failed request: hints that say what is true, and the fix."""
    server = args.server
    if err.code == grpc.StatusCode.UNAVAILABLE:
        tls = _uses_tls(args)
        found = probe(server)
        if found == "refused":
            return [
                f"nothing listens at {server}: start a server (invoctl serve), or pass "
                "--server HOST:PORT (env INVOCTL_SERVER)"
            ]
        if found == "tls" and not tls:
            return [
                f"{server} serves TLS: pass --tls-ca PEM, the CA that signed its "
                "certificate (env INVOCTL_TLS_CA), and --tls-cert/--tls-key if it asks "
                "for a client certificate"
            ]
        if found == "plain" and tls:
            return [
                f"{server} does not serve TLS: leave out --tls-ca, --tls-cert and "
                "--tls-key (and INVOCTL_TLS_CA, _CERT, _KEY)"
            ]
        if found == "tls":
            return [
                f"{server} serves TLS but the connection failed: does --tls-ca trust its "
                "certificate (and name its host), and does it accept --tls-cert?"
            ]
        return [f"is a server running at {server}? (invoctl serve, or --server HOST:PORT)"]
    if err.code == grpc.StatusCode.UNAUTHENTICATED:
        if not getattr(args, "token", None):
            return [
                f"{server} needs a token: pass --token TOKEN, or set INVOCTL_TOKEN (which "
                "keeps it out of the process list)"
            ]
        return [
            f"{server} does not accept the token given (--token or INVOCTL_TOKEN): check "
            "it, or ask the server's admin for one"
        ]
    return []
