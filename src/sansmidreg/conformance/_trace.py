# The conformance trace format ("sansmidreg-trace 1"): its values (TraceAddress, TraceBlock,
# Trace), the reader (parse_trace / load_trace), the canonical writer (format_trace / save_trace)
# and the streaming recorder (TraceWriter).
#
# Invariants: TraceBlock.data holds exact wire bytes (CRLF). In the text form a message is written
# with CRLF turned into LF and is followed by one blank line; a reader finds the end of a body by
# Content-Length, counting every line break as CRLF, never by blank lines. Without Content-Length
# the body runs up to the next `@` line, less trailing blank lines. Trace.headers (the `# key:
# value` comments, in order) is the source of truth for the header fields, so that
# parse_trace(format_trace(t)) == t. Data the text form cannot carry (bare LF, a Content-Length
# that disagrees with the body, no header/body separator ...) makes the writers raise
# TraceFormatError instead of writing a trace that replays something else (see is_representable).
# Text is UTF-8; undecodable bytes travel as surrogate escapes (load_trace / save_trace handle it).
from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal, Self, TextIO, TypeAlias

__all__ = [
    "Trace",
    "TraceAddress",
    "TraceBlock",
    "TraceFormatError",
    "TraceWriter",
    "format_trace",
    "is_representable",
    "load_trace",
    "parse_trace",
    "save_trace",
    "wire_bytes_from_text",
]

TraceTransport: TypeAlias = Literal["udp", "tcp", "tls"]
ConfigPairs: TypeAlias = "Iterable[tuple[str, str]] | Mapping[str, str]"

MAGIC: Final = "sansmidreg-trace"
VERSION: Final = "1"
DEFAULT_TIME_TOLERANCE: Final = 0.5

_TRANSPORTS: Final[Mapping[str, TraceTransport]] = {"udp": "udp", "tcp": "tcp", "tls": "tls"}
_ADDRESS: Final = re.compile(
    r"(?:(?P<transport>udp|tcp|tls):)?"
    r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[A-Za-z0-9._-]+))"
    r":(?P<port>[0-9]{1,5})",
    re.IGNORECASE,
)
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?\.?")
_BLOCK_LINE: Final = re.compile(r"@(?P<time>\S+)\s+(?P<src>\S+?)\s*->\s*(?P<dst>\S+)\s*")
_TIME: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_COMMENT_KEY: Final = re.compile(r"(?P<key>[A-Za-z][A-Za-z0-9_.-]*)\s*:(?P<value>.*)")
_MAGIC_LINE: Final = re.compile(re.escape(MAGIC) + r"\s+(?P<version>\S+)")
_LIST_SEP: Final = re.compile(r"[\s,]+")


class TraceFormatError(ValueError):
    """A trace text (or a value meant for one) is malformed; says where when it knows."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        where = source or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


def _canonical_host(host: str) -> str:
    """The canonical spelling of a host: IPv6 compressed, IPv4 checked, names as given."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise TraceFormatError(f"invalid IPv6 address {host!r}") from None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise TraceFormatError(f"invalid IPv4 address {host!r}") from None
    if not _HOSTNAME.fullmatch(host):
        raise TraceFormatError(f"invalid host {host!r}")
    return host


@dataclass(frozen=True, slots=True)
class TraceAddress:
    """A transport address of a trace: ``udp:127.0.0.1:5060``, ``[::1]:5060``, ``tcp:h:5061``."""

    transport: TraceTransport
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.transport not in _TRANSPORTS:
            raise TraceFormatError(f"unknown transport {self.transport!r}")
        if not 0 <= self.port <= 65535:
            raise TraceFormatError(f"port out of range: {self.port}")
        if _canonical_host(self.host) != self.host:
            raise TraceFormatError(f"host not in canonical form: {self.host!r}")

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse ``[transport:]host:port`` (IPv6 in brackets); udp when no transport is given.

        Raises TraceFormatError (a ValueError) on anything else.
        """
        m = _ADDRESS.fullmatch(text.strip())
        if m is None:
            raise TraceFormatError(f"invalid address {text!r} (expected [udp:|tcp:|tls:]host:port)")
        v6 = m.group("v6")
        if v6 is not None and ":" not in v6:
            raise TraceFormatError(f"brackets are for IPv6 addresses only: {text!r}")
        host = _canonical_host(v6 if v6 is not None else m.group("host"))
        transport = _TRANSPORTS[(m.group("transport") or "udp").lower()]
        port = int(m.group("port"))
        if port > 65535:
            raise TraceFormatError(f"port out of range in {text!r}")
        return cls(transport, host, port)

    @property
    def hostport(self) -> str:
        """``host:port``, IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def qualified(self) -> str:
        """The form with the transport always spelled out (``udp:127.0.0.1:5060``)."""
        return f"{self.transport}:{self.hostport}"

    def __str__(self) -> str:
        """The canonical form of block lines: no prefix for udp, ``tcp:``/``tls:`` otherwise."""
        return self.hostport if self.transport == "udp" else self.qualified()


