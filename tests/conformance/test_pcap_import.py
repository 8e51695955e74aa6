# Tests of the capture importer (sansmidreg.conformance._pcap): it rebuilds every oracle .txt from
# its .pcap, and reads hand-built pcap/pcapng captures (link types, IPv6, fragments, TCP streams
# out of order); malformed input raises PcapError and nothing else.
from __future__ import annotations

import contextlib
import ipaddress
import itertools
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansmidreg.conformance._pcap import PcapError, import_pcap, read_pcap_packets
from sansmidreg.conformance._trace import TraceAddress, format_trace, load_trace, parse_trace

ORACLE = Path(__file__).resolve().parents[2] / "conformance" / "oracle" / "traces"
ORACLE_TRACES = sorted(ORACLE.glob("*.txt"))

MID = TraceAddress.parse("udp:127.0.0.1:5060")
UP = TraceAddress.parse("udp:127.0.0.1:5080")
OPTIONS = b"OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nCall-ID: a\r\nContent-Length: 0\r\n\r\n"
OK = b"SIP/2.0 200 OK\r\nCall-ID: a\r\nContent-Length: 0\r\n\r\n"
BODY = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
INVITE = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nl: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY

# --- the oracle corpus --------------------------------------------------------------------------


def test_every_oracle_trace_has_its_capture() -> None:
    assert len(ORACLE_TRACES) == 15
    assert sorted(p.stem for p in ORACLE.glob("*.pcap")) == [p.stem for p in ORACLE_TRACES]


@pytest.mark.parametrize("path", ORACLE_TRACES, ids=lambda p: p.stem)
def test_import_reproduces_the_oracle_trace(path: Path) -> None:
    expected = load_trace(path)
    trace = import_pcap(
        path.with_suffix(".pcap").read_bytes(),
        mid=expected.mid,
        upstream=expected.upstream,
        title=expected.title,
        config=expected.config,
    )
    assert len(trace.blocks) == len(expected.blocks)
    for got, want in zip(trace.blocks, expected.blocks, strict=True):
        assert (got.index, got.src, got.dst) == (want.index, want.src, want.dst)
        assert got.data == want.data, want.line
        assert abs(got.time - want.time) <= 0.001, want.line
        assert trace.is_expectation(got) == expected.is_expectation(want)
    assert (trace.mid, trace.upstream, trace.config) == (
        expected.mid,
        expected.upstream,
        expected.config,
    )
    assert parse_trace(format_trace(trace)) == trace


# --- building captures by hand -----------------------------------------------------------------


def _ip4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0, frag: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        frag,
        64,
        proto,
        0,
        bytes(map(int, src.split("."))),
        bytes(map(int, dst.split("."))),
    )
    return header + payload


def _ip6(src: str, dst: str, nxt: int, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), nxt, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _tcp(sport: int, dport: int, seq: int, payload: bytes = b"", flags: int = 0x18) -> bytes:
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq % 2**32, 0, 5 << 4, flags, 65535, 0, 0)
        + payload
    )


def _ether(ethertype: int, payload: bytes, vlans: Sequence[int] = ()) -> bytes:
    tags = b"".join(struct.pack("!HH", tpid, 7) for tpid in vlans)
    # trailing padding/FCS must be ignored
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack("!H", ethertype) + payload + b"\x00" * 4


def _pcap(
    linktype: int, frames: Sequence[tuple[int, bytes]], order: str = "<", nano: bool = False
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for t_ns, frame in frames:
        sec, frac = divmod(t_ns, 10**9)
        out += struct.pack(
            order + "IIII", sec, frac if nano else frac // 1000, len(frame), len(frame)
        )
        out += frame
    return out


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def _pcapng(
    interfaces: Sequence[tuple[int, int | None]],
    packets: Sequence[tuple[int, int, bytes]],
    order: str = "<",
    simple: bool = False,
) -> bytes:
    """interfaces: (linktype, if_tsresol byte or None); packets: (interface, ticks, frame)."""
    out = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, tsresol in interfaces:
        options = b""
        if tsresol is not None:
            options = struct.pack(order + "HH", 9, 1) + bytes([tsresol, 0, 0, 0])
        options += struct.pack(order + "HH", 0, 0)
        out += _block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + options)
    out += _block(order, 5, struct.pack(order + "III", 0, 0, 0))  # a statistics block: skipped
    for ifid, ticks, frame in packets:
        if simple:
            out += _block(order, 3, struct.pack(order + "I", len(frame)) + frame)
        else:
            out += _block(
                order,
                6,
                struct.pack(
                    order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)
                )
                + frame,
            )
    return out


