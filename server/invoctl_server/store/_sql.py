"""Loads the named statements of queries.sql (procrastinate style).

Each statement starts a paragraph with `-- name: why it exists` (more comment lines may
follow); the file is the one place SQL lives.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

# A header opens a paragraph: at the start of the file or after a blank line.
_HEADER = re.compile(r"(?:\A|\n\n)-- ([a-z_]+):")


def _load() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = "\n".join(line for line in body.splitlines()[1:] if not line.startswith("--"))
        if name in queries:
            raise RuntimeError(f"duplicate query name {name!r} in queries.sql")
        queries[name] = sql.strip()
    return queries


Q = _load()


async def custom_plans(conn: asyncpg.Connection) -> None:
    """Plan this transaction's statements for their parameters. Pooled connections plan
    generically (db.create_pool), which is right for every statement with index access by
    construction (tests/integration/test_plans.py holds them to it), but not for a
    statement of optional filters (`$1 IS NULL OR service = $1`): only a plan made for
    the filters given can use the index one of them needs."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
