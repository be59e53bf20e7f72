"""Benchmark Helpline under load, scenario by scenario, against no-op baselines.

Run through ``bench/run``, which installs wrk and cleans up after a crash. Each
scenario measures one of Helpline's runs against a reference run: a no-op ASGI
application served the same way, or for ``million`` Helpline on an empty
database. Their rounds alternate, A B A B, so that a machine that gets slower or
faster mid-run moves both; each run is reported as the median over its rounds.
Every round starts its own server on a free loopback port and stops it
afterwards; each round that creates tickets gets its own database, so its stored
tickets can be counted exactly.

Exits 1 when any request failed or the stored tickets do not add up, after
printing and saving the figures. A missed performance target is reported, not
a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from load import WRK_THREADS, run_wrk
from report import RoundResult, build_report, print_report
from scenarios import (
    LONG_ROUND_SECONDS,
    SCENARIOS,
    SEEDED_TICKETS,
    SHORT_ROUND_SECONDS,
    Run,
    plan,
)
from seed import SeededDatabase, seed_database
from servers import (
    HOST,
    BenchError,
    Database,
    Server,
    check_postgres,
    cpu_microseconds,
    cpu_ticks,
    fresh_postgres_database,
    peak_rss_mib,
    postgres_pids,
    running_helpline,
    running_noop,
    server_pids,
    sqlite_url,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"


@dataclass(slots=True)
class Context:
    """What rounds share: the work folder, and the seeded database if any."""

    workdir: Path
    seeded: SeededDatabase | None = None
    listing_database: Database | None = None
    postgres_databases: int = 0


def main() -> int:
    options = _parse_options()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    given_workdir = os.environ.get("BENCH_WORKDIR")
    if given_workdir:
        return _run(options, workdir=Path(given_workdir))
    with tempfile.TemporaryDirectory(prefix="helpline-bench.") as workdir:
        return _run(options, workdir=Path(workdir))


def _parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"{', '.join(SCENARIOS)}; repeatable [all]",
    )
    parser.add_argument(
        "--duration",
        type=_at_least(1),
        metavar="S",
        help=f"seconds per round [{LONG_ROUND_SECONDS}; listings and "
        f"connections256: {SHORT_ROUND_SECONDS}]",
    )
    parser.add_argument(
        "--rounds",
        type=_at_least(1),
        default=2,
        metavar="N",
        help="rounds per run [2]",
    )
    parser.add_argument(
        "--connections",
        type=_at_least(WRK_THREADS),
        default=64,
        metavar="C",
        help="connections of sqlite, postgres and million [64]",
    )
    parser.add_argument(
        "--tickets",
        type=_at_least(2),
        default=SEEDED_TICKETS,
        metavar="N",
        help=f"tickets seeded for million and listings [{SEEDED_TICKETS}]",
    )
    options = parser.parse_args()
    options.scenario = [
        name for name in SCENARIOS if name in (options.scenario or SCENARIOS)
    ]
    return options


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def _exit_on_signal(signum: int, _frame: object) -> None:
    # Raising lets every `finally` stop the servers it started.
    raise SystemExit(128 + signum)


def _run(options: argparse.Namespace, *, workdir: Path) -> int:
    started = time.time()
    if "postgres" in options.scenario:
        check_postgres()
    context = Context(workdir=workdir)
    if {"million", "listings"} & set(options.scenario):
        context.seeded = _seed(options, workdir=workdir)

    groups = plan(options, seeded=context.seeded)
    results: list[RoundResult] = []
    for group in groups:
        results += _measure(group, rounds=options.rounds, context=context)

    report = build_report(
        results,
        runs=[run for group in groups for run in group],
        scenarios=options.scenario,
        settings={
            "rounds": options.rounds,
            "duration_seconds": options.duration,
            "connections": options.connections,
            "seeded_tickets": options.tickets,
        },
        seeded=context.seeded,
        started=started,
    )
    print_report(report)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nSaved to {RESULTS.relative_to(REPO)}")
    return 1 if report["problems"] else 0


def _seed(options: argparse.Namespace, *, workdir: Path) -> SeededDatabase:
    print(f"bench: seeding {options.tickets:,} tickets ...", file=sys.stderr)
    seed_dir = workdir / "seed"
    seed_dir.mkdir()
    seeded = seed_database(
        seed_dir / "seeded.db", tickets=options.tickets, pid_dir=workdir
    )
    # Let the written file reach the disk now rather than during a round.
    os.sync()
    print(
        f"bench: seeded {seeded.tickets:,} tickets in {seeded.seconds:.1f} s",
        file=sys.stderr,
    )
    return seeded


def _measure(runs: list[Run], *, rounds: int, context: Context) -> list[RoundResult]:
    results = []
    for round_number in range(1, rounds + 1):
        for run in runs:
            print(
                f"bench: round {round_number} of {rounds}, {run.name} "
                f"({run.description}) ...",
                file=sys.stderr,
            )
            results.append(_run_round(run, round_number=round_number, context=context))
    return results


def _run_round(run: Run, *, round_number: int, context: Context) -> RoundResult:
    round_dir = context.workdir / f"{run.name.replace('/', '-')}-{round_number}"
    round_dir.mkdir()
    with _database_for(run, round_dir=round_dir, context=context) as database:
        # Every round starts on a quiet disk: what the seeding, a copy of the seeded
        # file or an earlier round left to write back would otherwise stall this
        # round's commits (seen here: a p99 of 1.1 s in the round after seeding).
        os.sync()
        with _server_for(
            run, database, round_dir=round_dir, pid_dir=context.workdir
        ) as server:
            listed = _probe(server, run.probe) if run.probe else None
            on_postgres = run.database == "postgres"
            server_before = cpu_ticks(server_pids(server))
            database_before = cpu_ticks(postgres_pids()) if on_postgres else {}
            figures = run_wrk(
                server, run.load, output=round_dir / "wrk.txt", pid_dir=context.workdir
            )
            server_cpu = cpu_microseconds(server_before, cpu_ticks(server_pids(server)))
            database_cpu = (
                cpu_microseconds(database_before, cpu_ticks(postgres_pids()))
                if on_postgres
                else None
            )
            processes = peak_rss_mib(server)

        requests = max(figures.completed, 1)
        result = RoundResult(
            run=run.name,
            round=round_number,
            wrk=figures,
            cpu_us_per_request=server_cpu / requests,
            database_cpu_us_per_request=(
                None if database_cpu is None else database_cpu / requests
            ),
            peak_rss_mib=sum(processes.values()),
            processes_rss_mib=processes,
            listed=listed,
        )
        # Counted once the server has stopped, so that it finished every write.
        if run.creates_tickets and database is not None:
            stored = database.count_tickets() - database.tickets_before
            result.stored_tickets = stored
            result.server_statuses = _logged_statuses(round_dir / "requests.log")
    return result


@contextlib.contextmanager
def _database_for(
    run: Run, *, round_dir: Path, context: Context
) -> Iterator[Database | None]:
    if run.database == "none":
        yield None
    elif run.database == "empty":
        yield Database(sqlite_url(round_dir / "bench.db"))
    elif run.database == "seeded":
        assert context.seeded is not None  # noqa: S101
        copy = round_dir / "bench.db"
        try:
            yield context.seeded.copy_to(copy)
        finally:
            # Half a gigabyte per round: no need to keep it until the run ends.
            for path in (copy, *round_dir.glob("bench.db-*")):
                path.unlink(missing_ok=True)
    elif run.database == "seeded-shared":
        assert context.seeded is not None  # noqa: S101
        if context.listing_database is None:
            copy = context.workdir / "listings" / "bench.db"
            copy.parent.mkdir()
            context.listing_database = context.seeded.copy_to(copy)
        yield context.listing_database
    else:
        context.postgres_databases += 1
        name = f"helpline_bench_{os.getpid()}_{context.postgres_databases}"
        with fresh_postgres_database(name, pid_dir=context.workdir) as url:
            yield Database(url)


@contextlib.contextmanager
def _server_for(
    run: Run, database: Database | None, *, round_dir: Path, pid_dir: Path
) -> Iterator[Server]:
    if database is None:
        with running_noop(
            workers=run.workers,
            work_us=run.work_us,
            round_dir=round_dir,
            pid_dir=pid_dir,
        ) as server:
            yield server
        return

    extra_env = {}
    if run.database == "postgres":
        blobs = round_dir / "blobs"
        blobs.mkdir()
        extra_env["HELPLINE_BLOB_DIR"] = str(blobs)
    with running_helpline(
        database,
        workers=run.workers,
        round_dir=round_dir,
        pid_dir=pid_dir,
        extra_env=extra_env,
    ) as server:
        yield server


def _probe(server: Server, probe: tuple[str, str]) -> dict[str, object]:
    """Send a listing request once: how many tickets it lists, and any message."""
    path, body = probe
    request = urllib.request.Request(
        f"http://{HOST}:{server.port}{path}",
        data=body.encode(),
        headers={
            "Content-Type": "application/json",
            "x-auth-apikey": server.api_key,
            "x-auth-scheme": "api-token",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            body_bytes = answer.read()
    except urllib.error.HTTPError as refused:
        return {"error": True, "status": refused.code, "warningMsg": None}
    envelope = json.loads(body_bytes)
    size = len(body_bytes)
    listed: dict[str, object] = {
        "error": envelope.get("error"),
        "errorMsg": envelope.get("errorMsg"),
        "warningMsg": envelope.get("warningMsg"),
        "response_bytes": size,
    }
    for name in ("tickets", "userTickets"):
        if isinstance(envelope.get(name), list):
            listed[name] = len(envelope[name])
    if "totalTickets" in envelope:
        listed["totalTickets"] = envelope["totalTickets"]
    return listed


def _logged_statuses(log: Path) -> dict[str, int]:
    """How many ticket requests Helpline's own request log shows, per status."""
    statuses: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("path") == "/api/help/ticket":
            statuses[str(entry.get("status"))] += 1
    return dict(sorted(statuses.items()))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as failure:
        sys.exit(f"bench: {failure}")