def _udp4(payload: bytes, sport: int = 5251, dport: int = 5060) -> bytes:
    return _ip4("127.0.0.1", "127.0.0.1", 17, _udp(sport, dport, payload))


# --- link types and file formats ----------------------------------------------------------------


def test_ethernet_classic_pcap() -> None:
    frames = [
        (1_700_000_000_000_000_000, _ether(0x0800, _udp4(OPTIONS))),
        (1_700_000_000_004_499_000, _ether(0x0800, _udp4(OK, 5060, 5251))),
        (1_700_000_000_004_500_000, _ether(0x0800, _udp4(b"\r\n\r\n"))),  # keep-alive
        (1_700_000_000_004_500_000, _ether(0x0800, _udp4(b"not sip at all"))),
        (1_700_000_001_234_500_000, _ether(0x0806, b"\x00" * 28)),  # ARP
        (1_700_000_002_000_500_000, _ether(0x0800, _udp4(OPTIONS))),
    ]
    trace = import_pcap(_pcap(1, frames), mid=[MID], upstream=UP, config={"mode": "mirror"})
    assert [b.time for b in trace.blocks] == [0.0, 0.004, 2.001]
    assert [b.data for b in trace.blocks] == [OPTIONS, OK, OPTIONS]
    assert [str(b.src) for b in trace.blocks] == [
        "127.0.0.1:5251",
        "127.0.0.1:5060",
        "127.0.0.1:5251",
    ]
    assert [trace.is_expectation(b) for b in trace.blocks] == [False, True, False]
    assert trace.config_dict() == {"mode": "mirror"}
    assert len(read_pcap_packets(_pcap(1, frames))) == 5


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_byte_orders_and_resolutions(order: str, nano: bool) -> None:
    frames = [
        (5_000_000_000, _ether(0x0800, _udp4(OPTIONS))),
        (6_234_567_891, _ether(0x0800, _udp4(OK, 5060, 5251))),
    ]
    trace = import_pcap(_pcap(1, frames, order, nano), mid=[MID], upstream=None)
    assert [b.time for b in trace.blocks] == [0.0, 1.235]
    packets = read_pcap_packets(_pcap(1, frames, order, nano))
    assert packets[1].time_ns == (6_234_567_891 if nano else 6_234_567_000)


def test_vlan_tags() -> None:
    frames = [
        (0, _ether(0x0800, _udp4(OPTIONS), vlans=[0x8100])),
        (1_000_000, _ether(0x86DD, _ip6("::1", "::2", 17, _udp(1, 2, OK)), vlans=[0x88A8, 0x8100])),
    ]
    trace = import_pcap(_pcap(1, frames), mid=[], upstream=None)
    assert [b.data for b in trace.blocks] == [OPTIONS, OK]
    assert str(trace.blocks[1].src) == "[::1]:1"


def test_linux_cooked_captures() -> None:
    sll = struct.pack("!HHH8sH", 0, 772, 6, b"\x00" * 8, 0x0800) + _udp4(OPTIONS)
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 1, 772, 0, 6, b"\x00" * 8) + _ip6(
        "2001:db8::1", "2001:db8::2", 17, _udp(5060, 5080, OK)
    )
    assert import_pcap(_pcap(113, [(0, sll)]), mid=[], upstream=None).blocks[0].data == OPTIONS
    block = import_pcap(_pcap(276, [(0, sll2)]), mid=[], upstream=None).blocks[0]
    assert (block.data, str(block.src), str(block.dst)) == (
        OK,
        "[2001:db8::1]:5060",
        "[2001:db8::2]:5080",
    )


@pytest.mark.parametrize(("family", "order"), [(2, "<"), (2, ">"), (30, "<"), (10, "<"), (28, ">")])
def test_bsd_loopback(family: int, order: str) -> None:
    ip = _udp4(OPTIONS) if family == 2 else _ip6("::1", "::1", 17, _udp(5251, 5060, OPTIONS))
    trace = import_pcap(
        _pcap(0, [(0, struct.pack(order + "I", family) + ip)]), mid=[MID], upstream=None
    )
    assert [b.data for b in trace.blocks] == [OPTIONS]
    assert trace.blocks[0].dst.port == 5060


@pytest.mark.parametrize("linktype", [101, 228, 229])
def test_raw_ip(linktype: int) -> None:
    ip = _ip6("::1", "::1", 17, _udp(1, 2, OK)) if linktype == 229 else _udp4(OK)
    assert [
        b.data for b in import_pcap(_pcap(linktype, [(0, ip)]), mid=[], upstream=None).blocks
    ] == [OK]


