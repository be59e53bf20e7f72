"""The benchmark's processes: servers and wrk, their databases, their memory.

Every process starts in a session of its own, and its pid file in the work
folder names that process group, so that ``bench/run`` can kill a server with
all its worker processes if the driver dies before it could stop them. Fresh
PostgreSQL databases leave a marker there for the same reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"

HOST = "127.0.0.1"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
# A worker whose CPU time grows by at most this many clock ticks over
# SETTLE_SECONDS has finished starting and waits for connections.
SETTLE_SECONDS = 0.3
SETTLE_TICKS = 1
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# The baseline checks no key; wrk's script still needs one to send.
BASELINE_API_KEY = "hlk_baseline_unchecked"
API_KEY_LINE = re.compile(r"export HELPLINE_API_KEY=(hlk_[A-Za-z0-9_-]+)")


class BenchError(RuntimeError):
    """The benchmark could not run; the message says what to look at."""


@dataclass(frozen=True, slots=True)
class Database:
    """Where a Helpline server stores, and what it held before the round."""

    url: str
    # None when the database is new: the server's first start prints one.
    api_key: str | None = None
    tickets_before: int = 0

    def count_tickets(self) -> int:
        return count_tickets(self.url)


@dataclass(frozen=True, slots=True)
class Server:
    pid: int
    port: int
    api_key: str
    workers: int


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def count_tickets(url: str) -> int:
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            (count,) = connection.execute("SELECT count(*) FROM tickets").fetchone()
        finally:
            connection.close()
        return int(count)
    with psycopg.connect(url) as postgres:
        row = postgres.execute("SELECT count(*) FROM tickets").fetchone()
    assert row is not None  # noqa: S101 (count(*) always answers a row)
    return int(row[0])


@contextlib.contextmanager
def running_noop(
    *, workers: int, work_us: int = 0, round_dir: Path, pid_dir: Path
) -> Iterator[Server]:
    """The no-op baseline under uvicorn, as Helpline serves: httptools, uvloop;
    spending ``work_us`` of CPU on each request."""
    port = free_port()
    command = [
        str(VENV_BIN / "uvicorn"),
        *("--app-dir", str(BENCH_DIR), "noop_app:app"),
        *("--host", HOST, "--port", str(port)),
        *("--loop", "uvloop", "--http", "httptools", "--workers", str(workers)),
        *("--no-access-log", "--log-level", "warning", "--no-server-header"),
    ]
    env = environment(BENCH_NOOP_WORK_US=str(work_us))
    with _started(command, env=env, round_dir=round_dir, pid_dir=pid_dir) as process:
        _wait_until_ready(process, port=port, workers=workers, round_dir=round_dir)
        yield Server(process.pid, port, BASELINE_API_KEY, workers)


@contextlib.contextmanager
def running_helpline(
    database: Database,
    *,
    workers: int,
    round_dir: Path,
    pid_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``helpline serve`` as an operator starts it, with rate limiting off."""
    port = free_port()
    command = [
        str(VENV_BIN / "helpline"),
        *("serve", "--host", HOST, "--port", str(port)),
        *("--workers", str(workers), "--database", database.url),
    ]
    env = environment(HELPLINE_RATE_LIMIT_PER_SECOND="0", **(extra_env or {}))
    with _started(command, env=env, round_dir=round_dir, pid_dir=pid_dir) as process:
        _wait_until_ready(process, port=port, workers=workers, round_dir=round_dir)
        api_key = database.api_key or _printed_api_key(round_dir / "stdout.txt")
        yield Server(process.pid, port, api_key, workers)


