"""`sansmidreg serve` as a real process for the integration tests: free 127.0.0.1 ports, its log
in the test's directory, statistics read through SIGUSR1, stopped by PID (SIGTERM, then SIGKILL
to its process group). The ``serve`` fixture starts any number of them and stops them all; a
failing test gets their logs printed (pytest shows a test's captured output on failure)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ._harness import LOOPBACK, HarnessError, free_port, wait_until
from ._procs import log_tail, stop_group

_STATS_LINE = re.compile(r"stats: (.*)$", re.M)
_SERVING = " serving "  # serve's INFO line once it listens (sansmidreg_adapters.cli.describe)


def parse_stats(line: str) -> dict[str, int]:
    """``REGISTER received=1 absorbed=0 ...; de-REGISTER sent=0 ...`` -> {"REGISTER.received":
    1, "de-REGISTER.sent": 0, "aors": 1, ...} (counts only; a segment's leading word, if any,
    prefixes its keys)."""
    values: dict[str, int] = {}
    for segment in line.split(";"):
        words = segment.split()
        prefix = f"{words[0]}." if words and "=" not in words[0] else ""
        for word in words:
            key, eq, value = word.partition("=")
            if eq and value.isdigit():
                values[prefix + key] = int(value)
    return values


class Serve:
    """One ``sansmidreg serve`` process listening on UDP and TCP 127.0.0.1:<free port>."""

    def __init__(self, workdir: Path, upstream: str, *, mode: str, backend: str = "sockets",
                 extra_args: Sequence[str] = (), name: str = "serve") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._upstream, self._mode, self._backend = upstream, mode, backend
        self._extra_args, self._name = tuple(extra_args), name
        self._take_port(free_port())
        self._proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def _take_port(self, port: int) -> None:
        self.port = port
        self.log_path = self.workdir / f"{self._name}-{port}.log"
        self.argv = [
            sys.executable, "-m", "sansmidreg_adapters.cli", "serve",
            "--listen", f"udp:{LOOPBACK}:{port}", "--listen", f"tcp:{LOOPBACK}:{port}",
            "--upstream", self._upstream, "--mode", self._mode, "--backend", self._backend,
            "--log-level", "debug", "--seed", "7", *self._extra_args,
        ]  # fmt: skip

    @property
    def remote(self) -> str:
        """``127.0.0.1:port``, as SIPp takes it."""
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 15.0, attempts: int = 3) -> Serve:
        """Start it and wait until it has bound its UDP port. When another process took that
        port between :func:`free_port` and our bind, start again on a new port (up to
        ``attempts`` times); any other early exit is an error at once."""
        attempt = 1
        while not self._start_once(timeout):
            if attempt == attempts or "Address already in use" not in self.log_text():
                raise HarnessError(f"sansmidreg serve exited with {self.returncode}:\n"
                                   f"{self.log_text()}")
            attempt += 1
            self.stop()
            self._take_port(free_port())
        return self

    def _start_once(self, timeout: float) -> bool:
        """Start the process; True once it says it is serving (it logs that after binding every
        listener), False if it exited first. (Probing the port could not tell its bind from
        another process's.)"""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          env=env)
        proc = self._proc
        try:
            wait_until(lambda: proc.poll() is not None or _SERVING in self.log_text(),
                       timeout=timeout, what=f"sansmidreg serve to bind {self.remote}")
        except HarnessError:
            self.stop()
            raise
        if proc.poll() is not None:
            self.returncode = proc.returncode
            return False
        return True

    def log_text(self) -> str:
        return log_tail(self.log_path, 40_000)

    def stats(self, timeout: float = 5.0) -> dict[str, int]:
        """Ask for the statistics (SIGUSR1) and return the new stats line, parsed."""
        assert self._proc is not None and self._proc.poll() is None
        before = len(_STATS_LINE.findall(self.log_text()))
        os.kill(self._proc.pid, signal.SIGUSR1)
        lines = wait_until(lambda: _STATS_LINE.findall(self.log_text())[before:] or None,
                           timeout=timeout, what="a stats line after SIGUSR1")
        return parse_stats(lines[-1])

    def debug_lines(self, word: str) -> list[str]:
        """Our DEBUG lines about REGISTERs that contain ``word`` (e.g. ``absorbed``)."""
        return [line for line in self.log_text().splitlines()
                if " DEBUG sansmidreg: " in line and word in line]

    def stop(self, grace: float = 8.0) -> int | None:
        """SIGTERM (graceful), SIGKILL to the process group after ``grace`` s; return the exit
        status (None if never started). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, signal.SIGTERM, grace)
            self.returncode = proc.returncode
        return self.returncode


class ServePool:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.instances: list[Serve] = []

    def start(self, upstream: str, *, mode: str, backend: str = "sockets",
              extra_args: Sequence[str] = ()) -> Serve:
        serve = Serve(self.workdir, upstream, mode=mode, backend=backend,
                      extra_args=extra_args)
        self.instances.append(serve)
        return serve.start()

    def stop_all(self) -> list[int | None]:
        return [serve.stop() for serve in self.instances]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServePool]:
    """Start ``sansmidreg serve`` processes with ``serve.start(upstream, mode=...)``; each is
    stopped by PID afterwards, and must exit 0 (a clean, graceful stop)."""
    pool = ServePool(tmp_path / "serve")
    try:
        yield pool
    finally:
        codes = pool.stop_all()
        for instance, code in zip(pool.instances, codes, strict=True):
            print(f"--- sansmidreg serve {instance.remote} (exit {code}) ---")
            print(instance.log_text())
        assert all(code == 0 for code in codes), f"sansmidreg serve exit codes: {codes}"