def test_ipv6_extension_headers_and_fragments() -> None:
    hop_by_hop = bytes([17, 0]) + b"\x00" * 6
    datagram = _udp(5251, 5060, INVITE)
    first, second = datagram[:48], datagram[48:]
    frag1 = bytes([17, 0]) + struct.pack("!H", 0 | 1) + struct.pack("!I", 99) + first
    frag2 = bytes([17, 0]) + struct.pack("!H", 48) + struct.pack("!I", 99) + second
    frames = [
        (0, _ip6("::1", "::1", 0, hop_by_hop + _udp(5251, 5060, OPTIONS))),
        (1_000_000, _ip6("fe80::1", "::1", 44, frag2)),  # out of order
        (2_000_000, _ip6("fe80::1", "::1", 44, frag1)),
    ]
    trace = import_pcap(_pcap(229, frames), mid=[], upstream=None)
    assert [b.data for b in trace.blocks] == [OPTIONS, INVITE]
    assert (trace.blocks[1].time, str(trace.blocks[1].src)) == (0.002, "[fe80::1]:5251")


def test_ipv4_fragments_reassembled() -> None:
    datagram = _udp(5251, 5060, INVITE)
    parts = [datagram[:40], datagram[40:80], datagram[80:]]
    frames = [
        (0, _ether(0x0800, _ip4("10.0.0.1", "10.0.0.2", 17, parts[2], ident=7, frag=10))),
        (1, _ether(0x0800, _ip4("10.0.0.1", "10.0.0.2", 17, parts[0], ident=7, frag=0x2000))),
        (2, _ether(0x0800, _ip4("10.0.0.1", "10.0.0.2", 17, parts[1], ident=7, frag=0x2000 | 5))),
        (3, _ether(0x0800, _ip4("10.0.0.1", "10.0.0.2", 17, parts[1][:8], ident=8, frag=0x2000))),
    ]
    trace = import_pcap(_pcap(1, frames), mid=[], upstream=None)
    assert [b.data for b in trace.blocks] == [INVITE]
    assert str(trace.blocks[0].dst) == "10.0.0.2:5060"


def test_pcapng_little_and_big_endian_with_resolutions() -> None:
    frame = _ether(0x0800, _udp4(OPTIONS))
    for order in "<>":
        data = _pcapng(
            [(1, None), (113, 9), (1, 0x80 | 10)],
            [
                (0, 5_000_000, frame),
                (
                    1,
                    5_004_000_000,
                    struct.pack("!HHH8sH", 0, 1, 6, b"\x00" * 8, 0x0800) + _udp4(OK),
                ),
                (2, 5 * 1024 + 512, frame),
            ],
            order,
        )
        trace = import_pcap(data, mid=[MID], upstream=None)
        assert [b.data for b in trace.blocks] == [OPTIONS, OK, OPTIONS]
        assert [b.time for b in trace.blocks] == [0.0, 0.004, 0.5]


def test_pcapng_simple_packet_blocks() -> None:
    frame = _ether(0x0800, _udp4(OPTIONS))
    trace = import_pcap(
        _pcapng([(1, None)], [(0, 0, frame), (0, 0, frame)], simple=True), mid=[], upstream=None
    )
    assert [b.data for b in trace.blocks] == [OPTIONS, OPTIONS]


# --- TCP streams ---------------------------------------------------------------------------------


def _tcp_frames(
    segments: Sequence[tuple[int, int, bytes, int]], sport: int = 40000, dport: int = 5060
) -> list[tuple[int, bytes]]:
    """segments: (time in ms, sequence number, payload, flags) from client to server."""
    return [
        (
            ms * 1_000_000,
            _ether(
                0x0800, _ip4("127.0.0.1", "127.0.0.1", 6, _tcp(sport, dport, seq, payload, flags))
            ),
        )
        for ms, seq, payload, flags in segments
    ]