@dataclass(frozen=True, slots=True)
class TraceBlock:
    """One message of a trace: when, from where to where, and the exact wire bytes.

    ``index`` is the 0-based position in the trace; ``line`` is the 1-based line of the ``@``
    line in the file it came from (0 when built in code) and is left out of comparisons.
    """

    index: int
    time: float
    src: TraceAddress
    dst: TraceAddress
    data: bytes
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.time) or self.time < 0:
            raise TraceFormatError(f"block time must be finite and >= 0, not {self.time!r}")


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed trace. ``headers`` holds every ``# key: value`` comment in order (free-form
    comments as ``("", text)``); title, mid, upstream, config and time_tolerance are derived from
    it and must agree with it (use :meth:`build` to make a trace in code). ``name`` is left out
    of comparisons.
    """

    name: str = field(compare=False)
    title: str
    mid: tuple[TraceAddress, ...]
    upstream: TraceAddress | None
    config: tuple[tuple[str, str], ...]
    time_tolerance: float
    headers: tuple[tuple[str, str], ...]
    blocks: tuple[TraceBlock, ...]

    def __post_init__(self) -> None:
        for key, value in self.headers:
            bad_magic = not key and _MAGIC_LINE.fullmatch(value) is not None
            if bad_magic or _split_comment(_format_comment(key, value)[1:]) != (key, value):
                raise TraceFormatError(f"header {key!r}: {value!r} cannot be written as a comment")
        derived = _derive(self.headers, None, self.name)
        mine = (self.title, self.mid, self.upstream, self.config, self.time_tolerance)
        if derived != mine:
            raise TraceFormatError(
                "Trace fields disagree with its headers (build traces with Trace.build)"
            )

    @classmethod
    def build(
        cls,
        *,
        name: str = "<trace>",
        title: str = "",
        mid: Iterable[TraceAddress] = (),
        upstream: TraceAddress | None = None,
        config: ConfigPairs = (),
        time_tolerance: float | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        blocks: Iterable[TraceBlock] = (),
    ) -> Self:
        """Make a trace from its parts; blocks are renumbered 0, 1, 2 ... in the given order."""
        headers = _build_headers(title, mid, upstream, config, time_tolerance, extra_headers)
        title_, mid_, upstream_, config_, tolerance = _derive(headers, None, name)
        numbered = tuple(
            b if b.index == i else dataclasses.replace(b, index=i) for i, b in enumerate(blocks)
        )
        return cls(name, title_, mid_, upstream_, config_, tolerance, headers, numbered)

    def is_expectation(self, block: TraceBlock) -> bool:
        """True when the block is sent by the system under test (its source host and port is a
        mid-registrar address, whatever the transport); every other block is an input."""
        return any(block.src.host == m.host and block.src.port == m.port for m in self.mid)

    def config_dict(self) -> dict[str, str]:
        """The ``config:`` pairs as a dict (a key given twice: the last one wins)."""
        return dict(self.config)

    def header_values(self, key: str) -> tuple[str, ...]:
        """The values of every header comment with this key, in file order."""
        return tuple(v for k, v in self.headers if k == key)


# --- header comments --------------------------------------------------------------------------


def _split_comment(text: str) -> tuple[str, str]:
    """``key: value`` -> (key, value); anything else is a free-form comment ("", text)."""
    text = text.strip()
    m = _COMMENT_KEY.fullmatch(text)
    if m is None:
        return "", text
    return m.group("key"), m.group("value").strip()


def _format_comment(key: str, value: str) -> str:
    if not key:
        return f"# {value}" if value else "#"
    return f"# {key}: {value}" if value else f"# {key}:"


def _build_headers(
    title: str,
    mid: Iterable[TraceAddress],
    upstream: TraceAddress | None,
    config: ConfigPairs,
    time_tolerance: float | None,
    extra: Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    if title:
        headers.append(("title", title))
    mids = [m.qualified() for m in mid]
    if mids:
        headers.append(("mid-registrar", " ".join(mids)))
    if upstream is not None:
        headers.append(("upstream", upstream.qualified()))
    pairs = list(config.items()) if isinstance(config, Mapping) else list(config)
    for key, value in pairs:
        if not key or "=" in key or re.search(r"\s", key + value):
            raise TraceFormatError(f"config pair {key!r}={value!r} cannot be written")
    if pairs:
        headers.append(("config", " ".join(f"{k}={v}" for k, v in pairs)))
    if time_tolerance is not None:
        headers.append(("time-tolerance", repr(float(time_tolerance))))
    headers.extend(extra)
    return tuple(headers)


def _derive(
    headers: Sequence[tuple[str, str]], lines: Sequence[int] | None, source: str
) -> tuple[str, tuple[TraceAddress, ...], TraceAddress | None, tuple[tuple[str, str], ...], float]:
    """The header fields that ``headers`` defines; TraceFormatError says which line is wrong."""
    title: str | None = None
    upstream: TraceAddress | None = None
    tolerance: float | None = None
    mid: list[TraceAddress] = []
    config: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, (key, value) in enumerate(headers):
        line = lines[n] if lines is not None else None
        try:
            if key in ("title", "upstream", "time-tolerance") and key in seen:
                raise TraceFormatError(f"'{key}:' given twice")
            seen.add(key)
            if key == "title":
                title = value
            elif key == "mid-registrar":
                mid.extend(TraceAddress.parse(a) for a in _LIST_SEP.split(value) if a)
            elif key == "upstream":
                upstream = TraceAddress.parse(value)
            elif key == "config":
                for token in value.split():
                    k, eq, v = token.partition("=")
                    if not k or not eq:
                        raise TraceFormatError(f"config entry {token!r} is not key=value")
                    config.append((k, v))
            elif key == "time-tolerance":
                try:
                    tolerance = float(value) if re.fullmatch(r"[0-9.eE+-]+", value) else math.nan
                except ValueError:
                    tolerance = math.nan
                if not math.isfinite(tolerance) or tolerance < 0:
                    raise TraceFormatError(f"time-tolerance must be seconds >= 0, not {value!r}")
        except TraceFormatError as exc:
            raise TraceFormatError(exc.message, source=source, line=line) from None
    tol = DEFAULT_TIME_TOLERANCE if tolerance is None else tolerance
    return title or "", tuple(mid), upstream, tuple(config), tol


# --- blocks -----------------------------------------------------------------------------------


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _content_length(head: Sequence[str]) -> int | None:
    """The first well-formed Content-Length (or compact ``l``) of the header lines, if any."""
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("content-length", "l"):
            value = value.strip()
            return int(value) if value.isascii() and value.isdigit() else None
    return None


def _parse_message(lines: Sequence[str], i: int, start: int, source: str) -> tuple[bytes, int]:
    """Read the message that starts at ``lines[i]`` (the line after ``@``, which is line
    ``start``); return its wire bytes and the index of the next block line (or len(lines))."""
    n = len(lines)

    def fail(message: str, at: int) -> TraceFormatError:
        return TraceFormatError(message, source=source, line=at + 1)

    head: list[str] = []
    separated = False
    while i < n:
        text = lines[i].removesuffix("\r")
        if text.startswith("@"):
            break
        i += 1
        if text == "":
            separated = True
            break
        head.append(text)
    if not head:
        raise TraceFormatError("block has no message", source=source, line=start)
    data = bytearray(b"".join(_enc(h) + b"\r\n" for h in head) + b"\r\n")
    length = _content_length(head)
    if length is None:
        body: list[str] = []
        while i < n and not lines[i].startswith("@"):
            body.append(lines[i].removesuffix("\r"))
            i += 1
        while body and not body[-1].strip():
            body.pop()
        data += b"".join(_enc(b) + b"\r\n" for b in body)
        return bytes(data), i
    need = length
    if need > 0 and not separated:
        raise fail(f"message ends before its body (Content-Length {length})", i - 1)
    while need > 0:
        if i >= n:
            raise fail(f"message ends inside its body (Content-Length {length})", n - 1)
        content = _enc(lines[i].removesuffix("\r"))
        if len(content) > need:
            raise fail(f"text after the end of the body (Content-Length {length})", i)
        data += content
        need -= len(content)
        i += 1
        if need == 1:
            raise fail(f"Content-Length {length} ends inside a line break", i - 1)
        if need > 0:
            data += b"\r\n"
            need -= 2
    while i < n and not lines[i].startswith("@"):
        if lines[i].strip():
            raise fail(f"text after the end of the body (Content-Length {length})", i)
        i += 1
    return bytes(data), i


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def wire_bytes_from_text(block_text: str) -> bytes:
    """The wire bytes of one message written in the trace's text form (without its ``@`` line):
    LF (or CRLF) line breaks become CRLF, the header section ends with CRLF CRLF, and the body is
    Content-Length bytes (counting line breaks as CRLF) or, without one, every remaining line less
    trailing blank ones. Raises TraceFormatError when the text is not one such message."""
    lines = _split_lines(block_text.removeprefix("\ufeff"))
    data, end = _parse_message(lines, 0, 1, "<block>")
    if end != len(lines):
        raise TraceFormatError("text after the message", source="<block>", line=end + 1)
    return data


def _message_text(data: bytes) -> str:
    text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def is_representable(data: bytes) -> bool:
    """True when the trace text form carries these wire bytes unchanged (see module comment)."""
    lines = _split_lines(_message_text(data) + "\n")
    try:
        back, end = _parse_message(lines, 0, 1, "<block>")
    except TraceFormatError:
        return False
    return back == data and end == len(lines)


def _format_time(seconds: float) -> str:
    """Shortest exact decimal, at least 3 decimals, never an exponent (``2.008``, ``0.000``)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise TraceFormatError(f"block time must be finite and >= 0, not {seconds!r}")
    whole, _, frac = format(Decimal(repr(seconds + 0.0)), "f").partition(".")
    return f"{whole}.{frac.ljust(3, '0')}"


