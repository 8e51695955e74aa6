#!/usr/bin/env python3
"""Record the conformance corpus (conformance/traces/) from real runs.

Each trace: a fresh Kamailio main registrar on udp 127.0.0.1:5080
(``conformance/record/kamailio-record.cfg``: interop/kamailio-main.cfg plus users that are
refused, challenged or never answered), our core on udp 127.0.0.1:5060 inside an in-process UDP
loop that writes every datagram in and out (``recorder.py``, fixed id seed), SIPp phones on
127.0.0.1:52xx (``interop/scenarios`` and ``conformance/record/scenarios``) and, for bad input,
a raw UDP sender. Every recorded trace is replayed at once, semantically and byte for byte; a
trace that does not replay is reported and not kept.

Usage (from the repository root; needs kamailio, kamcmd and sipp, loopback only)::

    python3 conformance/record/record_corpus.py                 # every trace
    python3 conformance/record/record_corpus.py -k ctthrottle   # names containing a pattern
    python3 conformance/record/record_corpus.py --list

Every process started here is stopped by its PID (the integration harness does it).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(HERE)]

from corpus import SPECS, Spec
from phones import MAIN_PORT, MID, Driver
from recorder import Recorder

from sansmidreg import Config, Endpoint
from sansmidreg.conformance import load_trace, replay_trace
from tests.integration._harness import Kamailio

SEED = 20240611
KAMAILIO_CFG = HERE / "kamailio-record.cfg"
OUT = REPO / "conformance" / "traces"


# --------------------------------------------------------------------------------------------


def record(item: Spec, out_dir: Path, workdir: Path) -> tuple[bool, str]:
    pairs = item.pairs()
    config = Config.from_mapping(dict(pairs), local=(Endpoint(host=MID[0], port=MID[1]),),
                                 upstream=Endpoint(host="127.0.0.1", port=MAIN_PORT))
    kam = Kamailio(workdir / "kamailio", port=MAIN_PORT, cfg=KAMAILIO_CFG)
    kam.start()
    buffer = io.StringIO()
    how = ("conformance/record/record_corpus.py: SIPp phones, Kamailio main registrar "
           "(kamailio-record.cfg), our core in recorder.py's UDP loop")
    extra = [("recorded", how)]
    if item.tolerance is not None:
        extra.append(("time-tolerance", repr(item.tolerance)))
    driver = Driver(workdir, kam)
    try:
        rec = Recorder(config, seed=SEED, stream=buffer, title=item.title, config_pairs=pairs,
                       extra_headers=extra).start()
        try:
            item.drive(driver)
            driver.close()
            time.sleep(item.settle)
        except BaseException:
            driver.abort()  # no device left running into the next trace
            raise
        finally:
            rec.stop()
    finally:
        kam.stop()
    path = out_dir / f"{item.name}.txt"
    tmp = workdir / path.name
    tmp.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogateescape", newline="")
    trace = load_trace(tmp)
    problems = []
    for strict in (False, True):
        result = replay_trace(trace, strict=strict, path=str(tmp))
        if not result.passed:
            problems.append(result.report())
    if problems:
        keep = workdir.parent / f"failed-{item.name}.txt"
        shutil.copy(tmp, keep)
        return False, f"{item.name}: does not replay (kept in {keep}):\n" + "\n".join(problems)
    shutil.copy(tmp, path)
    drops = ", ".join(sorted({d.reason for _, d in rec.drops})) or "none"
    return True, f"{item.name}: {len(trace.blocks)} blocks, drops: {drops}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="patterns", action="append", default=[])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    chosen = [s for s in SPECS if not args.patterns or any(p in s.name for p in args.patterns)]
    if args.list:
        for s in chosen:
            print(f"{s.name}: {s.title}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="smr-record-"))
    failed = 0
    for item in chosen:
        workdir = base / item.name
        workdir.mkdir()
        try:
            ok, message = record(item, args.out, workdir)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next trace
            ok, message = False, f"{item.name}: {type(exc).__name__}: {exc}"
        failed += not ok
        print(("ok   " if ok else "FAIL ") + message, flush=True)
    print(f"{len(chosen) - failed} recorded, {failed} failed (work files: {base})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
