"""Benchmark Helpline's "create ticket" endpoint against a no-op ASGI baseline.

Run through ``bench/run``, which installs wrk and cleans up after a crash. Rounds
alternate baseline, Helpline, baseline, Helpline, so that a machine that gets
slower or faster mid-run moves both; each scenario is reported as the median over
its rounds. Every round starts its own server on a free loopback port and stops
it afterwards; each Helpline round gets a fresh SQLite file, so rounds are alike
and its stored tickets can be counted exactly.

Exits 1 when any request failed or the stored tickets do not add up, after
printing and saving the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"
LUA_SCRIPT = BENCH_DIR / "create_ticket.lua"
RESULTS = BENCH_DIR / "results" / "latest.json"

HOST = "127.0.0.1"
WRK_THREADS = 2
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# The baseline checks no key; wrk's script still needs one to send.
BASELINE_API_KEY = "hlk_baseline_unchecked"
API_KEY_LINE = re.compile(r"export HELPLINE_API_KEY=(hlk_[A-Za-z0-9_-]+)")
SCENARIOS = ("baseline", "helpline")


class BenchError(RuntimeError):
    """The benchmark could not run; the message says what to look at."""


@dataclass(frozen=True, slots=True)
class Server:
    pid: int
    port: int
    api_key: str


@dataclass(slots=True)
class WrkFigures:
    completed: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    socket_errors: dict[str, int]
    non_2xx: int
    not_success: int

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx + self.not_success

    @property
    def successes(self) -> int:
        return self.completed - self.non_2xx - self.not_success


@dataclass(slots=True)
class RoundResult:
    scenario: str
    round: int
    wrk: WrkFigures
    peak_rss_mib: float
    stored_tickets: int | None = None
    server_statuses: dict[str, int] = field(default_factory=dict)


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
        "--duration", type=_at_least(1), default=8, help="seconds per round [8]"
    )
    parser.add_argument(
        "--rounds", type=_at_least(1), default=2, help="rounds per scenario [2]"
    )
    parser.add_argument(
        "--connections",
        type=_at_least(WRK_THREADS),
        default=64,
        help="open connections [64]",
    )
    return parser.parse_args()


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
    results: list[RoundResult] = []
    for round_number in range(1, options.rounds + 1):
        for scenario in SCENARIOS:
            print(f"bench: round {round_number}, {scenario} ...", file=sys.stderr)
            results.append(
                _run_round(
                    scenario=scenario,
                    round_number=round_number,
                    options=options,
                    workdir=workdir,
                )
            )

    report = _report(results, options=options, started=started)
    _print_report(report)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nSaved to {RESULTS.relative_to(REPO)}")
    return 1 if report["problems"] else 0


def _run_round(
    *, scenario: str, round_number: int, options: argparse.Namespace, workdir: Path
) -> RoundResult:
    round_dir = workdir / f"{scenario}-{round_number}"
    round_dir.mkdir()
    with _running_server(scenario, round_dir=round_dir, pid_dir=workdir) as server:
        figures = _run_wrk(
            server, options=options, round_dir=round_dir, pid_dir=workdir
        )
        peak_rss_mib = _peak_rss_mib(server.pid)

    result = RoundResult(
        scenario=scenario, round=round_number, wrk=figures, peak_rss_mib=peak_rss_mib
    )
    if scenario == "helpline":
        result.stored_tickets = _count_tickets(round_dir / "bench.db")
        result.server_statuses = _logged_statuses(round_dir / "requests.log")
    return result


@contextlib.contextmanager
def _running_server(
    scenario: str, *, round_dir: Path, pid_dir: Path
) -> Iterator[Server]:
    """Start the scenario's server, wait until it answers, and always stop it."""
    port = _free_port()
    if scenario == "baseline":
        command = [
            str(VENV_BIN / "uvicorn"),
            *("--app-dir", str(BENCH_DIR), "noop_app:app"),
            *("--host", HOST, "--port", str(port)),
            *("--loop", "uvloop", "--http", "httptools", "--workers", "1"),
            *("--no-access-log", "--log-level", "warning", "--no-server-header"),
        ]
        env = _environment()
    else:
        command = [
            str(VENV_BIN / "helpline"),
            *("serve", "--host", HOST, "--port", str(port)),
            *("--database", f"sqlite:///{round_dir / 'bench.db'}"),
        ]
        env = _environment(HELPLINE_RATE_LIMIT_PER_SECOND="0")

    stdout, stderr = round_dir / "stdout.txt", round_dir / "requests.log"
    with _tracked_process(
        command, env=env, stdout=stdout, stderr=stderr, pid_dir=pid_dir
    ) as process:
        _wait_until_ready(process, port=port, log=stderr)
        api_key = BASELINE_API_KEY
        if scenario == "helpline":
            api_key = _printed_api_key(stdout)
        yield Server(pid=process.pid, port=port, api_key=api_key)


