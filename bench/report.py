"""The figures of a run: medians, targets met or missed, problems; as JSON and
as the tables printed at the end."""

from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from load import WRK_THREADS, WrkFigures
from scenarios import SCENARIOS, TIMES, Run, Scenario
from seed import SeededDatabase


@dataclass(slots=True)
class RoundResult:
    run: str
    round: int
    wrk: WrkFigures
    # CPU time per request answered while wrk ran: of the server's processes, and
    # of the PostgreSQL server's for a run on PostgreSQL (None otherwise).
    cpu_us_per_request: float
    database_cpu_us_per_request: float | None
    peak_rss_mib: float
    processes_rss_mib: dict[int, float]
    stored_tickets: int | None = None
    server_statuses: dict[str, int] = field(default_factory=dict)
    listed: dict[str, Any] | None = None


def build_report(
    results: list[RoundResult],
    *,
    runs: list[Run],
    scenarios: list[str],
    settings: dict[str, Any],
    seeded: SeededDatabase | None,
    started: float,
) -> dict[str, Any]:
    """Everything measured, as saved to JSON: the medians of each run, each
    selected scenario against its target, every round, and the problems."""
    summaries = {
        run.name: _summary(run, [r for r in results if r.run == run.name])
        for run in runs
    }
    figures = {
        scenario.name: _scenario_figures(scenario, summaries)
        for name in scenarios
        for scenario in SCENARIOS[name]
    }
    finished = time.time()
    return {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "elapsed_seconds": round(finished - started, 1),
        "command": shlex.join(["bench/run", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "settings": {"scenarios": scenarios, **settings, "wrk_threads": WRK_THREADS},
        "seeding": seeded.as_json() if seeded else None,
        "scenarios": figures,
        "scale": _scale(runs, summaries),
        "runs": summaries,
        "rounds": [_round_as_json(result) for result in results],
        "problems": _problems(results, runs={run.name: run for run in runs}),
    }


def _scale(runs: list[Run], summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """For each no-op run that spends CPU on each request: its requests/s against
    the plain no-op's, which shows what that much work per request costs."""
    plain = summaries.get("noop")
    if plain is None:
        return {}
    return {
        run.name: {
            "work_us": run.work_us,
            "ratio_to_noop": round(
                summaries[run.name]["requests_per_second"]
                / plain["requests_per_second"],
                3,
            ),
        }
        for run in runs
        if run.work_us
    }


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _summary(run: Run, results: list[RoundResult]) -> dict[str, Any]:
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "description": run.description,
        "workers": run.workers,
        "connections": run.load.connections,
        "duration_seconds": run.load.duration_seconds,
        "rounds": len(results),
        "requests_per_second": median([r.wrk.requests_per_second for r in results]),
        "p50_ms": median([r.wrk.p50_ms for r in results]),
        "p99_ms": median([r.wrk.p99_ms for r in results]),
        "errors": sum(r.wrk.errors for r in results),
        "cpu_us_per_request": median([r.cpu_us_per_request for r in results]),
        "database_cpu_us_per_request": (
            None
            if any(r.database_cpu_us_per_request is None for r in results)
            else median([cast(float, r.database_cpu_us_per_request) for r in results])
        ),
        "peak_rss_mib": median([r.peak_rss_mib for r in results]),
    }


def _scenario_figures(
    scenario: Scenario, summaries: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    figures = summaries[scenario.run]
    reference = summaries[scenario.reference]
    ratio = figures["requests_per_second"] / reference["requests_per_second"]
    missed = scenario.misses(figures, ratio)
    return {
        "run": scenario.run,
        "reference": scenario.reference,
        "requests_per_second": figures["requests_per_second"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "ratio_to_baseline": round(ratio, 3),
        "errors": figures["errors"],
        "cpu_us_per_request": figures["cpu_us_per_request"],
        "database_cpu_us_per_request": figures["database_cpu_us_per_request"],
        "peak_rss_mib": figures["peak_rss_mib"],
        "target": scenario.target,
        "met": not missed,
        "missed": missed,
    }


def _round_as_json(result: RoundResult) -> dict[str, Any]:
    figures = asdict(result)
    figures["wrk"]["errors"] = result.wrk.errors
    figures["wrk"]["successes"] = result.wrk.successes
    figures["cpu_us_per_request"] = round(result.cpu_us_per_request, 1)
    if result.database_cpu_us_per_request is None:
        del figures["database_cpu_us_per_request"]
    else:
        figures["database_cpu_us_per_request"] = round(
            result.database_cpu_us_per_request, 1
        )
    figures["peak_rss_mib"] = round(result.peak_rss_mib, 1)
    figures["processes_rss_mib"] = {
        str(pid): round(mib, 1) for pid, mib in result.processes_rss_mib.items()
    }
    if result.stored_tickets is None:
        del figures["stored_tickets"], figures["server_statuses"]
    if result.listed is None:
        del figures["listed"]
    return figures


def _problems(results: list[RoundResult], *, runs: dict[str, Run]) -> list[str]:
    """What went wrong, one sentence each; empty for a clean run.

    wrk stops with up to one request in flight per connection. The server still
    answers each, so it may log up to that many more answers than wrk received,
    and store up to that many more tickets than wrk saw succeed, never fewer.
    One whose body the application had not read yet when wrk closed the
    connection is answered 400 (the client disconnected) and not stored: no one
    was told it was. Helpline's own log has every answer, so its count of 200s
    must equal the stored tickets exactly.
    """
    problems = []
    for result in results:
        name = f"{result.run} round {result.round}"
        wrk = result.wrk
        connections = runs[result.run].load.connections
        if wrk.errors:
            problems.append(
                f"{name}: {wrk.errors} errors (socket {wrk.socket_errors}, "
                f"non-2xx {wrk.non_2xx}, 2xx without success {wrk.not_success}); "
                f"Helpline logged statuses {result.server_statuses or 'n/a'}"
            )
        if result.listed is not None and result.listed["error"] is not False:
            problems.append(f"{name}: the listing was refused: {result.listed}")
        if result.stored_tickets is None:
            continue
        extra = result.stored_tickets - wrk.successes
        if not 0 <= extra <= connections:
            problems.append(
                f"{name}: {result.stored_tickets} tickets stored but wrk saw "
                f"{wrk.successes} succeed"
            )
        if result.server_statuses.get("200", 0) != result.stored_tickets:
            problems.append(
                f"{name}: {result.stored_tickets} tickets stored but Helpline "
                f"logged these statuses: {result.server_statuses}"
            )
        unanswered = sum(result.server_statuses.values()) - wrk.completed
        if not 0 <= unanswered <= connections:
            problems.append(
                f"{name}: Helpline logged {result.server_statuses} but wrk "
                f"received {wrk.completed} answers"
            )
    return problems


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\nHelpline benchmark: {report['cpus']} CPUs shared with wrk "
        f"({WRK_THREADS} threads); each run is the median of its rounds"
    )
    if report["seeding"]:
        seeding = report["seeding"]
        print(
            f"Seeded {seeding['tickets']:,} tickets in {seeding['seconds']:.1f} s "
            f"({seeding['size_mib']:.0f} MiB)"
        )
    _print_runs(report["runs"])
    for name, scale in report["scale"].items():
        print(
            f"{name}: spending {scale['work_us']} µs of CPU on each request, the "
            f"no-op answers {scale['ratio_to_noop']:.2f}{TIMES} its requests/s"
        )
    _print_rounds(report["rounds"])
    _print_scenarios(report["scenarios"])

    minutes, seconds = divmod(round(report["elapsed_seconds"]), 60)
    print(f"\nThe run took {minutes} min {seconds} s.")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")


def _print_runs(runs: dict[str, dict[str, Any]]) -> None:
    print(
        f"\n{'run':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'RSS MiB':>9}{'CPU µs/req':>12}  rounds x s, what"
    )
    for name, run in runs.items():
        print(
            f"{name:<18}{run['requests_per_second']:>9.0f}{run['p50_ms']:>9.2f}"
            f"{run['p99_ms']:>9.2f}{run['errors']:>8}{run['peak_rss_mib']:>9.1f}"
            f"{_cpu_column(run):>12}"
            f"  {run['rounds']} x {run['duration_seconds']} s, {run['description']}"
        )
    if any(run["database_cpu_us_per_request"] is not None for run in runs.values()):
        print("CPU µs/req: the server's, + PostgreSQL's for a run on PostgreSQL")


def _cpu_column(run: dict[str, Any]) -> str:
    server = f"{run['cpu_us_per_request']:.0f}"
    database = run["database_cpu_us_per_request"]
    return server if database is None else f"{server}+{database:.0f}"


def _print_rounds(rounds: list[dict[str, Any]]) -> None:
    print()
    for entry in rounds:
        name = f"{entry['run']} round {entry['round']}"
        wrk = entry["wrk"]
        if "stored_tickets" in entry:
            stored = entry["stored_tickets"]
            statuses = entry["server_statuses"]
            abandoned = sum(statuses.values()) - statuses.get("200", 0)
            abandoned -= wrk["non_2xx"]
            print(
                f"{name}: {stored} tickets stored, {statuses.get('200', 0)} "
                f"logged 200; wrk saw {wrk['successes']} of {wrk['completed']} "
                f"succeed, {stored - wrk['successes']} stored in flight at its stop"
                + (f", {abandoned} not stored, wrk gone" if abandoned else "")
            )
        if "listed" in entry:
            listed = entry["listed"]
            counts = ", ".join(
                f"{listed[key]} {key}"
                for key in ("tickets", "userTickets", "totalTickets")
                if key in listed
            )
            if listed["error"] is not False:
                print(f"{name}: the listing was refused: {listed}")
                continue
            print(
                f"{name}: lists {counts} in {listed['response_bytes']:,} bytes; "
                f"warning: {listed['warningMsg']}"
            )


def _print_scenarios(scenarios: dict[str, dict[str, Any]]) -> None:
    print(
        f"\n{'scenario':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{TIMES + 'baseline':>11}{'errors':>8}{'peak RSS':>10}  {'target':<31}met"
    )
    for name, scenario in scenarios.items():
        print(
            f"{name:<18}{scenario['requests_per_second']:>8.0f}"
            f"{scenario['p50_ms']:>8.2f}{scenario['p99_ms']:>8.2f}"
            f"{scenario['ratio_to_baseline']:>11.3f}{scenario['errors']:>8}"
            f"{scenario['peak_rss_mib']:>6.0f} MiB  {scenario['target']:<31}"
            f"{'yes' if scenario['met'] else 'no'}"
        )
    for name, scenario in scenarios.items():
        if scenario["missed"]:
            print(f"{name} missed its target: {'; '.join(scenario['missed'])}")
