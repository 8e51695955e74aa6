"""Processes, tools and ports for the integration harness (see ``_harness.py``).

Owns: where the repo's interop files are, finding the kamailio / kamcmd / sipp binaries, choosing
free 127.0.0.1 ports, polling with a deadline, and stopping a process we started by its PID and
process group. Every address here is 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

LOOPBACK: Final = "127.0.0.1"
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
INTEROP_DIR: Final = REPO_ROOT / "interop"
SCENARIOS_DIR: Final = INTEROP_DIR / "scenarios"
KAMAILIO_CFG: Final = INTEROP_DIR / "kamailio-main.cfg"

# Debian installs kamailio and kamcmd in /usr/sbin, which a non-root PATH often lacks.
_EXTRA_TOOL_DIRS: Final = ("/usr/sbin", "/usr/local/sbin", "/sbin")

_T = TypeVar("_T")


class HarnessError(RuntimeError):
    """A real component did not start, answer or stop as expected."""


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set to something other than false/0/no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_tool(name: str) -> str | None:
    """Return the absolute path of executable *name* (PATH, then the sbin dirs), or ``None``."""
    found = shutil.which(name)
    if found is not None:
        return found
    for directory in _EXTRA_TOOL_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_tools(*names: str) -> list[str]:
    """Return the subset of *names* that :func:`find_tool` cannot find, in order."""
    return [name for name in names if find_tool(name) is None]


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise HarnessError(f"{name!r} is not installed (apt-get install kamailio sip-tester)")
    return path


# Ports handed out by this process: never hand the same one out twice, so that two helpers that
# have not bound their port yet cannot both get it.
_handed_out: set[int] = set()


def udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (``ip_local_port_range``); Linux's default if unreadable."""
    try:
        low, high = (int(word) for word in
                     Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


# Lowest port handed out: below it live well-known services (and 5060).
_PORT_FLOOR: Final = 10000
_port_rng = random.Random(os.getpid() ^ time.time_ns())


def _pick_port(*, also_tcp: bool) -> int:
    """A port outside the kernel's ephemeral range, so that no socket bound to port 0 or connected
    by any process (Kamailio's, SIPp's, ours) can take it between now and its owner's bind. (CI
    once lost a port that way: a port chosen by ``bind(0)`` is an ephemeral one.)"""
    low, high = ephemeral_range()
    spans = [(first, last) for first, last in ((_PORT_FLOOR, low - 1), (high + 1, 65535))
             if last >= first]
    for _ in range(500):
        if spans:
            first, last = _port_rng.choice(spans)
            port = _port_rng.randint(first, last)
        else:  # the whole range is ephemeral: let the kernel choose (owners retry if it is taken)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((LOOPBACK, 0))
                port = probe.getsockname()[1]
        if port in _handed_out:
            continue
        if not udp_port_free(port) or (also_tcp and not _tcp_free(port)):
            continue
        _handed_out.add(port)
        return port
    raise HarnessError("no free port found on 127.0.0.1")


def free_udp_port() -> int:
    """Return a port number that is free for UDP on 127.0.0.1 right now (never the same twice)."""
    return _pick_port(also_tcp=False)


def free_port() -> int:
    """Return a port number free for both UDP and TCP on 127.0.0.1 (Kamailio listens on both)."""
    return _pick_port(also_tcp=True)


def wait_until(
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> _T:
    """Call *probe* until it returns something other than ``None``/``False``; return that value.

    :raises HarnessError: when *timeout* seconds pass first (the message names *what*).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_udp_bound(port: int, *, timeout: float = 10.0) -> None:
    """Wait until some process has bound UDP *port* on 127.0.0.1 (i.e. we can no longer bind it)."""
    wait_until(
        lambda: not udp_port_free(port), timeout=timeout, what=f"udp 127.0.0.1:{port} to be bound"
    )


# --------------------------------------------------------------------------------------------
# processes


def log_tail(path: Path, max_chars: int = 12_000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    if len(text) > max_chars:
        return "[...]\n" + text[-max_chars:]
    return text


def stop_group(proc: subprocess.Popen[bytes], first: signal.Signals, grace: float) -> None:
    """Send *first* to *proc*; after *grace* s SIGKILL its process group; reap it.

    *proc* was started with ``start_new_session=True``, so its PID is its process-group id. The
    group is killed while the leader is still an unreaped zombie, so the id cannot be reused.
    """
    pid = proc.pid
    if proc.returncode is None:
        try:
            os.kill(pid, first)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            # WNOWAIT: notice the exit without reaping, so the group id stays ours.
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            time.sleep(0.02)
    if proc.returncode is None:
        try:
            os.killpg(pid, signal.SIGKILL)  # stragglers (children of the leader) and the leader
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        raise HarnessError(f"process {pid} did not exit after SIGKILL") from None
