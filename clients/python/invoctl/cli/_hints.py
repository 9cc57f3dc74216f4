"""Commands the CLI suggests in its hints, written so they can be pasted as they are.

A hint that drops `--server` (or the TLS options) sends the user to the default server
with the next command, which then fails or, worse, acts on another server.
"""

from __future__ import annotations

import argparse
import shlex

from invoctl.client import DEFAULT_ADDRESS

__all__ = ["command"]


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
