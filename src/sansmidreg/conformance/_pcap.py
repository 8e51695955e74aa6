# Capture import: turns a libpcap or pcapng capture into a conformance Trace.
#
# Layers, each a small pure function over bytes: file format (classic pcap in both byte orders
# with micro- or nanosecond stamps, the "modified" Kuznetzov variant, pcapng SHB/IDB/EPB/SPB and
# the obsolete PB) -> link layer (Ethernet with 802.1Q/QinQ tags, Linux SLL/SLL2, BSD null and
# OpenBSD loop, raw IPv4/IPv6) -> IP (IPv4 and IPv6 with extension headers; fragments
# reassembled) -> UDP datagrams and TCP segments (read_pcap_packets). import_pcap then keeps the
# UDP datagrams that look like SIP, reassembles each TCP direction by sequence number (out-of-order
# and retransmitted segments, SYN/FIN/RST, a gap skipped at the end) and frames it by
# Content-Length (RFC 3261 §18.3), dropping CRLF keep-alives (RFC 5626 §3.5.1).
# Times: integer nanoseconds, made relative to the first SIP message and rounded half-up to the
# millisecond, as the oracle .txt files are. A TCP message takes the time of the segment that
# completed it. Malformed file structure raises PcapError; odd packets inside a well-formed file
# are skipped.
from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from ._trace import Trace, TraceAddress, TraceBlock

__all__ = ["PcapError", "PcapPacket", "import_pcap", "read_pcap_packets"]

PacketTransport: TypeAlias = Literal["udp", "tcp"]

_PCAP_MAGICS: Final[Mapping[bytes, tuple[str, int, int]]] = {
    # magic as read from the file -> (struct byte order, ticks per second, record header size)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1_000_000, 24),  # "modified" pcap (Kuznetzov)
    b"\xa1\xb2\xcd\x34": (">", 1_000_000, 24),
}
_PCAPNG_SHB: Final = 0x0A0D0D0A
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_MAX_BLOCK: Final = 1 << 28
_MAX_LINE: Final = 65536

# Ethernet, Linux SLL and SLL2, BSD null, OpenBSD loop, raw IP (any, v4, v6)
_LINKTYPES: Final = frozenset({1, 113, 276, 0, 108, 101, 228, 229})
_ETHERTYPE_IPV4: Final = 0x0800
_ETHERTYPE_IPV6: Final = 0x86DD
_VLAN_TAGS: Final = frozenset({0x8100, 0x88A8, 0x9100})
_AF_INET6: Final = frozenset({10, 24, 28, 30})  # Linux, NetBSD/OpenBSD, FreeBSD, macOS
_IPV6_EXTENSIONS: Final = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options

_SYN: Final = 0x02
_RST: Final = 0x04

# RFC 3261 §7.1 Request-Line / Status-Line prefixes; §20.14 Content-Length (compact form l)
_SIP_START: Final = re.compile(
    rb"(?:[A-Za-z][A-Za-z0-9.!%*_+`'~-]* [^ \r\n]+ SIP/2\.0|SIP/2\.0 [0-9]{3} )"
)
_CONTENT_LENGTH: Final = re.compile(
    rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*([0-9]+)", re.IGNORECASE
)
_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")


class PcapError(ValueError):
    """The capture file is malformed or of a kind this reader does not know."""


@dataclass(frozen=True, slots=True)
class PcapPacket:
    """One UDP datagram or TCP segment of a capture (after IP reassembly), in capture order.

    ``time_ns`` is the capture time in nanoseconds since the epoch; ``tcp_seq``/``tcp_flags``
    are 0 for UDP.
    """

    index: int
    time_ns: int
    transport: PacketTransport
    src: TraceAddress
    dst: TraceAddress
    payload: bytes
    tcp_seq: int = 0
    tcp_flags: int = 0


@dataclass(slots=True)
class _Frame:
    time_ns: int
    linktype: int
    data: bytes


# --- file formats -----------------------------------------------------------------------------


def _unpack(fmt: str, data: bytes, offset: int, what: str) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise PcapError(f"truncated {what} at offset {offset}") from None


