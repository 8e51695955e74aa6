"""Out of file descriptors (EMFILE), for every backend of `sansmidreg serve`: the process runs
with RLIMIT_NOFILE 64 and a peer holds every free descriptor with idle TCP connections, while the
main registrar is reached over TCP. Then (1) a phone's REGISTER needs a new connection upstream:
socket() fails with EMFILE, which the sockets backend let escape (exit 1); (2) the listener stays
readable while accept() fails: the sockets backend retried at once, spinning a CPU at 100 %;
(3) once the peer lets go, the next REGISTER gets through (the first one is lost: the core does
not retransmit over TCP); (4) SIGTERM with those
connections open ends the process promptly with exit status 0. Subprocesses on free loopback
ports, stopped by PID, every wait bounded."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

from ._support import LOOPBACK, TIMEOUT, Messages, Udp, ok_for, register, status

LIMIT = 64
HOLD = 90  # more connections than the server has descriptors left


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


def low_fd_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_message(sock: socket.socket, messages: Messages) -> bytes:
    while (message := messages.pop()) is None:
        data = sock.recv(65536)
        assert data, "connection closed"
        messages.feed(data)
    return message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and RLIMIT_NOFILE")
@pytest.mark.parametrize("backend", ["sockets", "anyio", "trio"])
def test_out_of_descriptors(backend: str) -> None:
    port = free_port()
    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    upstream.bind((LOOPBACK, 0))
    upstream.listen(8)
    upstream.settimeout(TIMEOUT)
    phone = Udp()
    held: list[socket.socket] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sansmidreg_adapters.cli", "serve",
         "--listen", f"udp:{LOOPBACK}:{port}", "--listen", f"tcp:{LOOPBACK}:{port}",
         "--upstream", f"tcp:{LOOPBACK}:{upstream.getsockname()[1]}",
         "--mode", "aor-throttling", "--backend", backend, "--max-connections", "1000"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=env, preexec_fn=low_fd_limit)
    out = ""
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:  # until it listens
            try:
                held.append(socket.create_connection((LOOPBACK, port), timeout=TIMEOUT))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None, "not serving"
                time.sleep(0.05)
        for _ in range(HOLD):  # the kernel completes these even when the server cannot accept
            held.append(socket.create_connection((LOOPBACK, port), timeout=TIMEOUT))
        time.sleep(0.5)
        before = cpu_seconds(proc.pid)
        phone.send(register("alice", 1, phone.port), (LOOPBACK, port))  # needs a connection
        time.sleep(1.0)
        assert proc.poll() is None, "the server died"
        spent = cpu_seconds(proc.pid) - before
        assert spent < 0.5, f"{spent:.2f} s of CPU in 1 s while out of descriptors"
        for sock in held[1:]:
            sock.close()
        del held[1:]
        time.sleep(0.5)  # the server sees them close and gets its descriptors back
        phone.send(register("bob", 1, phone.port), (LOOPBACK, port))
        conn, _ = upstream.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            request = read_message(conn, Messages())
            assert request.startswith(b"REGISTER ") and b"call-bob" in request, request[:60]
            conn.sendall(ok_for(request))
            assert status(phone.recv()[0]) == 200
            started = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, out
        assert time.monotonic() - started < 3.0, "slow to stop"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            out += proc.communicate(timeout=TIMEOUT)[0]
        for sock in held:
            sock.close()
        upstream.close()
        phone.close()
