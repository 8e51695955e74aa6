"""Fixtures for the integration tests: real Kamailio and SIPp processes on 127.0.0.1.

* ``kamailio``: a fresh main registrar per test (:class:`Kamailio`), stopped afterwards.
* ``kamailio_factory``: a :class:`KamailioPool` for tests that need more instances.
* ``sipp_dir``: the directory foreground SIPp runs (``run_sipp(..., workdir=sipp_dir)``) use.
* ``sipp_background``: a :class:`SippBackground` (UAS phones...), stopped by PID afterwards.

Tests marked ``integration`` (``pytestmark = pytest.mark.integration``) and tests using these
fixtures need the ``kamailio``, ``kamcmd`` and ``sipp`` binaries: missing ones fail those tests
when the ``CI`` environment variable is set (CI must run them) and skip them otherwise; unmarked
tests without these fixtures (the harness's own parsing tests) run everywhere. Every test here is
bounded in time by ``SANSMIDREG_IT_TIMEOUT`` seconds (default 120; SIGALRM, main thread). When a
test fails, the logs of its Kamailio instances and background SIPp processes are added to its
report.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from ._harness import Kamailio, KamailioPool, SippBackground, in_ci, missing_tools

REQUIRED_TOOLS = ("kamailio", "kamcmd", "sipp")

_pools_key = pytest.StashKey[list[KamailioPool]]()
_backgrounds_key = pytest.StashKey[list[SippBackground]]()
_reported_key = pytest.StashKey[bool]()


def _timeout_seconds() -> int:
    try:
        return max(1, int(os.environ.get("SANSMIDREG_IT_TIMEOUT", "120")))
    except ValueError:
        return 120


def require_tools() -> None:
    """Fail the current test if a tool is missing and ``CI`` is set, else skip it."""
    missing = missing_tools(*REQUIRED_TOOLS)
    if missing:
        message = (
            f"integration tests need {', '.join(missing)} "
            "(Debian: apt-get install kamailio sip-tester)"
        )
        if in_ci():
            pytest.fail(f"{message}; CI is set, so this is a failure", pytrace=False)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _integration_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Bound every test here in time (setup and teardown included); for tests marked
    ``integration``, first require the tools."""
    if request.node.get_closest_marker("integration") is not None:
        require_tools()

    seconds = _timeout_seconds()

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"integration test exceeded {seconds} s (SANSMIDREG_IT_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def kamailio_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KamailioPool]:
    """Start Kamailio instances with ``kamailio_factory.start(port=None, defines=None)``."""
    require_tools()
    pool = KamailioPool(tmp_path)
    request.node.stash.setdefault(_pools_key, []).append(pool)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def kamailio(kamailio_factory: KamailioPool) -> Kamailio:
    """A fresh Kamailio main registrar on a free 127.0.0.1 port (UDP+TCP), answering."""
    return kamailio_factory.start()


@pytest.fixture
def sipp_dir(tmp_path: Path) -> Path:
    """Where SIPp runs and writes its output, error and message-trace files."""
    require_tools()
    path = tmp_path / "sipp"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def sipp_background(request: pytest.FixtureRequest, sipp_dir: Path) -> Iterator[SippBackground]:
    """Background SIPp processes (``sipp_background.start(...)``), stopped by PID afterwards."""
    require_tools()
    background = SippBackground(sipp_dir)
    request.node.stash.setdefault(_backgrounds_key, []).append(background)
    try:
        yield background
    finally:
        background.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the Kamailio logs and background SIPp output of a failing test to its report."""
    report = yield
    if report.failed and not item.stash.get(_reported_key, False):
        item.stash[_reported_key] = True
        for pool in item.stash.get(_pools_key, []):
            for kam in pool.instances:
                report.sections.append((f"kamailio {kam.remote} {kam.log_path}", kam.log_text()))
        for background in item.stash.get(_backgrounds_key, []):
            for proc in background.procs:
                title = f"sipp {proc.scenario.name} 127.0.0.1:{proc.local_port}"
                report.sections.append((title, proc.describe_so_far()))
    return report
