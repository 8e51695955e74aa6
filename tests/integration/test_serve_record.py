"""`sansmidreg serve --record FILE --seed N` between SIPp and Kamailio writes a conformance trace
that `sansmidreg conformance run --strict` replays byte for byte against a fresh core: the
recorder (adapters) and the replay engine (conformance) agree, over UDP and over TCP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._harness import Kamailio, SippBackground, SippProcess, free_port
from ._serve import ServePool, serve  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("backend", "mode", "transport"), [
    ("sockets", "contact-throttling", "udp"),
    ("trio", "aor-throttling", "tcp"),
])
def test_recorded_run_replays_strictly(kamailio: Kamailio, serve: ServePool, tmp_path: Path,
                                       sipp_background: SippBackground, backend: str,
                                       mode: str, transport: str) -> None:
    trace = tmp_path / f"recorded-{backend}.txt"
    us = serve.start(f"{transport}:{kamailio.remote}", mode=mode, backend=backend,
                     extra_args=["--outgoing-expires", "600", "--record", str(trace)])
    sipp = SippProcess("reg_refresh_unreg_tcp", us.remote, free_port(),
                       {"user": "rita", "expires": "30"}, workdir=sipp_background.workdir,
                       pause_ms=200, transport="t1" if transport == "tcp" else "u1")
    sipp_background.procs.append(sipp)
    sipp.start(wait_bound=False)
    sipp.wait(timeout=15).check()
    assert us.stop() == 0  # SIGTERM: the trace is complete and closed

    text = trace.read_text()
    assert "# seed: 7" in text and f"# config: mode={mode}" in text
    assert text.count("\n@") + text.startswith("@") >= 10  # 4 REGISTERs, answers, relays
    replay = subprocess.run(
        [sys.executable, "-m", "sansmidreg_adapters.cli", "conformance", "run", "--strict",
         str(trace)], capture_output=True, text=True, timeout=60, check=False)
    assert replay.returncode == 0, replay.stdout + replay.stderr + text
    assert "1 passed, 0 failed" in replay.stdout