def _format_block(block: TraceBlock) -> str:
    if not is_representable(block.data):
        raise TraceFormatError(
            f"block {block.index} cannot be written in the trace text form (bare LF or CR "
            "before CRLF, no CRLF CRLF after the headers, or a Content-Length that disagrees "
            "with the body)"
        )
    head = f"@{_format_time(block.time)} {block.src} -> {block.dst}"
    return f"{head}\n{_message_text(block.data)}\n"


# --- whole traces -----------------------------------------------------------------------------


def parse_trace(text: str, name: str = "<trace>", *, filename: str | None = None) -> Trace:
    """Parse a trace text. Errors raise TraceFormatError naming ``filename`` (or ``name``) and
    the 1-based line. The ``# sansmidreg-trace 1`` first line is optional; blank lines and
    comments may precede the first block."""
    source = filename or name
    lines = _split_lines(text.removeprefix("\ufeff"))
    headers: list[tuple[str, str]] = []
    header_lines: list[int] = []
    i = 0
    while i < len(lines) and not lines[i].startswith("@"):
        text_ = lines[i].removesuffix("\r").strip()
        i += 1
        if not text_:
            continue
        if not text_.startswith("#"):
            raise TraceFormatError(
                "expected a '# key: value' comment or an '@<seconds> <src> -> <dst>' line",
                source=source,
                line=i,
            )
        magic = _MAGIC_LINE.fullmatch(text_[1:].strip())
        if magic is not None:
            if headers:
                raise TraceFormatError(f"'# {MAGIC}' must be the first line", source=source, line=i)
            if magic.group("version") != VERSION:
                version = magic.group("version")
                raise TraceFormatError(
                    f"unsupported trace version {version!r} (this reader: {VERSION})",
                    source=source,
                    line=i,
                )
            continue
        headers.append(_split_comment(text_[1:]))
        header_lines.append(i)
    blocks: list[TraceBlock] = []
    while i < len(lines):
        at = i + 1
        m = _BLOCK_LINE.fullmatch(lines[i].removesuffix("\r"))
        if m is None:
            raise TraceFormatError(
                "malformed block line (expected '@<seconds> <src> -> <dst>')",
                source=source,
                line=at,
            )
        if not _TIME.fullmatch(m.group("time")):
            raise TraceFormatError(f"invalid time {m.group('time')!r}", source=source, line=at)
        try:
            src, dst = TraceAddress.parse(m.group("src")), TraceAddress.parse(m.group("dst"))
        except TraceFormatError as exc:
            raise TraceFormatError(exc.message, source=source, line=at) from None
        data, i = _parse_message(lines, i + 1, at, source)
        blocks.append(TraceBlock(len(blocks), float(m.group("time")), src, dst, data, at))
    title, mid, upstream, config, tolerance = _derive(headers, header_lines, source)
    return Trace(name, title, mid, upstream, config, tolerance, tuple(headers), tuple(blocks))


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read and parse a trace file; the trace's name is the file name without its suffix."""
    fspath = os.fspath(path)
    with open(fspath, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    stem = os.path.splitext(os.path.basename(fspath))[0]
    return parse_trace(text, stem, filename=fspath)


def format_trace(trace: Trace) -> str:
    """The canonical text of a trace (LF line ends, magic line, header comments, then each block
    followed by a blank line). Raises TraceFormatError for a block the text cannot carry."""
    parts = [f"# {MAGIC} {VERSION}\n"]
    parts.extend(_format_comment(k, v) + "\n" for k, v in trace.headers)
    parts.extend(_format_block(b) for b in trace.blocks)
    return "".join(parts)


def save_trace(trace: Trace, path: str | os.PathLike[str]) -> None:
    """Write format_trace(trace) to a file (UTF-8, undecodable bytes restored as they were)."""
    data = format_trace(trace).encode("utf-8", "surrogateescape")
    with open(os.fspath(path), "wb") as f:
        f.write(data)


class TraceWriter:
    """Records a trace as it happens (``--record FILE``): the header once, on construction, then
    one block per :meth:`write`, flushed each time. Times are written relative to ``time_origin``
    (default: the time of the first block), rounded to milliseconds. Give a stream opened with
    ``errors="surrogateescape"`` if messages may hold bytes that are not UTF-8."""

    def __init__(
        self,
        stream: TextIO,
        title: str,
        mid: Iterable[TraceAddress | str],
        upstream: TraceAddress | str | None,
        config: ConfigPairs = (),
        *,
        time_tolerance: float | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        time_origin: float | None = None,
    ) -> None:
        self._stream = stream
        self._origin = time_origin
        self._count = 0
        trace = Trace.build(
            title=title,
            mid=[_address(m) for m in mid],
            upstream=None if upstream is None else _address(upstream),
            config=config,
            time_tolerance=time_tolerance,
            extra_headers=extra_headers,
        )
        self.header = trace
        self._put(format_trace(trace))

    def write(
        self, time: float, src: TraceAddress | str, dst: TraceAddress | str, data: bytes
    ) -> TraceBlock:
        """Append one message and flush; return the block written. Raises TraceFormatError,
        writing nothing, when the bytes cannot be carried by the text form (see
        :func:`is_representable`) or the stream cannot encode them."""
        if self._origin is None:
            self._origin = time
        rel = max(0.0, round(time - self._origin, 3))
        block = TraceBlock(self._count, rel, _address(src), _address(dst), bytes(data))
        text = _format_block(block)
        encoding = getattr(self._stream, "encoding", None)
        if isinstance(encoding, str) and encoding:
            errors = getattr(self._stream, "errors", None)
            try:
                text.encode(encoding, errors if isinstance(errors, str) and errors else "strict")
            except UnicodeError:
                raise TraceFormatError(
                    f"block {block.index}: the stream ({encoding}) cannot encode these bytes"
                ) from None
        self._put(text)
        self._count += 1
        return block

    def _put(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def _address(value: TraceAddress | str) -> TraceAddress:
    return value if isinstance(value, TraceAddress) else TraceAddress.parse(value)