@contextlib.contextmanager
def _tracked_process(
    command: list[str],
    *,
    env: dict[str, str],
    stdout: Path,
    stderr: Path | None,
    pid_dir: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process writing to files (stderr None: into stdout's), and always
    stop it."""
    with contextlib.ExitStack() as files:
        out = files.enter_context(stdout.open("wb"))
        err = files.enter_context(stderr.open("wb")) if stderr else subprocess.STDOUT
        process = subprocess.Popen(  # noqa: S603 (our own argument list)
            command, stdout=out, stderr=err, env=env, cwd=stdout.parent
        )
    # bench/run kills what these files name if this driver dies before it can.
    pidfile = pid_dir / f"{process.pid}.pid"
    pidfile.write_text(str(process.pid))
    try:
        yield process
    finally:
        _stop(process)
        pidfile.unlink()


def _environment(**settings: str) -> dict[str, str]:
    """This process's environment without the caller's HELPLINE_* settings, so
    that every run measures Helpline's defaults plus ``settings``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HELPLINE_")
    }
    return inherited | settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(
    process: subprocess.Popen[bytes], *, port: int, log: Path
) -> None:
    url = f"http://{HOST}:{port}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(
                f"the server exited with {process.returncode}:\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise BenchError(
        f"{url} did not answer 200 in {READY_TIMEOUT_SECONDS:.0f} s:\n{_tail(log)}"
    )


def _printed_api_key(stdout: Path) -> str:
    match = API_KEY_LINE.search(stdout.read_text())
    if match is None:
        raise BenchError(f"helpline serve printed no API key:\n{_tail(stdout)}")
    return match.group(1)


