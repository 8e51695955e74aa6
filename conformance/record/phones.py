"""Phones and helpers for the corpus recordings: SIPp scenarios (ours first, then the interop
ones), a raw UDP sender for malformed messages, and the Driver a trace definition uses.
Addresses: our core on udp 127.0.0.1:5060, Kamailio on 5080, phones on 127.0.0.1:52xx."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.integration._harness import (
    Kamailio,
    SippProcess,
    SippResult,
    run_sipp,
    start_sipp,
)

HERE = Path(__file__).resolve().parent
MID = ("127.0.0.1", 5060)
MAIN_PORT = 5080
SCENARIOS = HERE / "scenarios"


def scenario(name: str) -> str | Path:
    """Ours (conformance/record/scenarios) first, else an interop one by name."""
    path = SCENARIOS / f"{name}.xml"
    return path if path.is_file() else name


class RawPhone:
    """A tiny UDP sender for messages SIPp will not send (malformed ones)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))

    def send(self, text: str, *, wait: float = 0.4) -> list[bytes]:
        """Send ``text`` (LF line ends, ``{port}`` filled in, CRLF CRLF added) and return what
        came back within ``wait`` seconds."""
        body = text.strip("\n").replace("{port}", str(self.port)).replace("\n", "\r\n")
        return self.send_bytes((body + "\r\n\r\n").encode(), wait=wait)

    def send_bytes(self, data: bytes, *, wait: float = 0.4) -> list[bytes]:
        self.sock.sendto(data, MID)
        got: list[bytes] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(65535))
            except TimeoutError:
                break
        return got

    def close(self) -> None:
        self.sock.close()


class Driver:
    """What a scenario function uses: SIPp phones, raw phones, Kamailio, sleeping."""

    def __init__(self, workdir: Path, kamailio: Kamailio) -> None:
        self.workdir = workdir
        self.kamailio = kamailio
        self.background: list[SippProcess] = []
        self.raws: list[RawPhone] = []

    def sipp(self, name: str, port: int, keys: Mapping[str, str], *, call_id: str,
             pause_ms: int | None = None, timeout: float = 60.0,
             extra_args: Sequence[str] = ()) -> SippResult:
        """Run a phone scenario against our core to its end; it must succeed."""
        result = run_sipp(scenario(name), f"{MID[0]}:{MID[1]}", port, keys, workdir=self.workdir,
                          call_id=call_id, pause_ms=pause_ms, timeout=timeout,
                          extra_args=extra_args)
        return result.check()

    def uas(self, name: str, port: int, keys: Mapping[str, str], *,
            pause_ms: int | None = None) -> SippProcess:
        """A device answering requests on ``port`` (background)."""
        proc = start_sipp(scenario(name), None, port, keys, workdir=self.workdir,
                          pause_ms=pause_ms, timeout=60.0)
        self.background.append(proc)
        return proc

    def caller(self, user: str, port: int, *, call_id: str, reject: bool = False,
               cancel_after_ms: int | None = None, scenario_name: str | None = None,
               pause_ms: int | None = None) -> SippResult:
        """A caller sending INVITE sip:user@example.test to the main registrar: answered
        (``uac_invite``), rejected (``reject``: ``uac_invite_reject``), or CANCELled by the
        caller ``cancel_after_ms`` after both devices rang (``uac_invite_cancel``); or any other
        caller scenario (``scenario_name``, its ``<pause/>`` ``pause_ms`` long)."""
        if scenario_name is not None:
            name = scenario_name
        elif cancel_after_ms is not None:
            name, pause_ms = "uac_invite_cancel", cancel_after_ms
        else:
            name = "uac_invite_reject" if reject else "uac_invite"
        result = run_sipp(scenario(name), self.kamailio.remote, port, {"user": user},
                          workdir=self.workdir, call_id=call_id, pause_ms=pause_ms, timeout=60.0)
        return result.check()

    def raw(self, port: int) -> RawPhone:
        phone = RawPhone(port)
        self.raws.append(phone)
        return phone

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        for proc in self.background:
            proc.wait(timeout=20).check()
        for phone in self.raws:
            phone.close()

    def abort(self) -> None:
        """After a failure: stop the devices still running (by PID) and close the raw phones."""
        for proc in self.background:
            proc.stop()
        for phone in self.raws:
            phone.close()