@contextlib.contextmanager
def _started(
    command: list[str], *, env: dict[str, str], round_dir: Path, pid_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with tracked_process(
        command,
        env=env,
        stdout=round_dir / "stdout.txt",
        stderr=round_dir / "requests.log",
        pid_dir=pid_dir,
    ) as process:
        yield process


@contextlib.contextmanager
def tracked_process(
    command: list[str],
    *,
    env: dict[str, str],
    stdout: Path,
    stderr: Path | None,
    pid_dir: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process in its own session, writing to files (stderr None: into
    stdout's), and always stop it with everything it started."""
    with contextlib.ExitStack() as files:
        # Appending, so that worker processes sharing the files never overwrite
        # each other's lines.
        out = files.enter_context(stdout.open("ab"))
        err = files.enter_context(stderr.open("ab")) if stderr else subprocess.STDOUT
        process = subprocess.Popen(  # noqa: S603 (our own argument list)
            command,
            stdout=out,
            stderr=err,
            env=env,
            cwd=stdout.parent,
            start_new_session=True,
        )
    # bench/run kills the process groups these files name if this driver dies
    # before it can.
    pidfile = pid_dir / f"{process.pid}.pid"
    pidfile.write_text(str(process.pid))
    try:
        yield process
    finally:
        _stop(process)
        pidfile.unlink()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process, wait for it, then kill whatever is left of its group.

    The process is reaped only after the group is killed: until then its pid,
    which is the group's id, cannot be taken by an unrelated process.
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        if not _exits_within(process, STOP_TIMEOUT_SECONDS):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _exits_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the process exits in time, leaving it to be reaped."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        if os.waitid(os.P_PID, process.pid, flags) is not None:
            return True
        time.sleep(0.05)
    return False


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without the caller's HELPLINE_* settings, so
    that every run measures Helpline's defaults plus ``settings``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HELPLINE_")
    }
    return inherited | settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(
    process: subprocess.Popen[bytes], *, port: int, workers: int, round_dir: Path
) -> None:
    """Wait until /readyz answers and, with several workers, every worker is up.

    Any one worker may answer /readyz; the others may still be importing. wrk
    opens all its connections at once, and a worker not yet accepting would get
    none of them for the whole round, so each worker must also have gone quiet.
    """
    url = f"http://{HOST}:{port}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    log = round_dir / "requests.log"
    while not _answers(url):
        if process.poll() is not None:
            raise BenchError(
                f"the server exited with {process.returncode}:\n{tail(log)}"
            )
        if time.monotonic() > deadline:
            raise BenchError(
                f"{url} did not answer 200 in {READY_TIMEOUT_SECONDS:.0f} s:\n"
                f"{tail(log)}"
            )
        time.sleep(0.05)
    if workers > 1:
        _wait_until_workers_settle(process.pid, workers=workers, deadline=deadline)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (http)
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _wait_until_workers_settle(parent: int, *, workers: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        started = worker_pids(parent)
        if len(started) >= workers:
            before = {pid: _cpu_ticks(pid) for pid in started}
            time.sleep(SETTLE_SECONDS)
            if all(
                _cpu_ticks(pid) - ticks <= SETTLE_TICKS for pid, ticks in before.items()
            ):
                return
        else:
            time.sleep(0.05)
    raise BenchError(f"{workers} worker processes of {parent} did not start in time")


def child_pids(parent: int) -> list[int]:
    """The process's children, read from /proc (any thread may have started one)."""
    children: list[int] = []
    for task in Path(f"/proc/{parent}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            children += map(int, (task / "children").read_text().split())
    return sorted(children)


def worker_pids(parent: int) -> list[int]:
    """The children that serve requests: uvicorn's workers, not its helpers such
    as multiprocessing's resource tracker."""
    return [pid for pid in child_pids(parent) if b"spawn_main" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """The CPU time (user and system, in clock ticks) each of ``pids`` has used."""
    return {pid: _cpu_ticks(pid) for pid in pids}


def cpu_microseconds(before: dict[int, int], after: dict[int, int]) -> float:
    """The CPU time used between two ``cpu_ticks``, in microseconds: by the
    processes of ``after``, of which one missing from ``before`` started since
    (one that ended as it was read counts for nothing, not less)."""
    ticks = sum(max(0, used - before.get(pid, 0)) for pid, used in after.items())
    return ticks * 1_000_000 / CLOCK_TICKS_PER_SECOND


def server_pids(server: Server) -> list[int]:
    """The server's process and its children: the workers and their helpers."""
    return [server.pid, *child_pids(server.pid)]


def postgres_pids() -> list[int]:
    """The processes of the machine's PostgreSQL server: the postmaster and its
    children, the backends serving Helpline's connections among them."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if comm.read_text().strip() in {"postgres", "postmaster"}:
                pids.append(int(comm.parent.name))
    return pids


def _cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0
    # Fields after the command name, which is in parentheses and may hold spaces:
    # utime and stime are the 12th and 13th of them.
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def peak_rss_mib(server: Server) -> dict[int, float]:
    """Peak resident memory (VmHWM) so far of the server's process and of each of
    its children (workers and helpers), by pid; read while they run."""
    return {pid: _peak_rss_of(pid) for pid in server_pids(server)}


def _peak_rss_of(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    if found is None:
        raise BenchError(f"/proc/{pid}/status has no VmHWM line")
    return int(found.group(1)) / 1024


def _printed_api_key(stdout: Path) -> str:
    match = API_KEY_LINE.search(stdout.read_text())
    if match is None:
        raise BenchError(f"helpline serve printed no API key:\n{tail(stdout)}")
    return match.group(1)


def tail(path: Path, lines: int = 20) -> str:
    """The end of a file, for error messages: bench/run removes its files on exit."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_postgres() -> None:
    """Raises ``BenchError`` unless the PostgreSQL server answers."""
    try:
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=5):
            pass
    except psycopg.Error as error:
        raise BenchError(
            f"PostgreSQL at {POSTGRES_SERVER} does not answer ({error}); start it, "
            "or leave out --scenario postgres"
        ) from None


@contextlib.contextmanager
def fresh_postgres_database(name: str, *, pid_dir: Path) -> Iterator[str]:
    """Create an empty database, yield its URL, and drop it afterwards."""
    _administer(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # bench/run drops the databases these files name if this driver dies first.
    marker = pid_dir / f"{name}.pgdb"
    marker.write_text(name)
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        _administer(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        marker.unlink()


def _administer(statement: sql.Composed) -> None:
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(statement)
