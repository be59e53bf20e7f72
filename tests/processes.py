"""``helpline serve`` as a real process on a loopback port, for the tests that
start, kill or proxy whole servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``helpline serve ARGUMENTS`` in ``workdir``; ready once ``/readyz`` answers 200.

    ``environment`` adds to the test's own variables; the rate limit is off unless
    it says otherwise.
    """

    def __init__(
        self,
        workdir: Path,
        *arguments: str,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = workdir / f"stdout-{self.port}.txt"
        self.stderr_path = workdir / f"stderr-{self.port}.txt"
        variables = {**os.environ, "HELPLINE_RATE_LIMIT_PER_SECOND": "0"}
        variables.pop("HELPLINE_DATABASE_URL", None)
        variables.update(environment or {})
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "helpline",
                    "serve",
                    "--port",
                    str(self.port),
                    *arguments,
                ],
                cwd=workdir,
                stdout=out,
                stderr=err,
                env=variables,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.stderr_path.read_text())
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError("helpline serve did not become ready")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