def test_tcp_stream_out_of_order_and_retransmitted() -> None:
    stream = b"\r\n\r\n" + OPTIONS + INVITE + b"\r\n" + OK
    isn = 2**32 - 30  # sequence numbers wrap around inside the stream
    cuts = [0, 10, 50, 90, 130, len(stream)]
    pieces = [(isn + 1 + a, stream[a:b]) for a, b in itertools.pairwise(cuts)]
    segments = [
        (0, isn, b"", 0x02),  # SYN
        (1, pieces[0][0], pieces[0][1], 0x18),
        (2, pieces[2][0], pieces[2][1], 0x18),  # out of order
        (3, pieces[1][0], pieces[1][1], 0x18),  # fills the hole: OPTIONS complete
        (4, pieces[1][0], pieces[1][1] + pieces[2][1][:5], 0x18),  # retransmission
        (5, pieces[4][0], pieces[4][1], 0x18),
        (6, pieces[3][0], pieces[3][1], 0x18),  # INVITE and OK complete
        (7, isn + 1 + len(stream), b"", 0x11),
    ]  # FIN
    udp = (8_000_000, _ether(0x0800, _udp4(OK, 5060, 5251)))
    trace = import_pcap(_pcap(1, [*_tcp_frames(segments), udp]), mid=[MID], upstream=None)
    assert [b.data for b in trace.blocks] == [OPTIONS, INVITE, OK, OK]
    assert [b.time for b in trace.blocks] == [0.0, 0.003, 0.003, 0.005]
    assert [str(b.src) for b in trace.blocks] == ["tcp:127.0.0.1:40000"] * 3 + ["127.0.0.1:5060"]
    assert str(trace.blocks[0].dst) == "tcp:127.0.0.1:5060"
    assert [trace.is_expectation(b) for b in trace.blocks] == [False, False, False, True]
    assert parse_trace(format_trace(trace)) == trace


def test_tcp_without_syn_and_with_a_lost_segment() -> None:
    first, second = OPTIONS + INVITE[:20], INVITE[20:] + OK
    segments = [
        (0, 1000, first, 0x18),
        (1, 1000 + len(first) + len(second), OPTIONS, 0x18),  # after a segment never seen
        (2, 5000, b"garbage line\r\n" + OK, 0x18),
    ]
    trace = import_pcap(_pcap(1, _tcp_frames(segments)), mid=[], upstream=None)
    assert [b.data for b in trace.blocks] == [OPTIONS, OPTIONS, OK]
    assert [b.time for b in trace.blocks] == [0.0, 0.002, 0.002]


def test_tcp_garbage_is_skipped_until_a_start_line() -> None:
    segments = [(0, 0, b"", 0x02), (1, 1, b"\x16\x03\x01 binary\r\nmore junk\n" + OK, 0x18)]
    trace = import_pcap(_pcap(1, _tcp_frames(segments)), mid=[], upstream=None)
    assert [b.data for b in trace.blocks] == [OK]


# --- malformed input ------------------------------------------------------------------------------

_GOOD = _pcap(1, [(0, _ether(0x0800, _udp4(OPTIONS))), (1000, _ether(0x0800, _udp4(OK)))])
_GOOD_NG = _pcapng([(1, None)], [(0, 1, _ether(0x0800, _udp4(OPTIONS)))])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xd4\xc3\xb2\xa1\x02\x00",  # truncated file header
        _GOOD[:-5],  # truncated packet
        _GOOD[:30],  # truncated record header
        _pcap(105, []),  # 802.11: not supported
        _GOOD_NG[:-4],
        _GOOD_NG[:8] + b"\x00\x00\x00\x00" + _GOOD_NG[12:],  # bad byte-order magic
        _pcapng([(1, None)], [(3, 0, b"x")]),  # unknown interface
        _GOOD_NG[:4] + struct.pack("<I", 13) + _GOOD_NG[8:],  # bad block length
    ],
)
def test_malformed_captures_raise_pcap_error(data: bytes) -> None:
    with pytest.raises(PcapError):
        import_pcap(data, mid=[], upstream=None)


def test_empty_capture_gives_an_empty_trace() -> None:
    trace = import_pcap(_pcap(1, []), mid=[MID], upstream=UP, title="nothing")
    assert (trace.blocks, trace.title) == ((), "nothing")


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_damaged_captures_raise_only_pcap_error(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from([_GOOD, _GOOD_NG]))
    cut = data.draw(st.integers(0, len(base)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=4)
    )
    damaged = bytearray(base[:cut] + data.draw(st.binary(max_size=40)) + base[cut:])
    for pos, value in flips:
        if pos < len(damaged):
            damaged[pos] = value
    with contextlib.suppress(PcapError):
        import_pcap(bytes(damaged), mid=[MID], upstream=None)


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_random_bytes_raise_only_pcap_error(data: bytes) -> None:
    with contextlib.suppress(PcapError):
        read_pcap_packets(b"\xd4\xc3\xb2\xa1" + data)
