"""The scenarios of the performance issue, and the runs that measure them.

A run is one kind of measured round: a server, where it stores, and the load
against it. A scenario holds one run against a reference run, with a target.
Runs that are compared with each other form a group, whose rounds alternate.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from load import CREATE_TICKET_SCRIPT, LIST_SCRIPT, Load
from seed import DAY_MS, SeededDatabase

LONG_ROUND_SECONDS = 8  # the create-ticket scenarios compared with each other
SHORT_ROUND_SECONDS = 5  # listings and connections256
LISTING_CONNECTIONS = 16
MANY_CONNECTIONS = 256
SEEDED_TICKETS = 1_000_000
DEEP_PAGE = 5000
MIB_PER_MB = 1_000_000 / 2**20
# The no-op run beside ``sqlite`` that spends this much CPU per request: what
# the sqlite target (half the no-op's rate) leaves an application, in CPU time.
SCALE_WORK_US = 20
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One kind of measured round: a server, where it stores, and its load."""

    name: str
    description: str
    app: str  # "noop" or "helpline"
    # "none", "empty" (a new SQLite file), "seeded" (a copy of the seeded file),
    # "seeded-shared" (one copy for every round, for reads) or "postgres".
    database: str
    workers: int
    load: Load
    # For listings: the request sent once before wrk, to record what it lists.
    probe: tuple[str, str] | None = None
    # For a no-op: the CPU it spends on each request, to show a cost's effect.
    work_us: int = 0

    @property
    def creates_tickets(self) -> bool:
        return self.app == "helpline" and self.load.script == CREATE_TICKET_SCRIPT


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A run held against a reference run, with the issue's target for it.

    Every target also asks for no errors; errors fail the whole run anyway.
    """

    name: str
    run: str
    reference: str
    reference_label: str = "no-op"
    min_ratio: float | None = None
    max_p99_ms: float | None = None
    max_rss_mib: float | None = None

    @property
    def target(self) -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(f"≥{self.min_ratio:g}{TIMES} {self.reference_label}")
        if self.max_p99_ms is not None:
            parts.append(f"p99≤{self.max_p99_ms:g}ms")
        if self.max_rss_mib is not None:
            parts.append(f"RSS≤{self.max_rss_mib:.0f}MiB")
        return ", ".join([*parts, "0 err"])

    def misses(self, figures: dict[str, float], ratio: float) -> list[str]:
        """How the figures miss the target, one phrase each; empty when met."""
        missed = []
        if self.min_ratio is not None and ratio < self.min_ratio:
            missed.append(
                f"{ratio:.2f}{TIMES} {self.reference_label} < {self.min_ratio:g}{TIMES}"
            )
        if self.max_p99_ms is not None and figures["p99_ms"] > self.max_p99_ms:
            missed.append(f"p99 {figures['p99_ms']:.1f} ms > {self.max_p99_ms:g} ms")
        if self.max_rss_mib is not None and figures["peak_rss_mib"] > self.max_rss_mib:
            missed.append(
                f"RSS {figures['peak_rss_mib']:.0f} MiB > {self.max_rss_mib:.0f} MiB"
            )
        if figures["errors"]:
            missed.append(f"{figures['errors']:.0f} errors")
        return missed


LISTINGS = ("listings/page1", "listings/page5000", "listings/window")
# By the name --scenario selects: the scenarios, each a row of the summary.
SCENARIOS = {
    "sqlite": [
        Scenario(
            name="sqlite", run="sqlite", reference="noop", min_ratio=0.5, max_p99_ms=20
        )
    ],
    "postgres": [
        Scenario(name="postgres", run="postgres", reference="noop-2w", min_ratio=0.3)
    ],
    "million": [
        Scenario(
            name="million",
            run="million",
            reference="sqlite",
            reference_label="sqlite",
            min_ratio=0.9,
        )
    ],
    "listings": [
        Scenario(name=name, run=name, reference="noop-16c", max_p99_ms=10)
        for name in LISTINGS
    ],
    "connections256": [
        Scenario(
            name="connections256",
            run="connections256",
            reference="noop-256c",
            max_rss_mib=150 * MIB_PER_MB,  # the 150 MB
        )
    ],
}


def plan(
    options: argparse.Namespace, *, seeded: SeededDatabase | None
) -> list[list[Run]]:
    """The selected runs, in groups whose rounds alternate with each other."""
    selected = set(options.scenario)
    groups = []
    if {"sqlite", "million"} & selected:
        groups.append(_create_ticket_runs(options, seeded=seeded))
    if "postgres" in selected:
        load = _create_load(options.connections, options.duration or LONG_ROUND_SECONDS)
        groups.append(
            [
                _noop_run("noop-2w", workers=2, load=load),
                _helpline_run(
                    "postgres",
                    store="PostgreSQL",
                    database="postgres",
                    workers=2,
                    load=load,
                ),
            ]
        )
    if "listings" in selected:
        assert seeded is not None  # noqa: S101 (seeded for listings)
        groups.append(_listing_runs(options, seeded=seeded))
    if "connections256" in selected:
        load = _create_load(MANY_CONNECTIONS, options.duration or SHORT_ROUND_SECONDS)
        groups.append(
            [
                _noop_run("noop-256c", load=load),
                _helpline_run(
                    "connections256", store="SQLite", database="empty", load=load
                ),
            ]
        )
    return groups


def _create_ticket_runs(
    options: argparse.Namespace, *, seeded: SeededDatabase | None
) -> list[Run]:
    """Empty SQLite, with the no-op baseline for ``sqlite`` and the seeded file
    for ``million``, which is compared with the empty one."""
    load = _create_load(options.connections, options.duration or LONG_ROUND_SECONDS)
    runs = [_helpline_run("sqlite", store="SQLite", database="empty", load=load)]
    if "sqlite" in options.scenario:
        scale = _noop_run(f"noop+{SCALE_WORK_US}us", load=load, work_us=SCALE_WORK_US)
        runs[:0] = [_noop_run("noop", load=load), scale]
    if "million" in options.scenario:
        assert seeded is not None  # noqa: S101 (seeded for million)
        store = f"SQLite holding {seeded.tickets:,} tickets"
        runs.append(_helpline_run("million", store=store, database="seeded", load=load))
    return runs


def _listing_runs(options: argparse.Namespace, *, seeded: SeededDatabase) -> list[Run]:
    """Page 1, a deep page and one day's window, on one copy of the seeded file;
    the baseline gets page 1's request."""
    middle_ms = (seeded.first_created_ms + seeded.last_created_ms) // 2
    requests = {
        "listings/page1": ("/api/help/openTickets", {"pageNumber": 1}),
        "listings/page5000": ("/api/help/openTickets", {"pageNumber": DEEP_PAGE}),
        "listings/window": (
            "/api/help/openTicketsV2",
            {"startTimeMs": middle_ms, "endTimeMs": middle_ms + DAY_MS},
        ),
    }
    seconds = options.duration or SHORT_ROUND_SECONDS

    def load(path: str, body: dict[str, int]) -> Load:
        settings = {"BENCH_PATH": path, "BENCH_BODY": json.dumps(body)}
        return Load(LIST_SCRIPT, LISTING_CONNECTIONS, seconds, settings)

    runs = [_noop_run("noop-16c", load=load(*requests["listings/page1"]))]
    for name, (path, body) in requests.items():
        store = f"{path} {json.dumps(body)}"
        runs.append(
            _helpline_run(
                name,
                store=store,
                database="seeded-shared",
                load=load(path, body),
                probe=(path, json.dumps(body)),
            )
        )
    return runs


def _create_load(connections: int, seconds: int) -> Load:
    return Load(CREATE_TICKET_SCRIPT, connections, seconds)


def _noop_run(name: str, *, workers: int = 1, load: Load, work_us: int = 0) -> Run:
    spending = f" spending {work_us} µs of CPU a request" if work_us else ""
    return Run(
        name=name,
        description=f"no-op{spending}, {_shape(workers, load)}",
        app="noop",
        database="none",
        workers=workers,
        load=load,
        work_us=work_us,
    )


def _helpline_run(
    name: str,
    *,
    store: str,
    database: str,
    workers: int = 1,
    load: Load,
    probe: tuple[str, str] | None = None,
) -> Run:
    return Run(
        name=name,
        description=f"{store}, {_shape(workers, load)}",
        app="helpline",
        database=database,
        workers=workers,
        load=load,
        probe=probe,
    )


def _shape(workers: int, load: Load) -> str:
    plural = "s" if workers > 1 else ""
    return f"{workers} worker{plural}, {load.connections} connections"
