"""Real Kamailio and SIPp processes for the integration tests, on 127.0.0.1 only.

The one import point for tests (``from ._harness import ...``); the code lives in ``_procs.py``
(tools, ports, process control), ``_kamailio.py`` (the main registrar and its location table) and
``_sipp.py`` (SIPp phones). The fixtures are in ``conftest.py``.

Invariants:

* Every address is 127.0.0.1; nothing here sends to or listens on another address (SIPp's media
  and control sockets are pinned to loopback with ``-mi`` / ``-ci``).
* Every subprocess is bounded by a timeout, and every process started here is stopped by its PID
  (and its process group, which it leads): never by name.
* Nothing here decides skip or fail on a missing tool: ``conftest.py`` does (fail when ``CI`` is
  set, skip otherwise).
"""

from __future__ import annotations

from ._kamailio import (
    Kamailio,
    KamailioPool,
    KamcmdError,
    KamcmdTree,
    UlContact,
    UlRecord,
    parse_kamcmd_tree,
    parse_ul_dump,
)
from ._procs import (
    INTEROP_DIR,
    KAMAILIO_CFG,
    LOOPBACK,
    REPO_ROOT,
    SCENARIOS_DIR,
    HarnessError,
    find_tool,
    ephemeral_range,
    free_port,
    free_udp_port,
    in_ci,
    missing_tools,
    wait_udp_bound,
    wait_until,
)
from ._sipp import (
    SippBackground,
    SippProcess,
    SippResult,
    run_sipp,
    scenario_path,
    start_sipp,
)

__all__ = [
    "INTEROP_DIR",
    "KAMAILIO_CFG",
    "LOOPBACK",
    "REPO_ROOT",
    "SCENARIOS_DIR",
    "HarnessError",
    "Kamailio",
    "KamailioPool",
    "KamcmdError",
    "KamcmdTree",
    "SippBackground",
    "SippProcess",
    "SippResult",
    "UlContact",
    "UlRecord",
    "find_tool",
    "ephemeral_range",
    "free_port",
    "free_udp_port",
    "in_ci",
    "missing_tools",
    "parse_kamcmd_tree",
    "parse_ul_dump",
    "run_sipp",
    "scenario_path",
    "start_sipp",
    "wait_udp_bound",
    "wait_until",
]
