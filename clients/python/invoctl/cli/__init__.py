"""The `invoctl` command line; `main` is the console-script entry point."""

import os

# gRPC's core logs its own lines to stderr (a failed TLS handshake, fork notices) unless
# told otherwise before it loads; the CLI reports each error once, as one readable line.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from .main import main  # after the variable: gRPC reads it when it loads

__all__ = ["main"]
