# The command line (`sansmidreg conformance ...` = sansmidreg.conformance.cli_main, also
# `python -m sansmidreg.conformance`): run over files and folders, -k, --strict, --junit, --seed,
# --deviations, exit statuses, failure reports, and import of a capture.
from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from sansmidreg.conformance import cli_main, load_trace

ROOT = Path(__file__).resolve().parents[2] / "conformance"
TRACES = ROOT / "traces"
ORACLE = ROOT / "oracle" / "traces"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli_main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_run_a_folder_passes() -> None:
    status, out, _ = run("run", str(TRACES))
    lines = out.splitlines()
    count = len(list(TRACES.glob("*.txt")))
    assert status == 0
    assert sum(1 for line in lines if line.startswith("PASS ")) == count
    assert lines[-1] == f"{count} passed, 0 failed"


def test_k_selects_and_strict_compares_bytes() -> None:
    status, out, _ = run("run", str(TRACES), "-k", "ctthrottle-re", "-k", "mirror-e*", "--strict")
    assert status == 0
    names = [line.split()[1].rstrip(":") for line in out.splitlines()[:-1]]
    assert names == ["ctthrottle-refresh", "mirror-expire"]
    assert all(line.endswith("(strict)") for line in out.splitlines()[:-1])


def test_strict_leaves_traces_without_a_seed_semantic() -> None:
    status, out, _ = run("run", str(ORACLE / "refresh-mirror.txt"), "--strict")
    assert status == 0 and "(semantic)" in out


def test_oracle_folder_uses_the_deviation_file_and_skips_baselines() -> None:
    status, out, _ = run("run", str(ORACLE), "-v")
    assert status == 0
    assert "SKIP refresh-direct: no mid-registrar address" in out
    assert "    deviation: skip 26-29: after Contact: * OpenSIPS sends" in out
    assert out.splitlines()[-1].endswith("4 skipped (5 documented deviations)")


def test_a_failing_trace_exits_1_with_a_report(tmp_path: Path) -> None:
    text = (TRACES / "ctthrottle-refresh.txt").read_text()
    broken = tmp_path / "broken.txt"
    broken.write_text(text.replace("Max-Forwards: 69", "Max-Forwards: 42", 1))
    status, out, _ = run("run", str(broken), str(TRACES / "mirror-refresh.txt"))
    assert status == 1
    line = load_trace(broken).blocks[1].line
    assert f"FAIL broken: block 2 (line {line}, @0.000): Max-Forwards differs" in out
    assert "    -Max-Forwards: 42" in out and "    +Max-Forwards: 69" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_seed_option(tmp_path: Path) -> None:
    assert run("run", str(TRACES / "mirror-refresh.txt"), "--seed", "3")[0] == 0
    assert run("run", str(TRACES / "mirror-refresh.txt"), "--seed", "3", "--strict")[0] == 1
    # a trace without '# seed:' (e.g. from `sansmidreg serve --record F --seed N`): --seed N
    # makes --strict compare bytes
    text = (TRACES / "mirror-refresh.txt").read_text(encoding="utf-8")
    unseeded = tmp_path / "unseeded.txt"
    unseeded.write_text(text.replace("# seed: 20240611\n", ""), encoding="utf-8")
    status, out, _ = run("run", str(unseeded), "--strict")
    assert status == 0 and out.startswith("PASS unseeded:") and "(semantic)" in out
    status, out, _ = run("run", str(unseeded), "--strict", "--seed", "20240611")
    assert status == 0 and "(strict)" in out
    assert run("run", str(unseeded), "--strict", "--seed", "1")[0] == 1


def test_explicit_deviation_file(tmp_path: Path) -> None:
    empty = tmp_path / "none.toml"
    empty.write_text("")
    status, out, _ = run("run", str(ORACLE / "star-ctthrottle.txt"), "--deviations", str(empty))
    assert status == 1 and "FAIL star-ctthrottle: block 10" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[traces."star-ctthrottle"]\nexpected-deviations = ["sometimes 3: eh"]\n')
    status, _, err = run("run", str(ORACLE / "star-ctthrottle.txt"), "--deviations", str(bad))
    assert status == 2 and "write 'skip|differ|extra BLOCKS: reason'" in err


def test_junit_report(tmp_path: Path) -> None:
    text = (TRACES / "mirror-refresh.txt").read_text()
    (tmp_path / "bad.txt").write_text(text.replace("Max-Forwards: 69", "Max-Forwards: 1", 1))
    junit = tmp_path / "report.xml"
    status, _, _ = run("run", str(tmp_path / "bad.txt"), str(ORACLE / "star-ctthrottle.txt"),
                       str(ORACLE / "star-direct.txt"), "--junit", str(junit))
    assert status == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["bad"].find("failure")
    assert failure is not None and "Max-Forwards differs" in (failure.get("message") or "")
    assert cases["star-direct"].find("skipped") is not None
    out = cases["star-ctthrottle"].find("system-out")
    assert out is not None and "deviation: differ 10" in (out.text or "")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    status, _, err = run("run", str(tmp_path / "nothing-here"))
    assert status == 2 and "no such file or folder" in err
    status, _, err = run("run", str(TRACES), "-k", "no-such-trace")
    assert status == 2 and "no trace matched" in err
    assert run("frobnicate")[0] == 2
    assert run("run")[0] == 2


def test_unreadable_trace_is_a_failure(tmp_path: Path) -> None:
    bad = tmp_path / "garbled.txt"
    bad.write_text("# sansmidreg-trace 1\n@zero 1.2.3.4:5 -> 6.7.8.9:10\nOPTIONS x SIP/2.0\n")
    status, out, _ = run("run", str(bad))
    assert status == 1 and "FAIL garbled: cannot load the trace:" in out


def test_import_a_capture(tmp_path: Path) -> None:
    target = tmp_path / "refresh.txt"
    status, out, _ = run("import", str(ORACLE / "refresh-ctthrottle.pcap"),
                         "--mid", "udp:127.0.0.1:5060", "--upstream", "127.0.0.1:5080",
                         "--title", "imported", "--config", "mode=contact-throttling",
                         "--config", "outgoing_expires=600", "--config", "min_expires=5",
                         "--config", "compat=opensips", "-o", str(target))
    assert status == 0 and out.startswith(f"{target}: 12 messages, 6 expectations")
    imported = load_trace(target)
    original = load_trace(ORACLE / "refresh-ctthrottle.txt")
    assert [b.data for b in imported.blocks] == [b.data for b in original.blocks]
    status, out, _ = run("run", str(target))
    assert status == 0 and out.startswith("PASS refresh: 6 messages matched")
    status, _, err = run("import", str(target), "--mid", "127.0.0.1:5060")
    assert status == 2 and "error" in err


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "sansmidreg.conformance", "run",
                           str(TRACES / "mirror-refresh.txt")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PASS mirror-refresh: ")
