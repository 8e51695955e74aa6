# Shared helpers for the benchmark scripts (DESIGN.md §7): a median-of-N-runs rate measurement,
# the pure-Python reference every benchmark compares against (h11 parsing an HTTP/1.1 request
# equivalent to a typical REGISTER: same header lines, HTTP start line and Host), and `key: value`
# output. Numbers on shared machines are noisy: report medians and ratios, never one run.
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["HTTP_REQUEST", "emit", "h11_request_parse_per_s", "rate"]

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


def rate(fn: Callable[[], object], *, runs: int = 7, run_time: float = 0.15) -> float:
    """Calls of ``fn`` per second: the median of ``runs`` runs of about ``run_time`` s each."""
    n = 1
    while True:  # calibrate the batch size
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= run_time / 4:
            break
        n *= 4
    n = max(1, int(n * run_time / elapsed))
    results = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        results.append(n / (time.perf_counter() - t0))
    return statistics.median(results)


def h11_request_parse_per_s(*, runs: int = 7, run_time: float = 0.15) -> float:
    """h11's request parse rate: a new ``h11.Connection(h11.SERVER)``, ``receive_data`` and
    ``next_event()`` per request (median of ``runs``)."""
    import h11

    data = HTTP_REQUEST

    def parse() -> object:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        event = conn.next_event()
        assert isinstance(event, h11.Request)
        return event

    return rate(parse, runs=runs, run_time=run_time)


def emit(key: str, value: float | int | str) -> None:
    """Print one result line, ``key: value`` (floats with 3 significant decimals or rounded)."""
    if isinstance(value, float):
        text = f"{value:.0f}" if value >= 100 else f"{value:.3f}"
    else:
        text = str(value)
    print(f"{key}: {text}", flush=True)
