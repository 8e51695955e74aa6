# Embedding the sansmidreg core: one UDP socket, one timer, one `match` over the actions.
#
# The core does no I/O and reads no clock: feed it every datagram with the time it arrived,
# call handle_timer() when the deadline it asked for (ArmTimer) comes, and execute what it
# returns. This file is included in the README and run by tests/unit/test_readme_example.py.
from __future__ import annotations

import selectors
import socket
import sys
import time
from typing import assert_never

from sansmidreg import (
    Action,
    ArmTimer,
    Config,
    Drop,
    Endpoint,
    Fork,
    MidRegistrar,
    Mode,
    Reply,
    SendRequest,
    SendUpstream,
    SystemIds,
)


def serve(listen: Endpoint, upstream: Endpoint, *, run_for: float | None = None) -> MidRegistrar:
    """Run a contact-throttling mid-registrar on ``listen`` (UDP) in front of ``upstream``."""
    config = Config(mode=Mode.CONTACT_THROTTLING, local=(listen,), upstream=upstream,
                    outgoing_expires=3600, min_expires=10)
    core = MidRegistrar(config, ids=SystemIds())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen.host, listen.port))
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    deadline: float | None = None  # when the core wants handle_timer() (the latest ArmTimer)

    def execute(actions: list[Action]) -> None:
        nonlocal deadline
        for action in actions:
            match action:
                case SendUpstream(data=data, dest=dest) | Reply(data=data, dest=dest):
                    sock.sendto(data, (dest.host, dest.port))
                case SendRequest(data=data, dest=dest):
                    sock.sendto(data, (dest.host, dest.port))
                case Fork(branches=branches):
                    for branch in branches:
                        sock.sendto(branch.data, (branch.dest.host, branch.dest.port))
                case ArmTimer(at=at):
                    deadline = at
                case Drop(reason=reason, detail=detail):
                    print(f"dropped ({reason}): {detail}", file=sys.stderr)
                case _:
                    assert_never(action)

    stop_at = None if run_for is None else time.monotonic() + run_for
    try:
        while stop_at is None or time.monotonic() < stop_at:
            now = time.monotonic()
            wake = [t for t in (deadline, stop_at) if t is not None]
            timeout = max(0.0, min(wake) - now) if wake else None
            for _ in selector.select(timeout):
                while True:
                    try:
                        data, (host, port) = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    source = Endpoint(host=host, port=port)
                    execute(core.receive(data, source, time.monotonic()))
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                execute(core.handle_timer(now))
    finally:
        selector.close()
        sock.close()
    return core


if __name__ == "__main__":
    serve(Endpoint(host="127.0.0.1", port=5060), Endpoint(host="127.0.0.1", port=5080))
