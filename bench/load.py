"""Load from wrk, and the figures read from its output."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from servers import HOST, BenchError, Server, environment, tail, tracked_process

BENCH_DIR = Path(__file__).resolve().parent
CREATE_TICKET_SCRIPT = BENCH_DIR / "create_ticket.lua"
LIST_SCRIPT = BENCH_DIR / "list_open_tickets.lua"
WRK_THREADS = 2
# wrk leaves a response slower than this out of its percentiles and counts it as
# a timeout error instead: long enough that the slowest listings are measured,
# short enough to catch a request that hangs.
WRK_TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Load:
    """What wrk sends: a Lua script, with its settings in BENCH_* variables."""

    script: Path
    connections: int
    duration_seconds: int
    settings: dict[str, str] = field(default_factory=dict)


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


def run_wrk(server: Server, load: Load, *, output: Path, pid_dir: Path) -> WrkFigures:
    command = [
        "wrk",
        *("--threads", str(WRK_THREADS), "--connections", str(load.connections)),
        *("--duration", f"{load.duration_seconds}s", "--latency"),
        *("--timeout", f"{WRK_TIMEOUT_SECONDS}s"),
        *("--script", str(load.script), f"http://{HOST}:{server.port}/"),
    ]
    env = environment(BENCH_API_KEY=server.api_key, **load.settings)
    with tracked_process(
        command, env=env, stdout=output, stderr=None, pid_dir=pid_dir
    ) as wrk:
        try:
            returncode = wrk.wait(timeout=load.duration_seconds + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not stop:\n{tail(output)}") from None

    if returncode != 0:
        raise BenchError(f"wrk exited with {returncode}:\n{tail(output)}")
    return parse_wrk_output(output.read_text())


def parse_wrk_output(text: str) -> WrkFigures:
    """The figures of one ``wrk --latency`` run with one of our Lua scripts.

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
