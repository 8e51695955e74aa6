"""SIPp phones for the integration tests (see ``_harness.py``).

Owns: resolving scenario names in ``interop/scenarios``, the SIPp command line (always bound to
127.0.0.1 for SIP, media and its control socket; always with a global ``-timeout``; error and
message traces on), foreground runs, background processes stopped by PID, and reading the
message trace back.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from ._procs import (
    LOOPBACK,
    SCENARIOS_DIR,
    HarnessError,
    require_tool,
    stop_group,
    udp_port_free,
    wait_until,
)

_sipp_seq = itertools.count(1)


def scenario_path(scenario: str | Path) -> Path:
    """Resolve ``"reg_once"``, ``"reg_once.xml"`` or a path to an existing scenario file."""
    path = Path(scenario)
    if path.is_file():
        return path.resolve()
    name = path.name if path.suffix == ".xml" else f"{path.name}.xml"
    candidate = SCENARIOS_DIR / name
    if candidate.is_file():
        return candidate
    raise HarnessError(f"no SIPp scenario {scenario!r} (looked in {SCENARIOS_DIR})")


_STATUS_RE: Final = re.compile(r"^SIP/2\.0 (\d{3}) ", re.MULTILINE)
_TRACE_BLOCK_RE: Final = re.compile(
    # "UDP message received [297] bytes :" / "UDP message sent (464 bytes):"
    r"^-{5,} [^\n]*\n(?P<proto>\w+) message (?P<dir>received|sent) "
    r"(?:\[\d+\] bytes :|\(\d+ bytes\):)\n\n"
    r"(?P<msg>.*?)(?=^-{5,} |\Z)",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SippResult:
    """The outcome of one SIPp run (foreground or background)."""

    argv: tuple[str, ...]
    returncode: int
    """0: every call succeeded; 1: some failed; 97/99: other exits; negative: killed by signal."""
    timed_out: bool
    output: str
    """stdout + stderr (SIPp's final statistics screen, warnings)."""
    errors: str
    """The ``-trace_err`` file: unexpected messages and errors."""
    messages: str
    """The ``-trace_msg`` file: every message sent and received (CRLF read as LF)."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def check(self) -> Self:
        """Return self if SIPp succeeded; else raise ``AssertionError`` with all its output."""
        if not self.ok:
            raise AssertionError(f"SIPp failed:\n{self.describe()}")
        return self

    def describe(self) -> str:
        what = "timed out" if self.timed_out else f"rc={self.returncode}"
        return (
            f"$ {' '.join(self.argv)}\n-> {what}\n--- output ---\n{self.output[-6000:]}\n"
            f"--- errors ---\n{self.errors[-6000:]}\n--- messages ---\n{self.messages[-8000:]}"
        )

    def received(self) -> list[str]:
        """The messages SIPp received, in order, from the ``-trace_msg`` file (line ends read
        as LF, trailing blank lines removed; retransmissions appear each time)."""
        return self._messages("received")

    def sent(self) -> list[str]:
        """The messages SIPp sent, in order, retransmissions included."""
        return self._messages("sent")

    def _messages(self, direction: str) -> list[str]:
        return [
            m.group("msg").strip("\n")
            for m in _TRACE_BLOCK_RE.finditer(self.messages)
            if m.group("dir") == direction
        ]

    def received_statuses(self) -> list[int]:
        """Status codes of the responses SIPp received, in order."""
        codes: list[int] = []
        for msg in self.received():
            m = _STATUS_RE.match(msg)
            if m:
                codes.append(int(m.group(1)))
        return codes


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class SippProcess:
    """One SIPp process on 127.0.0.1; foreground via :func:`run_sipp`, background via
    :func:`start_sipp`. Use :meth:`wait` to let it finish, :meth:`stop` to end it (by PID)."""

    def __init__(
        self,
        scenario: str | Path,
        remote: str | None,
        local_port: int,
        keys: Mapping[str, str] | None = None,
        *,
        workdir: Path,
        call_id: str | None = None,
        pause_ms: int | None = None,
        calls: int = 1,
        timeout: float = 30.0,
        transport: str = "u1",
        extra_args: Sequence[str] = (),
    ) -> None:
        """
        :param scenario: name in ``interop/scenarios`` (``"reg_once"``) or a path.
        :param remote: ``"127.0.0.1:port"`` to send to; ``None`` for a pure UAS.
        :param local_port: SIPp's SIP port (``-p``); also ``[local_port]`` in the scenario.
        :param keys: ``-key NAME VALUE`` pairs (``user``, ``expires``, ``ctport``, ``regcseq``...).
        :param call_id: ``-cid_str`` (fixed Call-ID).
        :param pause_ms: ``-d``: the length of ``<pause/>`` steps.
        :param timeout: SIPp's own global timeout (``-timeout``, counted as a failure); the
            process is killed 5 s later if still alive.
        """
        self.scenario = scenario_path(scenario)
        self.remote = remote
        self.local_port = local_port
        self.timeout = timeout
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        stem = f"sipp-{next(_sipp_seq):03d}-{self.scenario.stem}-{local_port}"
        self.output_path = workdir / f"{stem}.out"
        self.errors_path = workdir / f"{stem}.errors.log"
        self.messages_path = workdir / f"{stem}.messages.log"
        args = [require_tool("sipp")]
        if remote is not None:
            if not remote.startswith(f"{LOOPBACK}:"):
                raise HarnessError(f"remote must be on {LOOPBACK}, got {remote!r}")
            args.append(remote)
        args += [
            "-sf", str(self.scenario),
            "-m", str(calls),
            "-i", LOOPBACK,
            "-p", str(local_port),
            "-mi", LOOPBACK,
            "-ci", LOOPBACK,
            "-t", transport,
            "-nostdin",
            "-timeout", f"{max(1, round(timeout))}s",
            "-timeout_error",
            "-trace_err", "-error_file", str(self.errors_path),
            "-trace_msg", "-message_file", str(self.messages_path),
        ]  # fmt: skip
        for name, value in (keys or {}).items():
            args += ["-key", name, value]
        if call_id is not None:
            args += ["-cid_str", call_id]
        if pause_ms is not None:
            args += ["-d", str(pause_ms)]
        args += extra_args
        self.argv: tuple[str, ...] = tuple(args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._timed_out = False
        self._result: SippResult | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, wait_bound: bool = True) -> Self:
        """Start SIPp; with *wait_bound*, return once its UDP port is bound (ready to receive)."""
        if self._proc is not None:
            raise HarnessError("SIPp already started")
        with open(self.output_path, "wb") as out:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        if wait_bound:
            try:
                wait_until(
                    lambda: (
                        self._proc is not None
                        and (self._proc.poll() is not None or not udp_port_free(self.local_port))
                    ),
                    timeout=10.0,
                    what=f"SIPp to bind 127.0.0.1:{self.local_port}",
                )
            except HarnessError:
                self.stop()
                raise
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to end (default: its own timeout + 5 s, then it is killed)."""
        if self._result is not None:
            return self._result
        if self._proc is None:
            raise HarnessError("SIPp not started")
        limit = self.timeout + 5.0 if timeout is None else timeout
        try:
            self._proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            stop_group(self._proc, signal.SIGKILL, 0.0)
        return self._collect()

    def stop(self, *, grace: float = 3.0) -> SippResult:
        """End SIPp by PID: SIGUSR1 (SIPp's soft exit), SIGKILL after *grace* s. Idempotent."""
        if self._result is not None:
            return self._result
        if self._proc is None:
            raise HarnessError("SIPp not started")
        if self._proc.poll() is None:
            stop_group(self._proc, signal.SIGUSR1, grace)
        return self._collect()

    def describe_so_far(self) -> str:
        """Its result if it has ended, else its command line and files so far (for reports)."""
        if self._result is not None:
            return self._result.describe()
        state = "not started" if self._proc is None else f"running, pid {self._proc.pid}"
        return (
            SippResult(
                argv=self.argv,
                returncode=-999,
                timed_out=False,
                output=_read(self.output_path),
                errors=_read(self.errors_path),
                messages=_read(self.messages_path),
            )
            .describe()
            .replace("-> rc=-999", f"-> {state}", 1)
        )

    def _collect(self) -> SippResult:
        assert self._proc is not None
        returncode = self._proc.returncode
        assert returncode is not None
        self._result = SippResult(
            argv=self.argv,
            returncode=returncode,
            timed_out=self._timed_out,
            output=_read(self.output_path),
            errors=_read(self.errors_path),
            messages=_read(self.messages_path),
        )
        return self._result

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_sipp(
    scenario: str | Path,
    remote: str | None,
    local_port: int,
    keys: Mapping[str, str] | None = None,
    *,
    workdir: Path,
    call_id: str | None = None,
    pause_ms: int | None = None,
    calls: int = 1,
    timeout: float = 30.0,
    transport: str = "u1",
    extra_args: Sequence[str] = (),
) -> SippResult:
    """Run one SIPp scenario to its end in the foreground; return its result (never raises on
    a SIPp failure: call ``.check()``). Arguments as :class:`SippProcess`."""
    proc = SippProcess(
        scenario,
        remote,
        local_port,
        keys,
        workdir=workdir,
        call_id=call_id,
        pause_ms=pause_ms,
        calls=calls,
        timeout=timeout,
        transport=transport,
        extra_args=extra_args,
    )
    proc.start(wait_bound=False)
    return proc.wait()


def start_sipp(
    scenario: str | Path,
    remote: str | None,
    local_port: int,
    keys: Mapping[str, str] | None = None,
    *,
    workdir: Path,
    call_id: str | None = None,
    pause_ms: int | None = None,
    calls: int = 1,
    timeout: float = 30.0,
    transport: str = "u1",
    extra_args: Sequence[str] = (),
) -> SippProcess:
    """Start SIPp in the background (e.g. a UAS: ``remote=None``) and return once its port is
    bound. The caller must :meth:`SippProcess.wait` or :meth:`SippProcess.stop` it (the
    ``sipp_background`` fixture does that for you)."""
    proc = SippProcess(
        scenario,
        remote,
        local_port,
        keys,
        workdir=workdir,
        call_id=call_id,
        pause_ms=pause_ms,
        calls=calls,
        timeout=timeout,
        transport=transport,
        extra_args=extra_args,
    )
    return proc.start(wait_bound=True)


class SippBackground:
    """Background SIPp processes of one test: ``start(...)`` as :func:`start_sipp` (the workdir
    is fixed); :meth:`stop_all` stops the ones still running, by PID (the ``sipp_background``
    fixture does that at teardown)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[SippProcess] = []

    def start(
        self,
        scenario: str | Path,
        remote: str | None,
        local_port: int,
        keys: Mapping[str, str] | None = None,
        *,
        call_id: str | None = None,
        pause_ms: int | None = None,
        calls: int = 1,
        timeout: float = 30.0,
        transport: str = "u1",
        extra_args: Sequence[str] = (),
    ) -> SippProcess:
        """Start SIPp and return once its port is bound (see :func:`start_sipp`)."""
        proc = SippProcess(
            scenario,
            remote,
            local_port,
            keys,
            workdir=self.workdir,
            call_id=call_id,
            pause_ms=pause_ms,
            calls=calls,
            timeout=timeout,
            transport=transport,
            extra_args=extra_args,
        )
        self.procs.append(proc)
        return proc.start(wait_bound=True)

    def stop_all(self) -> None:
        """Stop every process still running, newest first. Idempotent."""
        for proc in reversed(self.procs):
            if proc.pid is not None:
                proc.stop()
