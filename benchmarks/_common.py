# Shared helpers for the benchmark scripts (DESIGN.md §7): a median-of-N-runs rate measurement
# (process CPU time; several functions measured in interleaved runs so their ratios survive load
# changes), the pure-Python reference every benchmark compares against (h11 parsing an HTTP/1.1
# request equivalent to a typical REGISTER: same header lines, HTTP start line and Host), and
# `key: value` output. Numbers on shared machines are noisy: report medians and ratios.
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

__all__ = ["HTTP_REQUEST", "emit", "h11_request_parse", "h11_request_parse_per_s", "rate", "rates"]

_clock = time.process_time
"""CPU time of this process: other load on a shared machine does not count against us."""

HTTP_REQUEST = (
    b"POST /example.test HTTP/1.1\r\n"
    b"Host: example.test\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.test>;tag=31595SIPpTag001\r\n"
    b"To: <sip:alice@example.test>\r\n"
    b"Call-ID: 1-31595@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.1:5201>\r\n"
    b"Expires: 60\r\n"
    b"User-Agent: sipp-ua-5201\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
"""The HTTP/1.1 request equivalent to the REGISTER of benchmarks/bench_parse.py."""


def _batch_size(fn: Callable[[], object], run_time: float) -> int:
    n = 1
    while True:
        t0 = _clock()
        for _ in range(n):
            fn()
        elapsed = _clock() - t0
        if elapsed >= run_time / 4:
            return max(1, int(n * run_time / elapsed))
        n *= 4


def rates(fns: Mapping[str, Callable[[], object]], *, runs: int = 7,
          run_time: float = 0.15) -> dict[str, float]:
    """Calls per second of each function: the median of ``runs`` runs of about ``run_time`` s.
    The runs are interleaved (one run of each function in turn), so that a change in machine
    load affects every figure alike and their ratios stay meaningful."""
    sizes = {name: _batch_size(fn, run_time) for name, fn in fns.items()}
    results: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            n = sizes[name]
            t0 = _clock()
            for _ in range(n):
                fn()
            results[name].append(n / (_clock() - t0))
    return {name: statistics.median(values) for name, values in results.items()}


def rate(fn: Callable[[], object], *, runs: int = 7, run_time: float = 0.15) -> float:
    """Calls of ``fn`` per second: the median of ``runs`` runs of about ``run_time`` s each."""
    return rates({"fn": fn}, runs=runs, run_time=run_time)["fn"]


def h11_request_parse() -> Callable[[], object]:
    """The reference operation: a new ``h11.Connection(h11.SERVER)``, ``receive_data`` and
    ``next_event()`` for HTTP_REQUEST (to put into a ``rates`` run)."""
    import h11

    data = HTTP_REQUEST

    def parse() -> object:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        event = conn.next_event()
        assert isinstance(event, h11.Request)
        return event

    return parse


def h11_request_parse_per_s(*, runs: int = 7, run_time: float = 0.15) -> float:
    """h11's request parse rate: a new ``h11.Connection(h11.SERVER)``, ``receive_data`` and
    ``next_event()`` per request (median of ``runs``)."""
    return rate(h11_request_parse(), runs=runs, run_time=run_time)


def emit(key: str, value: float | str) -> None:
    """Print one result line, ``key: value`` (floats with 3 significant decimals or rounded)."""
    if isinstance(value, float):
        text = f"{value:.0f}" if value >= 100 else f"{value:.3f}"
    else:
        text = str(value)
    print(f"{key}: {text}", flush=True)