def _classic_frames(data: bytes) -> Iterator[_Frame]:
    order, ticks, record = _PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise PcapError("truncated pcap file header")
    linktype = _unpack(order + "I", data, 20, "pcap file header")[0] & 0xFFFF
    if linktype not in _LINKTYPES:
        raise PcapError(f"unsupported link type {linktype}")
    offset = 24
    while offset < len(data):
        sec, frac, caplen, _ = _unpack(order + "IIII", data, offset, "pcap record header")
        offset += record
        if caplen > len(data) - offset:
            raise PcapError(f"packet at offset {offset - record} runs past the end of the file")
        yield _Frame(
            sec * 1_000_000_000 + frac * (1_000_000_000 // ticks),
            linktype,
            data[offset : offset + caplen],
        )
        offset += caplen


@dataclass(slots=True)
class _Interface:
    linktype: int
    den: int = 1_000_000  # a timestamp unit is 1 / den seconds
    offset_s: int = 0


def _idb_interface(body: bytes, order: str) -> _Interface:
    linktype = _unpack(order + "H", body, 0, "interface description block")[0]
    iface = _Interface(linktype)
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if len(value) < length:
            raise PcapError("truncated option in interface description block")
        if code == 0:
            break
        if code == 9 and length >= 1:  # if_tsresol
            exp = value[0] & 0x7F
            if exp > 60:
                raise PcapError(f"unsupported if_tsresol {value[0]:#x}")
            iface.den = 2**exp if value[0] & 0x80 else 10**exp
        elif code == 14 and length >= 8:  # if_tsoffset
            iface.offset_s = struct.unpack_from(order + "q", value)[0]
        pos += 4 + length + (-length % 4)
    return iface


def _pcapng_frames(data: bytes) -> Iterator[_Frame]:
    order = "<"
    interfaces: list[_Interface] = []
    last_ns = 0
    offset = 0
    while offset < len(data):
        if len(data) - offset < 12:
            raise PcapError(f"truncated pcapng block at offset {offset}")
        btype = struct.unpack_from("<I", data, offset)[0]
        if btype == _PCAPNG_SHB:
            bom = data[offset + 8 : offset + 12]
            if bom == struct.pack("<I", _BYTE_ORDER_MAGIC):
                order = "<"
            elif bom == struct.pack(">I", _BYTE_ORDER_MAGIC):
                order = ">"
            else:
                raise PcapError(f"bad pcapng byte-order magic at offset {offset}")
            interfaces = []
        btype, length = struct.unpack_from(order + "II", data, offset)
        if length < 12 or length % 4 or length > len(data) - offset or length > _MAX_BLOCK:
            raise PcapError(f"bad pcapng block length {length} at offset {offset}")
        if struct.unpack_from(order + "I", data, offset + length - 4)[0] != length:
            raise PcapError(f"pcapng block lengths disagree at offset {offset}")
        body = data[offset + 8 : offset + length - 4]
        if btype == 1:
            interfaces.append(_idb_interface(body, order))
        elif btype in (2, 6):  # obsolete packet block, enhanced packet block
            if btype == 6:
                ifid, high, low, caplen = _unpack(order + "IIII", body, 0, "packet block")
            else:
                ifid, _, high, low, caplen = _unpack(order + "HHIII", body, 0, "packet block")
            if ifid >= len(interfaces):
                raise PcapError(f"packet block at offset {offset} names unknown interface {ifid}")
            if caplen > len(body) - 20:
                raise PcapError(f"packet block at offset {offset} is shorter than its packet")
            iface = interfaces[ifid]
            ticks = (high << 32) | low
            last_ns = (iface.offset_s * 1_000_000_000) + ticks * 1_000_000_000 // iface.den
            yield _Frame(last_ns, iface.linktype, body[20 : 20 + caplen])
        elif btype == 3:  # simple packet block: interface 0, no timestamp
            if not interfaces:
                raise PcapError(f"simple packet block at offset {offset} before any interface")
            origlen = _unpack(order + "I", body, 0, "simple packet block")[0]
            yield _Frame(last_ns, interfaces[0].linktype, body[4 : 4 + origlen])
        offset += length


def _frames(data: bytes) -> Iterator[_Frame]:
    if data[:4] in _PCAP_MAGICS:
        return _classic_frames(data)
    if data[:4] == struct.pack("<I", _PCAPNG_SHB):
        return _pcapng_frames(data)
    raise PcapError("not a pcap or pcapng capture (unknown magic number)")


# --- link and network layers ------------------------------------------------------------------


def _link_payload(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(IP version, IP packet) of a frame, None when it carries no IP."""
    if linktype == 1:  # Ethernet
        if len(frame) < 14:
            return None
        ethertype, pos = int.from_bytes(frame[12:14]), 14
        while ethertype in _VLAN_TAGS and len(frame) >= pos + 4:
            ethertype, pos = int.from_bytes(frame[pos + 2 : pos + 4]), pos + 4
        return _by_ethertype(ethertype, frame[pos:])
    if linktype == 113:  # Linux cooked capture v1
        return _by_ethertype(int.from_bytes(frame[14:16]), frame[16:]) if len(frame) >= 16 else None
    if linktype == 276:  # Linux cooked capture v2
        return _by_ethertype(int.from_bytes(frame[0:2]), frame[20:]) if len(frame) >= 20 else None
    if linktype in (0, 108):  # BSD null (host order) / OpenBSD loop (network order)
        if len(frame) < 4:
            return None
        families = {int.from_bytes(frame[:4], "little"), int.from_bytes(frame[:4], "big")}
        if 2 in families:
            return 4, frame[4:]
        return (6, frame[4:]) if families & _AF_INET6 else None
    if linktype in (101, 228, 229):  # raw IP
        version = frame[0] >> 4 if frame else 0
        return (version, frame) if version in (4, 6) else None
    return None


def _by_ethertype(ethertype: int, payload: bytes) -> tuple[int, bytes] | None:
    if ethertype == _ETHERTYPE_IPV4:
        return 4, payload
    if ethertype == _ETHERTYPE_IPV6:
        return 6, payload
    return None


_FragKey: TypeAlias = tuple[int, bytes, bytes, int, int]


@dataclass(slots=True)
class _Fragments:
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None


class _Reassembler:
    """IPv4 and IPv6 fragment reassembly (first copy of overlapping data wins)."""

    def __init__(self) -> None:
        self._pending: dict[_FragKey, _Fragments] = {}

    def add(self, key: _FragKey, offset: int, more: bool, data: bytes) -> bytes | None:
        frags = self._pending.setdefault(key, _Fragments())
        frags.pieces.setdefault(offset, data)
        if not more:
            frags.total = offset + len(data)
        if frags.total is None or frags.total > 65535:
            if frags.total is not None:
                del self._pending[key]
            return None
        out = bytearray()
        for start in sorted(frags.pieces):
            if start > len(out):
                return None
            piece = frags.pieces[start]
            out += piece[len(out) - start :]
        if len(out) < frags.total:
            return None
        del self._pending[key]
        return bytes(out[: frags.total])


def _ip_payload(
    version: int, packet: bytes, frags: _Reassembler
) -> tuple[int, str, str, bytes] | None:
    """(protocol, source, destination, payload) of an IP packet, reassembling fragments."""
    if version == 4:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return None
        ihl, total = (packet[0] & 0x0F) * 4, int.from_bytes(packet[2:4])
        if ihl < 20 or total < ihl or total > len(packet):
            return None
        proto, src, dst = packet[9], packet[12:16], packet[16:20]
        payload = packet[ihl:total]
        flags_offset = int.from_bytes(packet[6:8])
        more, offset = bool(flags_offset & 0x2000), (flags_offset & 0x1FFF) * 8
        if more or offset:
            key = (4, src, dst, proto, int.from_bytes(packet[4:6]))
            whole = frags.add(key, offset, more, payload)
            if whole is None:
                return None
            payload = whole
        return proto, str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)), payload
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    plen = int.from_bytes(packet[4:6])
    if plen == 0 or 40 + plen > len(packet):
        return None  # jumbogram or truncated
    nxt, src, dst = packet[6], packet[8:24], packet[24:40]
    rest = packet[40 : 40 + plen]
    fragment: tuple[int, bool, int] | None = None
    while nxt in _IPV6_EXTENSIONS or nxt in (44, 51):
        if len(rest) < 8:
            return None
        if nxt == 44:  # fragment header
            field_ = int.from_bytes(rest[2:4])
            fragment = (field_ & 0xFFF8, bool(field_ & 1), int.from_bytes(rest[4:8]))
            nxt, rest = rest[0], rest[8:]
            continue
        size = (rest[1] + 2) * 4 if nxt == 51 else (rest[1] + 1) * 8
        if size > len(rest):
            return None
        nxt, rest = rest[0], rest[size:]
    if fragment is not None:
        offset, more, ident = fragment
        if more or offset:
            whole = frags.add((6, src, dst, nxt, ident), offset, more, rest)
            if whole is None:
                return None
            rest = whole
    return nxt, ipaddress.IPv6Address(src).compressed, ipaddress.IPv6Address(dst).compressed, rest


def read_pcap_packets(data: bytes) -> list[PcapPacket]:
    """Every UDP datagram and TCP segment of a capture, in capture order, IP fragments
    reassembled. Raises PcapError (and nothing else) when the file is malformed; packets that
    are truncated, of other protocols or on unknown link types are left out."""
    try:
        return _read_packets(bytes(data))
    except PcapError:
        raise
    except (ValueError, IndexError, struct.error, OverflowError) as exc:  # defensive: a bug
        raise PcapError(f"cannot read capture: {exc}") from exc


def _read_packets(data: bytes) -> list[PcapPacket]:
    packets: list[PcapPacket] = []
    frags = _Reassembler()
    for frame in _frames(data):
        link = _link_payload(frame.linktype, frame.data)
        if link is None:
            continue
        ip = _ip_payload(link[0], link[1], frags)
        if ip is None:
            continue
        proto, src, dst, seg = ip
        if proto == 17 and len(seg) >= 8:
            length = int.from_bytes(seg[4:6])
            if not 8 <= length <= len(seg):
                continue
            sport, dport = int.from_bytes(seg[0:2]), int.from_bytes(seg[2:4])
            packets.append(
                PcapPacket(
                    len(packets),
                    frame.time_ns,
                    "udp",
                    TraceAddress("udp", src, sport),
                    TraceAddress("udp", dst, dport),
                    seg[8:length],
                )
            )
        elif proto == 6 and len(seg) >= 20:
            hlen = (seg[12] >> 4) * 4
            if not 20 <= hlen <= len(seg):
                continue
            sport, dport = int.from_bytes(seg[0:2]), int.from_bytes(seg[2:4])
            packets.append(
                PcapPacket(
                    len(packets),
                    frame.time_ns,
                    "tcp",
                    TraceAddress("tcp", src, sport),
                    TraceAddress("tcp", dst, dport),
                    seg[hlen:],
                    int.from_bytes(seg[4:8]),
                    seg[13],
                )
            )
    return packets


# --- SIP: UDP datagrams, TCP streams ----------------------------------------------------------


def _looks_like_sip(payload: bytes) -> bool:
    return _SIP_START.match(payload) is not None


@dataclass(slots=True)
class _Stream:
    """One direction of a TCP connection: reassembly by sequence number, then SIP framing."""

    base: int  # sequence number of stream offset 0
    delivered: int = 0  # stream offset of the first byte not yet delivered
    pending: dict[int, bytes] = field(default_factory=dict)  # out-of-order segments by offset
    buffer: bytearray = field(default_factory=bytearray)  # delivered, not yet framed

    def offset_of(self, seq: int) -> int:
        """The stream offset of a sequence number, near ``delivered`` (32-bit wrap-around)."""
        diff = (seq - self.base - self.delivered) % (1 << 32)
        return self.delivered + (diff - (1 << 32) if diff >= 1 << 31 else diff)

    def add(self, seq: int, payload: bytes) -> None:
        start = self.offset_of(seq)
        end = start + len(payload)
        if end <= self.delivered:
            return  # retransmission of delivered data
        if start < self.delivered:
            payload, start = payload[self.delivered - start :], self.delivered
        if len(payload) > len(self.pending.get(start, b"")):
            self.pending[start] = payload
        self._drain()

    def skip_gap(self) -> bool:
        """Jump over missing data to the next buffered segment; False when none is left."""
        if not self.pending:
            return False
        self.delivered = min(self.pending)
        self.buffer.clear()
        self._drain()
        return True

    def _drain(self) -> None:
        while self.pending:
            start = min(self.pending)
            if start > self.delivered:
                return
            piece = self.pending.pop(start)
            if start + len(piece) > self.delivered:
                self.buffer += piece[self.delivered - start :]
                self.delivered = start + len(piece)

    def messages(self) -> Iterator[bytes]:
        """Complete SIP messages at the front of the buffer, keep-alives and garbage dropped."""
        buf = self.buffer
        while True:
            stripped = len(buf) - len(buf.lstrip(b"\r\n"))
            del buf[:stripped]
            if not buf:
                return
            newline = buf.find(b"\n")
            if newline < 0:
                if len(buf) > _MAX_LINE:
                    buf.clear()  # no SIP start line is that long: garbage
                return  # wait for the rest of the start line
            if not _looks_like_sip(bytes(buf[: newline + 1])):
                del buf[: newline + 1]  # garbage: resynchronise on the next line
                continue
            end = _HEADER_END.search(buf)
            if end is None:
                return
            m = _CONTENT_LENGTH.search(buf, 0, end.start())
            total = end.end() + (int(m.group(1)) if m else 0)
            if len(buf) < total:
                return
            yield bytes(buf[:total])
            del buf[:total]


def _sip_messages(packets: Iterable[PcapPacket]) -> Iterator[tuple[PcapPacket, bytes]]:
    """(packet that completed it, message bytes) for every SIP message, in capture order."""
    streams: dict[tuple[TraceAddress, TraceAddress], _Stream] = {}
    last: dict[tuple[TraceAddress, TraceAddress], PcapPacket] = {}
    for pkt in packets:
        if pkt.transport == "udp":
            if _looks_like_sip(pkt.payload):
                yield pkt, pkt.payload
            continue
        key = (pkt.src, pkt.dst)
        if pkt.tcp_flags & _SYN:
            streams[key] = _Stream(base=(pkt.tcp_seq + 1) % (1 << 32))
        stream = streams.get(key)
        if stream is None:
            if not pkt.payload:
                continue
            stream = streams[key] = _Stream(base=pkt.tcp_seq)
        if pkt.payload:
            stream.add(pkt.tcp_seq, pkt.payload)
            last[key] = pkt
            for message in stream.messages():
                yield pkt, message
        if pkt.tcp_flags & _RST:
            del streams[key]
    for key, stream in streams.items():
        while stream.skip_gap():
            for message in stream.messages():
                yield last[key], message


def _relative_ms(time_ns: int, origin_ns: int) -> float:
    """Milliseconds since the origin, rounded half up, as seconds (what the oracle files do)."""
    return ((time_ns - origin_ns + 500_000) // 1_000_000) / 1000


def import_pcap(
    data: bytes,
    *,
    mid: Sequence[TraceAddress],
    upstream: TraceAddress | None,
    title: str = "imported from a packet capture",
    config: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    time_tolerance: float | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    name: str = "<pcap>",
) -> Trace:
    """A trace of every SIP message in a capture: UDP datagrams that look like SIP and
    Content-Length framed messages of TCP streams (blocks with ``tcp:`` addresses), times in
    seconds since the first one, to the millisecond. ``mid`` and ``upstream`` go into the
    header and decide which blocks are expectations. Raises PcapError on a malformed capture."""
    packets = read_pcap_packets(data)
    try:
        found = list(_sip_messages(packets))
    except (ValueError, IndexError, OverflowError) as exc:  # defensive: a bug
        raise PcapError(f"cannot read the SIP messages of the capture: {exc}") from exc
    origin = found[0][0].time_ns if found else 0
    blocks = [
        TraceBlock(i, max(0.0, _relative_ms(pkt.time_ns, origin)), pkt.src, pkt.dst, message)
        for i, (pkt, message) in enumerate(found)
    ]
    return Trace.build(
        name=name,
        title=title,
        mid=mid,
        upstream=upstream,
        config=config,
        time_tolerance=time_tolerance,
        extra_headers=extra_headers,
        blocks=blocks,
    )
