# OpenSIPS agreement (issue 6 §4): every OpenSIPS 3.6.8 trace of conformance/oracle/ replays
# against our core with the config of its header, passing or differing only where
# conformance/deviations.toml documents a deliberate deviation; no documented deviation is stale;
# the agreement table of conformance/README.md says exactly what the runner finds.
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sansmidreg.conformance import (
    find_deviation_file,
    load_deviation_file,
    load_trace,
    replay_trace,
)

ROOT = Path(__file__).resolve().parents[2] / "conformance"
ORACLE = sorted((ROOT / "oracle" / "traces").glob("*.txt"))


def _status(path: Path) -> tuple[str, int]:
    found = find_deviation_file(path)
    assert found == ROOT / "deviations.toml"
    devs = load_deviation_file(found).get(path.stem, ())
    result = replay_trace(load_trace(path), deviations=devs, path=str(path))
    assert result.passed, result.report()
    assert not result.deviations_unused, result.deviations_unused
    if result.skipped_reason is not None:
        return "baseline", 0
    return ("deviation" if result.deviations_used else "pass"), len(result.deviations_used)


def test_oracle_corpus_is_there() -> None:
    assert len(ORACLE) >= 15


@pytest.mark.parametrize("path", ORACLE, ids=[p.stem for p in ORACLE])
def test_oracle_trace_agrees(path: Path) -> None:
    _status(path)


def test_every_deviation_names_an_oracle_trace() -> None:
    names = {p.stem for p in ORACLE} | {p.stem for p in (ROOT / "traces").glob("*.txt")}
    for name, devs in load_deviation_file(ROOT / "deviations.toml").items():
        assert name in names, name
        assert devs and all(len(d.reason) > 40 for d in devs), "say why, with a reference"


def test_readme_agreement_table_matches_the_runner() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `([\w-]+)` \| (pass|deviation|baseline|fail)\b", readme, re.MULTILINE))
    for path in ORACLE:
        status, _ = _status(path)
        assert table.get(path.stem) == status, (path.stem, table.get(path.stem), status)
