# sansmidreg.conformance: recorded SIP traces and their replay against the core (issue 6).
#
# The trace format (_trace.py), the capture importer (_pcap.py), the semantic matcher
# (_match.py), documented expected deviations (_deviations.py), the replay engine (_replay.py)
# and the command line (`sansmidreg conformance ...`, _cli.py).
from ._cli import cli_main
from ._deviations import (
    Deviation,
    DeviationError,
    find_deviation_file,
    load_deviation_file,
    parse_deviation,
)
from ._match import Captures, Difference, InputLog, compare_bytes, compare_messages
from ._pcap import PcapError, PcapPacket, import_pcap, read_pcap_packets
from ._replay import (
    CoreFactory,
    CoreLike,
    Emission,
    Failure,
    TraceResult,
    build_config,
    replay_trace,
    trace_deviations,
    trace_seed,
)
from ._trace import (
    Trace,
    TraceAddress,
    TraceBlock,
    TraceFormatError,
    TraceWriter,
    format_trace,
    is_representable,
    load_trace,
    parse_trace,
    save_trace,
    wire_bytes_from_text,
)

__all__ = [
    "Captures",
    "CoreFactory",
    "CoreLike",
    "Deviation",
    "DeviationError",
    "Difference",
    "Emission",
    "Failure",
    "InputLog",
    "PcapError",
    "PcapPacket",
    "Trace",
    "TraceAddress",
    "TraceBlock",
    "TraceFormatError",
    "TraceResult",
    "TraceWriter",
    "build_config",
    "cli_main",
    "compare_bytes",
    "compare_messages",
    "find_deviation_file",
    "format_trace",
    "import_pcap",
    "is_representable",
    "load_deviation_file",
    "load_trace",
    "parse_deviation",
    "parse_trace",
    "read_pcap_packets",
    "replay_trace",
    "save_trace",
    "trace_deviations",
    "trace_seed",
    "wire_bytes_from_text",
]