def _tail(path: Path, lines: int = 20) -> str:
    """The end of a file, for error messages: bench/run removes its files on exit."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_wrk(
    server: Server, *, options: argparse.Namespace, round_dir: Path, pid_dir: Path
) -> WrkFigures:
    command = [
        "wrk",
        *("--threads", str(WRK_THREADS), "--connections", str(options.connections)),
        *("--duration", f"{options.duration}s", "--timeout", "2s", "--latency"),
        *("--script", str(LUA_SCRIPT), f"http://{HOST}:{server.port}/"),
    ]
    output = round_dir / "wrk.txt"
    env = _environment(BENCH_API_KEY=server.api_key)
    with _tracked_process(
        command, env=env, stdout=output, stderr=None, pid_dir=pid_dir
    ) as wrk:
        try:
            returncode = wrk.wait(timeout=options.duration + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not stop:\n{_tail(output)}") from None

    if returncode != 0:
        raise BenchError(f"wrk exited with {returncode}:\n{_tail(output)}")
    return parse_wrk_output(output.read_text())


def parse_wrk_output(text: str) -> WrkFigures:
    """The figures of one ``wrk --latency`` run with create_ticket.lua.

    Raises ``BenchError`` when a figure is missing, which means wrk or the Lua
    script printed something unexpected.
    """
    socket_errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if found:
        socket_errors = dict(zip(socket_errors, map(int, found.groups()), strict=True))

    lua = _required(r"bench-lua: responses=(\d+) non_2xx=(\d+) not_success=(\d+)", text)
    return WrkFigures(
        completed=int(_required(r"(\d+) requests in ", text)[0]),
        requests_per_second=float(_required(r"Requests/sec:\s+([\d.]+)", text)[0]),
        p50_ms=_milliseconds(*_required(r"\n\s+50%\s+([\d.]+)(us|ms|s|m)\b", text)),
        p99_ms=_milliseconds(*_required(r"\n\s+99%\s+([\d.]+)(us|ms|s|m)\b", text)),
        socket_errors=socket_errors,
        non_2xx=int(lua[1]),
        not_success=int(lua[2]),
    )


def _required(pattern: str, text: str) -> tuple[str, ...]:
    found = re.search(pattern, text)
    if found is None:
        raise BenchError(f"wrk's output has no match for {pattern!r}:\n{text}")
    return found.groups()


def _milliseconds(value: str, unit: str) -> float:
    per_unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
    return float(value) * per_unit[unit]


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), read while it runs."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    if found is None:
        raise BenchError(f"/proc/{pid}/status has no VmHWM line")
    return int(found.group(1)) / 1024


def _count_tickets(database: Path) -> int:
    connection = sqlite3.connect(database)
    try:
        (count,) = connection.execute("SELECT count(*) FROM tickets").fetchone()
    finally:
        connection.close()
    return int(count)


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


def _report(
    results: list[RoundResult], *, options: argparse.Namespace, started: float
) -> dict[str, object]:
    summaries = {
        scenario: _summary([r for r in results if r.scenario == scenario])
        for scenario in SCENARIOS
    }
    baseline_rps = summaries["baseline"]["requests_per_second"]
    for summary in summaries.values():
        summary["ratio_to_baseline"] = round(
            summary["requests_per_second"] / baseline_rps, 3
        )

    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "settings": {
            "duration_seconds": options.duration,
            "rounds": options.rounds,
            "connections": options.connections,
            "wrk_threads": WRK_THREADS,
            "server_workers": 1,
            "cpus": os.cpu_count(),
        },
        "scenarios": summaries,
        "rounds": [_round_as_json(result) for result in results],
        "problems": _problems(results, connections=options.connections),
    }


def _summary(results: list[RoundResult]) -> dict[str, float]:
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "requests_per_second": median([r.wrk.requests_per_second for r in results]),
        "p50_ms": median([r.wrk.p50_ms for r in results]),
        "p99_ms": median([r.wrk.p99_ms for r in results]),
        "errors": sum(r.wrk.errors for r in results),
        "peak_rss_mib": median([r.peak_rss_mib for r in results]),
    }


def _round_as_json(result: RoundResult) -> dict[str, object]:
    figures = asdict(result)
    figures["wrk"]["errors"] = result.wrk.errors
    figures["wrk"]["successes"] = result.wrk.successes
    figures["peak_rss_mib"] = round(result.peak_rss_mib, 1)
    if result.stored_tickets is None:
        del figures["stored_tickets"], figures["server_statuses"]
    return figures


def _problems(results: list[RoundResult], *, connections: int) -> list[str]:
    """What went wrong, one sentence each; empty for a clean run.

    wrk stops with up to one request in flight per connection, which the server
    may still store, so a Helpline round may store up to ``connections`` tickets
    more than wrk saw succeed, never fewer. Helpline's own log has every answer,
    so its count of 200s must equal the stored tickets exactly.
    """
    problems = []
    for result in results:
        name = f"{result.scenario} round {result.round}"
        if result.wrk.errors:
            problems.append(
                f"{name}: {result.wrk.errors} errors (socket "
                f"{result.wrk.socket_errors}, non-2xx {result.wrk.non_2xx}, "
                f"2xx without success {result.wrk.not_success}); "
                f"Helpline logged statuses {result.server_statuses or 'n/a'}"
            )
        if result.stored_tickets is None:
            continue
        extra = result.stored_tickets - result.wrk.successes
        if not 0 <= extra <= connections:
            problems.append(
                f"{name}: {result.stored_tickets} tickets stored but wrk saw "
                f"{result.wrk.successes} succeed"
            )
        if result.server_statuses != {"200": result.stored_tickets}:
            problems.append(
                f"{name}: {result.stored_tickets} tickets stored but Helpline "
                f"logged these statuses: {result.server_statuses}"
            )
    return problems


def _print_report(report: dict[str, object]) -> None:
    settings = report["settings"]
    print(
        f"\ncreate ticket: {settings['connections']} connections, "
        f"{settings['wrk_threads']} wrk threads, 1 server worker, "
        f"median of {settings['rounds']} x {settings['duration_seconds']} s rounds\n"
    )
    header = ("scenario", "req/s", "p50 ms", "p99 ms", "vs base", "errors", "RSS MiB")
    print("{:<10}{:>10}{:>9}{:>9}{:>9}{:>8}{:>9}".format(*header))
    for scenario, summary in report["scenarios"].items():
        print(
            f"{scenario:<10}{summary['requests_per_second']:>10.0f}"
            f"{summary['p50_ms']:>9.2f}{summary['p99_ms']:>9.2f}"
            f"{summary['ratio_to_baseline']:>9.3f}{summary['errors']:>8}"
            f"{summary['peak_rss_mib']:>9.1f}"
        )

    print()
    for entry in report["rounds"]:
        if entry["scenario"] == "helpline":
            wrk = entry["wrk"]
            print(
                f"helpline round {entry['round']}: {entry['stored_tickets']} "
                f"tickets stored, {entry['server_statuses'].get('200', 0)} logged "
                f"200; wrk saw {wrk['successes']} of {wrk['completed']} succeed, "
                f"{entry['stored_tickets'] - wrk['successes']} in flight at its stop"
            )
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as failure:
        sys.exit(f"bench: {failure}")
