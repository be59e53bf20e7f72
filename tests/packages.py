"""Programs the tests need from Debian's packages (nginx, Chromium), installed with
apt-get on first use when missing.

Without one, a test fails where PostgreSQL is required (CI sets
HELPLINE_TEST_REQUIRE_POSTGRES=1: everything must run there) and is skipped
elsewhere, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

POLICY_RC = Path("/usr/sbin/policy-rc.d")
APT_TIMEOUT_S = 300


def debian_program(find: Callable[[], str | None], package: str) -> str:
    """The program ``find`` locates, installing ``package`` first if it is missing;
    fails or skips (see the module) when it cannot be had."""
    found = find()
    if found is not None:
        return found
    problem = _install(package)
    found = find()
    if found is not None:
        return found
    reason = problem or f"the program is still missing after installing {package}"
    if os.environ.get("HELPLINE_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _install(package: str) -> str | None:
    """Install a Debian package; None once done, else why it could not be."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{package} is not installed, and installing it needs root and apt-get"
    install = ("install", "-y", "--no-install-recommends", package)
    try:
        with _services_held_back():
            result = _apt_get(*install)
            if result.returncode != 0:
                # The package lists may be missing or out of date.
                _apt_get("update")
                result = _apt_get(*install)
    except subprocess.TimeoutExpired:
        return f"apt-get took over {APT_TIMEOUT_S} s to install {package}"
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        return f"apt-get install {package} failed: {' / '.join(output[-3:])}"
    return None


@contextlib.contextmanager
def _services_held_back() -> Iterator[None]:
    """While inside, Debian's maintainer scripts start no service: the nginx
    package would otherwise start one on port 80. A policy already in place is
    left as it is."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text(
        "#!/bin/sh\n# Start no service while the tests install.\nexit 101\n"
    )
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink()


def _apt_get(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "-q", *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=APT_TIMEOUT_S,
        check=False,
    )
