"""Kamailio, the main registrar of the integration tests (see ``_harness.py``).

Owns: starting ``interop/kamailio-main.cfg`` on a free 127.0.0.1 port with its own ctl socket and
runtime dir (so that instances run side by side), readiness (ctl answers ``core.version`` and SIP
answers an OPTIONS), stopping by PID, and reading the location table through ``kamcmd ul.dump``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from ._procs import (
    KAMAILIO_CFG,
    LOOPBACK,
    HarnessError,
    free_port,
    log_tail,
    require_tool,
    stop_group,
    wait_until,
)


class KamcmdError(HarnessError):
    """``kamcmd`` failed or Kamailio answered an RPC with an error."""


# A kamcmd tree: an ordered list of (key, value) where a value is a string or a subtree.
KamcmdTree = list[tuple[str, "str | KamcmdTree"]]


def parse_kamcmd_tree(text: str) -> KamcmdTree:
    """Parse kamcmd's ``{ Key: value / Key: { ... } }`` output into an ordered tree.

    Keys repeat (several ``Info:`` or ``Contact:`` blocks), hence a list, not a dict.

    :raises KamcmdError: on unbalanced braces.
    """
    root: KamcmdTree = []
    stack: list[KamcmdTree] = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "{":
            # The opening brace of the whole answer (or of an anonymous array element).
            anonymous: KamcmdTree = []
            stack[-1].append(("", anonymous))
            stack.append(anonymous)
            continue
        if line == "}":
            if len(stack) == 1:
                raise KamcmdError(f"unbalanced '}}' in kamcmd output:\n{text}")
            stack.pop()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            stack[-1].append(("", line))
            continue
        value = value.strip()
        if value == "{":
            child: KamcmdTree = []
            stack[-1].append((key.strip(), child))
            stack.append(child)
        else:
            stack[-1].append((key.strip(), value))
    if len(stack) != 1:
        raise KamcmdError(f"unbalanced '{{' in kamcmd output:\n{text}")
    # Unwrap the anonymous outer brace.
    if len(root) == 1 and root[0][0] == "" and isinstance(root[0][1], list):
        return root[0][1]
    return root


def _children(tree: KamcmdTree, key: str) -> Iterator[KamcmdTree]:
    for k, v in tree:
        if k == key and isinstance(v, list):
            yield v


def _leaves(tree: KamcmdTree) -> dict[str, str]:
    return {k: v for k, v in tree if isinstance(v, str)}


def _opt(value: str | None) -> str | None:
    return None if value is None or value == "[not set]" else value


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class UlContact:
    """One contact of Kamailio's location table, as ``ul.dump`` shows it."""

    uri: str
    """The Contact URI (``Address``), e.g. ``sip:alice@127.0.0.1:5201``."""
    expires: int | None
    """Seconds left before expiry (Kamailio counts down); ``None`` if not a number (see raw)."""
    expires_raw: str
    """``Expires`` verbatim: a number, or ``permanent`` / ``expired`` / ``deleted``."""
    call_id: str
    cseq: int | None
    q: str
    user_agent: str | None
    received: str | None
    path: str | None
    socket: str | None
    instance: str | None
    reg_id: int | None
    ruid: str | None
    fields: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Every leaf field of the contact, verbatim (``Flags``, ``Methods``, ``Last-Modified``...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UlRecord:
    """One AOR of the location table with its contacts (in Kamailio's order)."""

    aor: str
    contacts: tuple[UlContact, ...]


def parse_ul_dump(text: str) -> dict[str, UlRecord]:
    """Parse ``kamcmd ul.dump`` output into ``{aor: UlRecord}`` (all domains merged)."""
    tree = parse_kamcmd_tree(text)
    records: dict[str, UlRecord] = {}
    for domains in _children(tree, "Domains"):
        for domain in _children(domains, "Domain"):
            for aors in _children(domain, "AoRs"):
                for info in _children(aors, "Info"):
                    leaves = _leaves(info)
                    aor = leaves.get("AoR", "")
                    contacts: list[UlContact] = []
                    for contact_list in _children(info, "Contacts"):
                        for contact in _children(contact_list, "Contact"):
                            f = _leaves(contact)
                            expires_raw = f.get("Expires", "")
                            contacts.append(
                                UlContact(
                                    uri=f.get("Address", ""),
                                    expires=_int_or_none(expires_raw),
                                    expires_raw=expires_raw,
                                    call_id=f.get("Call-ID", ""),
                                    cseq=_int_or_none(f.get("CSeq")),
                                    q=f.get("Q", ""),
                                    user_agent=_opt(f.get("User-Agent")),
                                    received=_opt(f.get("Received")),
                                    path=_opt(f.get("Path")),
                                    socket=_opt(f.get("Socket")),
                                    instance=_opt(f.get("Instance")),
                                    reg_id=_int_or_none(f.get("Reg-Id")),
                                    ruid=_opt(f.get("Ruid")),
                                    fields=f,
                                )
                            )
                    previous = records.get(aor)
                    merged = (previous.contacts if previous else ()) + tuple(contacts)
                    records[aor] = UlRecord(aor=aor, contacts=merged)
    return records


# --------------------------------------------------------------------------------------------
# Kamailio


def _short_tmpdir(prefix: str) -> Path:
    """A fresh private dir with a short path (unix socket paths are limited to ~107 bytes)."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


class Kamailio:
    """A Kamailio main registrar on 127.0.0.1 (``interop/kamailio-main.cfg``), UDP and TCP.

    Use as a context manager (or ``start()`` / ``stop()``)::

        with Kamailio(tmp_path) as kam:
            run_sipp("reg_once", kam.remote, free_udp_port(), {...}, workdir=tmp_path).check()
            assert kam.contacts("alice")[0].expires == 60

    The process runs in the foreground (``-DD -E``, its workers forked as the cfg says) in its own
    session; its stderr goes to :attr:`log_path`. Its runtime dir (``-Y``) and ctl socket live in a
    private short temp dir, so several instances run side by side.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        cfg: Path = KAMAILIO_CFG,
        defines: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
        stop_grace: float = 5.0,
    ) -> None:
        """
        :param workdir: where the log file goes (created if missing).
        :param port: SIP port (UDP and TCP); default: :func:`free_port`, retried if taken.
        :param defines: extra ``-A NAME=value`` pre-processor defines (value verbatim: quote
            strings yourself, e.g. ``{"FOO": '"bar"'}``).
        """
        self.workdir = workdir
        self._fixed_port = port
        self.port: int = port if port is not None else 0
        self.cfg = cfg
        self.defines: dict[str, str] = dict(defines or {})
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self._rundir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_seq = 0
        self.log_path: Path = workdir / "kamailio.log"

    # -- addresses ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)``."""
        return (LOOPBACK, self.port)

    @property
    def remote(self) -> str:
        """``"127.0.0.1:port"``: the form SIPp takes as its remote host."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def sip_uri(self) -> str:
        """``sip:127.0.0.1:port``."""
        return f"sip:{LOOPBACK}:{self.port}"

    @property
    def ctl(self) -> str:
        """The ctl (binrpc) socket, in kamcmd's ``-s`` form: ``unix:/tmp/.../ctl.sock``."""
        if self._rundir is None:
            raise HarnessError("Kamailio not started")
        return f"unix:{self._rundir / 'ctl.sock'}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def argv(self) -> list[str]:
        """The command line for the current port and runtime dir."""
        if self._rundir is None:
            raise HarnessError("Kamailio not started")
        args = [
            require_tool("kamailio"),
            "-DD",
            "-E",
            "-f",
            str(self.cfg),
            "-Y",
            str(self._rundir),
            "-A",
            f"MAIN_PORT={self.port}",
            "-A",
            f'CTL_SOCK="{self.ctl}"',
        ]
        for name, value in self.defines.items():
            args += ["-A", f"{name}={value}"]
        args += self.extra_args
        return args

    def start(self) -> None:
        """Start Kamailio and wait until both its ctl socket and SIP (UDP) answer.

        :raises HarnessError: if it exits or does not answer within ``start_timeout``; the
            message carries the log.
        """
        if self._proc is not None:
            raise HarnessError("Kamailio already started")
        require_tool("kamcmd")
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(1, attempts + 1):
            if self._fixed_port is None:
                self.port = free_port()
            try:
                self._start_once()
                return
            except HarnessError:
                self.stop()
                if attempt == attempts:
                    raise

    def _start_once(self) -> None:
        self._rundir = _short_tmpdir("smr-kam-")
        self._log_seq += 1
        self.log_path = self.workdir / (
            "kamailio.log" if self._log_seq == 1 else f"kamailio-{self._log_seq}.log"
        )
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._rundir,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise HarnessError(
                    f"kamailio exited with {self._proc.returncode} during start-up "
                    f"(port {self.port}); log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if self._answers():
                return
            if time.monotonic() >= deadline:
                raise HarnessError(
                    f"kamailio did not answer within {self.start_timeout:g} s on port {self.port};"
                    f" log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _answers(self) -> bool:
        socket_path = Path(self.ctl.removeprefix("unix:"))
        if not socket_path.exists():
            return False
        try:
            self.kamcmd("core.version", timeout=2.0)
        except KamcmdError:
            return False
        return self.options_ping(timeout=0.5) is not None

    def options_ping(self, *, timeout: float = 1.0) -> str | None:
        """Send one SIP OPTIONS over UDP; return the status line of the answer, or ``None``."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, 0))
            sock.settimeout(timeout)
            local_port: int = sock.getsockname()[1]
            branch = f"z9hG4bK-harness-{os.getpid()}-{local_port}-{time.monotonic_ns()}"
            request = (
                f"OPTIONS sip:{LOOPBACK}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:harness@{LOOPBACK}>;tag={local_port}\r\n"
                f"To: <sip:{LOOPBACK}:{self.port}>\r\n"
                f"Call-ID: {branch}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            sock.sendto(request, (LOOPBACK, self.port))
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
        first_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        return first_line if first_line.startswith("SIP/2.0 ") else None

    def stop(self) -> None:
        """Stop Kamailio (SIGTERM, then SIGKILL to its process group) and remove its runtime dir.

        Idempotent. The log file stays.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, signal.SIGTERM, self.stop_grace)
        rundir, self._rundir = self._rundir, None
        if rundir is not None:
            shutil.rmtree(rundir, ignore_errors=True)

    def log_text(self) -> str:
        """The log so far (the tail, if long)."""
        return log_tail(self.log_path)

    def script_log(self) -> list[str]:
        """The cfg's own ``xlog`` lines so far, without the process prefix: ``MAIN: REGISTER
        sip:example.test from 127.0.0.1:5201 (ci=...)``, ``MAIN: saved ...``, ``MAIN: lookup ->
        ...``: what Kamailio received and decided, in order."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        marker = "<script>: "
        return [line.split(marker, 1)[1] for line in text.splitlines() if marker in line]

    # -- RPC ------------------------------------------------------------------------------
    def kamcmd(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``kamcmd -s <ctl> ARGS...``; return its stdout.

        :raises KamcmdError: if kamcmd fails, times out, or prints an ``error:`` answer (kamcmd
            exits 0 even then).
        """
        argv = [require_tool("kamcmd"), "-s", self.ctl, *args]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise KamcmdError(f"{' '.join(argv)} timed out after {timeout:g} s") from None
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace")
        if done.returncode != 0 or out.lstrip().startswith("error:") or err.strip():
            raise KamcmdError(f"{' '.join(argv)} -> rc {done.returncode}: {out}{err}".rstrip())
        return out

    def ul_dump_text(self) -> str:
        """``kamcmd ul.dump`` verbatim."""
        return self.kamcmd("ul.dump")

    def ul_dump(self) -> dict[str, UlRecord]:
        """The location table: ``{aor: UlRecord}`` (AOR = user part: the cfg has no use_domain)."""
        return parse_ul_dump(self.ul_dump_text())

    def contacts(self, aor: str) -> list[UlContact]:
        """The contacts of *aor* (``[]`` when the AOR is not in the table)."""
        record = self.ul_dump().get(aor)
        return [] if record is None else list(record.contacts)

    def wait_for_contacts(
        self,
        aor: str,
        predicate: Callable[[list[UlContact]], bool],
        *,
        timeout: float = 10.0,
        what: str | None = None,
    ) -> list[UlContact]:
        """Poll :meth:`contacts` until *predicate* holds for them; return them.

        :raises HarnessError: on timeout, with the last location table in the message.
        """
        last: list[list[UlContact]] = [[]]

        def probe() -> list[UlContact] | None:
            last[0] = self.contacts(aor)
            return last[0] if predicate(last[0]) else None

        try:
            wait_until(probe, timeout=timeout, what=what or f"contacts of {aor!r}")
        except HarnessError as exc:
            raise HarnessError(f"{exc}; last seen: {last[0]!r}") from None
        return last[0]


class KamailioPool:
    """Start several :class:`Kamailio` instances (``pool.start()``), each on its own port, each
    logging to its own sub-dir of *workdir*; :meth:`stop_all` stops them (the
    ``kamailio_factory`` fixture does that at teardown)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.instances: list[Kamailio] = []

    def start(
        self,
        *,
        port: int | None = None,
        defines: Mapping[str, str] | None = None,
        cfg: Path = KAMAILIO_CFG,
        extra_args: Sequence[str] = (),
    ) -> Kamailio:
        """Start one more instance (arguments as :class:`Kamailio`) and return it, answering."""
        kam = Kamailio(
            self.workdir / f"kamailio-{len(self.instances) + 1}",
            port=port,
            defines=defines,
            cfg=cfg,
            extra_args=extra_args,
        )
        self.instances.append(kam)
        kam.start()
        return kam

    def stop_all(self) -> None:
        """Stop every instance, newest first. Idempotent."""
        for kam in reversed(self.instances):
            kam.stop()
