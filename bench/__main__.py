"""Run the benchmarks, print a table, and write it to bench/results.md.

Sized for the 2-core machine CI and developers have: one Postgres, one server process,
one worker process, and this process as the client, all on one host.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from . import _procs
from .bulk import bulk_operations, cancel_compensated
from .console import console_list, console_rows
from .operations import operator_actions

RESULTS = Path(__file__).with_name("results.md")
# Spans on, to a local OTLP receiver. The batch processor's queue holds a bulk page's
# spans (its default, 2,048, drops most of them at 20,000 transitions a second).
OTLP_ENV = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_BSP_MAX_QUEUE_SIZE": "262144",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8192",
    "OTEL_BSP_SCHEDULE_DELAY": "1000",
}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def postgres_baseline(dsn: str, seconds: float) -> list[tuple[str, str, str]]:
    """Single-row lock-and-update transactions: the ceiling of one-transaction-per-step."""
    setup = await asyncpg.connect(dsn)
    await setup.execute("CREATE TABLE bench_rows (id int PRIMARY KEY, v int NOT NULL)")
    await setup.execute("INSERT INTO bench_rows SELECT g, 0 FROM generate_series(1, 10000) g")
    await setup.close()

    async def run(concurrency: int) -> float:
        pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
        done = 0
        deadline = time.perf_counter() + seconds

        async def loop(offset: int) -> None:
            nonlocal done
            i = offset
            async with pool.acquire() as conn:
                while time.perf_counter() < deadline:
                    async with conn.transaction():
                        await conn.fetchrow(
                            "SELECT * FROM bench_rows WHERE id = $1 FOR UPDATE", i % 10000 + 1
                        )
                        await conn.execute(
                            "UPDATE bench_rows SET v = v + 1 WHERE id = $1", i % 10000 + 1
                        )
                    done += 1
                    i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(loop(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        await pool.close()
        return done / elapsed

    seq = await run(1)
    par = await run(32)
    return [
        ("Postgres lock+update tx, 1 connection", f"{seq:,.0f} tx/s", "limit"),
        ("Postgres lock+update tx, 32 connections", f"{par:,.0f} tx/s", "limit"),
    ]


class CpuMeter:
    """CPU seconds spent by groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups

    def _sample(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, pids in self._groups.items():
            total = 0.0
            for pid in pids:
                procs = [psutil.Process(pid)]
                if name == "postgres":  # the postmaster and every backend it forked
                    procs += procs[0].children(recursive=True)
                for p in procs:
                    try:
                        t = p.cpu_times()
                        total += t.user + t.system
                    except psutil.NoSuchProcess:
                        pass
            totals[name] = total
        return totals

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {k: after[k] - self._before.get(k, 0.0) for k in after}


async def end_to_end(
    address: str, total: int, concurrency: int, meter: CpuMeter | None = None
) -> dict[str, float]:
    """Invoke the 3-step handler `total` times, `concurrency` at once, awaiting each."""
    from invoctl.client import Client

    latencies: list[float] = []
    async with Client(address) as client:
        # Warm up: worker registered and connected, plans cached.
        for attempt in range(200):
            try:
                await client.invoke("Bench", "three_steps", 1)
                break
            except Exception:
                if attempt == 199:
                    raise
                await asyncio.sleep(0.1)  # the worker is still registering
        await asyncio.gather(*(client.invoke("Bench", "three_steps", i) for i in range(200)))

        queue = iter(range(total))

        async def one_client() -> None:
            for i in queue:
                t0 = time.perf_counter()
                assert await client.invoke("Bench", "three_steps", i) == (i + 1) * 2 - 1
                latencies.append(time.perf_counter() - t0)

        if meter:
            meter.start()
        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = meter.stop() if meter else {}
    return {
        "rate": total / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": _pct(latencies, 0.99) * 1000,
        **{f"cpu_{k}": v / total * 1000 for k, v in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--invocations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--operations", type=int, default=300, help="per operator action")
    parser.add_argument(
        "--bulk-sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        metavar="N",
        help="invocations per bulk operation",
    )
    parser.add_argument(
        "--only-http",
        action="store_true",
        help="only the operator actions over HTTP, beside the same actions over gRPC",
    )
    parser.add_argument(
        "--console-invocations", type=int, default=200_000, metavar="N",
        help="invocations in the database whose console list page is timed",
    )  # fmt: skip
    parser.add_argument("--console-repeat", type=int, default=20, help="requests per page")
    parser.add_argument(
        "--only-console", action="store_true", help="only the console list page rows"
    )
    args = parser.parse_args()
    if args.only_http:
        return _only_http(args)
    if args.only_console:
        return print(_table(_console(args), "process (none here); the console list page only."))

    rows: list[tuple[str, str, str]] = []
    with _procs.embedded_postgres() as (dsn, pg_pid):
        rows += asyncio.run(postgres_baseline(dsn, args.baseline_seconds))
        with (
            _procs.server(dsn) as (address, server_pid),
            _procs.worker(address, args.concurrency) as worker_pid,
        ):
            meter = CpuMeter(
                {
                    "server": [server_pid],
                    "worker": [worker_pid],
                    "postgres": [pg_pid],
                    "client": [psutil.Process().pid],
                }
            )
            e2e = asyncio.run(end_to_end(address, args.invocations, args.concurrency, meter))
            one = asyncio.run(end_to_end(address, min(args.invocations, 500), 1))
            # Between the two: where latency goes once a few invocations share the host.
            curve = [
                (c, asyncio.run(end_to_end(address, min(args.invocations, 100 * c), c)))
                for c in (4, 16)
            ]
            actions = asyncio.run(
                operator_actions(
                    address,
                    args.operations,
                    args.operations,
                    worker_pid,
                    http_url=_procs.HTTP_URLS.get(address),
                )
            )
        # Bulk operations on a server of their own, exporting its spans over OTLP.
        count_file = Path(tempfile.mkdtemp(prefix="invoctl-otlp-")) / "spans"
        with (
            _procs.otlp_receiver(count_file) as endpoint,
            _procs.server(dsn, env={**OTLP_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}) as (
                bulk_address,
                _,
            ),
        ):
            bulk = asyncio.run(bulk_operations(bulk_address, dsn, count_file, args.bulk_sizes))
            compensated = asyncio.run(cancel_compensated(bulk_address, dsn, 10_000))
    label = f"3-step handler, call and await, concurrency {args.concurrency}"
    rows += [
        (f"{label}: throughput", f"{e2e['rate']:,.0f} inv/s", ">= 500 inv/s"),
        (f"{label}: p50 latency", f"{e2e['p50']:.1f} ms", "< 20 ms"),
        (f"{label}: p99 latency", f"{e2e['p99']:.1f} ms", ""),
        (
            f"{label}: CPU ms per invocation",
            " / ".join(
                f"{k} {e2e[f'cpu_{k}']:.2f}" for k in ("server", "worker", "postgres", "client")
            ),
            "2 cores",
        ),
        ("3-step handler, one at a time: p50 latency", f"{one['p50']:.1f} ms", "< 7 ms"),
        ("3-step handler, one at a time: p99 latency", f"{one['p99']:.1f} ms", ""),
        *(
            (
                f"3-step handler, concurrency {c}: throughput, p50 / p99 latency",
                f"{r['rate']:,.0f} inv/s, {r['p50']:.1f} / {r['p99']:.1f} ms",
                "",
            )
            for c, r in curve
        ),
    ]
    rows += _action_rows(actions)
    rows += _console(args)
    for name, total, rate, gap_p50, gap_max, spans, limit in bulk:
        target = ">= 15,000/s" if "100,000" in name and "purge" not in name else ""
        rows.append(
            (
                name,
                f"{total:.2f} s, {rate:,.0f}/s; progress every {gap_p50:.0f} ms (max "
                f"{gap_max:.0f}); {spans:,} spans received"
                + (f"; UPDATE limit {limit:,.0f} rows/s" if limit else ""),
                target,
            )
        )
    accepted, completed = compensated
    rows.append(
        (
            "bulk cancel of 10,000 suspended invocations, their handlers compensating",
            f"acted on after {accepted:.2f} s; all completed cancelled after {completed:.2f} s",
            "Restate: all done after 7-25 s",
        )
    )
    intro = f"process, client in the bench process; {args.invocations} measured invocations."
    text = _table(rows, intro)
    print(text)
    RESULTS.write_text(text)


# Restate 1.7.12 on this machine, same kind of client (issue 13): p50 one at a time, and
# operations per second at concurrency 32.
_RESTATE = {
    "HTTP PATCH kill": ("p50 1.1-2.2 ms", "1,900-3,900 ops/s"),
    "HTTP PATCH cancel": ("p50 1.8-2.9 ms", "1,000-2,150 ops/s"),
}


def _action_rows(actions: list[tuple]) -> list[tuple[str, str, str]]:
    rows = []
    for name, concurrency, p50, p99, rate in (r[:5] for r in actions):
        at = "one at a time" if concurrency == 1 else f"concurrency {concurrency}"
        if name.startswith("HTTP GET"):
            target = ""
        elif name.startswith("HTTP"):
            restate = next(v for k, v in _RESTATE.items() if name.startswith(k))
            target = f"Restate: {restate[0] if concurrency == 1 else restate[1]}"
        elif name.startswith("restart") or name.startswith("get"):
            target = ""
        else:  # issue 15: Restate's figures, measured in the same hour (see the intro)
            target = "<= Restate's p50" if concurrency == 1 else ">= Restate's rate"
        rows.append(
            (f"{name}, {at}", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {rate:,.0f} ops/s", target)
        )
    return rows


def _table(rows: list[tuple[str, str, str]], intro: str) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [
        f"# invoctl bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "One embedded Postgres (default durable settings), one server process, one worker",
        intro,
        "",
        f"| {'measure':<{width}} | result | target |",
        f"|{'-' * (width + 2)}|--------|--------|",
        *(f"| {name:<{width}} | {value} | {target} |" for name, value, target in rows),
    ]
    return "\n".join(lines) + "\n"


def _console(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The console list page's rows, on a Postgres of their own, so the database holds
    exactly the invocations the row names."""
    with _procs.embedded_postgres() as (dsn, _), _procs.server(dsn) as (address, _):
        timed = asyncio.run(
            console_list(address, _procs.HTTP_URLS[address], dsn,
                         args.console_invocations, args.console_repeat)
        )  # fmt: skip
    return console_rows(timed, args.console_invocations)


def _only_http(args: argparse.Namespace) -> None:
    """The HTTP rows beside the gRPC rows of the same actions; printed, not written to
    bench/results.md (which holds a whole run)."""
    with (
        _procs.embedded_postgres() as (dsn, _),
        _procs.server(dsn) as (address, _),
        _procs.worker(address, args.concurrency) as worker_pid,
    ):
        actions = asyncio.run(
            operator_actions(
                address,
                args.operations,
                args.operations,
                worker_pid,
                http_url=_procs.HTTP_URLS[address],
                only_http=True,
            )
        )
    intro = f"process, client in the bench process; {args.operations} operations per row."
    print(_table(_action_rows(actions), intro))


if __name__ == "__main__":
    main()
