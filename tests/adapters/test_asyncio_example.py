"""examples/asyncio_transport.py (the "build your own transport" example) works: a REGISTER is
relayed, retransmitted by its timer, answered, and a refresh absorbed; then the script itself
starts and serves (as a subprocess, stopped by PID)."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import anyio
import anyio.abc
import pytest

from sansmidreg import Endpoint, MidRegistrar

from ._support import LOOPBACK, TIMEOUT, Udp, make_core, ok_for, register, status

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asyncio_transport.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asyncio_transport_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_protocol_relays_retransmits_and_absorbs(anyio_backend: str) -> None:
    example = load_example()
    async with await anyio.create_udp_socket(local_host=LOOPBACK) as upstream, \
            await anyio.create_udp_socket(local_host=LOOPBACK) as phone:
        up_port = upstream.extra(anyio.abc.SocketAttribute.local_port)
        phone_port = phone.extra(anyio.abc.SocketAttribute.local_port)
        core: MidRegistrar = make_core(Endpoint(host=LOOPBACK, port=up_port), t1=0.05)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: example.MidRegistrarProtocol(core), local_addr=(LOOPBACK, 0))
        try:
            us_port = transport.get_extra_info("sockname")[1]
            with anyio.fail_after(TIMEOUT):
                await phone.sendto(register("alice", 1, phone_port), LOOPBACK, us_port)
                request, (host, port) = await upstream.receive()
                assert (await upstream.receive())[0] == request  # loop.call_at fired timer E
                await upstream.sendto(ok_for(request), host, port)
                assert status((await phone.receive())[0]) == 200
                await phone.sendto(register("alice", 2, phone_port), LOOPBACK, us_port)
                assert status((await phone.receive())[0]) == 200
            assert core.stats().registers_absorbed == 1
        finally:
            transport.close()


def free_udp_port() -> int:
    probe = Udp()
    probe.close()
    return probe.port


def test_script_serves_until_stopped() -> None:
    upstream, phone = Udp(), Udp()
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), f"{LOOPBACK}:{port}", str(upstream.endpoint), "mirror"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        upstream.sock.settimeout(0.2)
        deadline = time.monotonic() + TIMEOUT
        while True:  # until the script listens
            phone.send(register("bob", 1, phone.port), (LOOPBACK, port))
            try:
                request, addr = upstream.recv()
                break
            except TimeoutError:
                assert time.monotonic() < deadline and proc.poll() is None, "example not serving"
        upstream.send(ok_for(request), addr)
        assert status(phone.recv()[0]) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=TIMEOUT)
        upstream.close()
        phone.close()
