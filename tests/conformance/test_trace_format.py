# Tests of the trace format (sansmidreg.conformance._trace): the OpenSIPS oracle corpus parses and
# formats back byte for byte, the README's wire-bytes rule, error messages with line numbers, the
# streaming TraceWriter, and hypothesis round trips of generated traces.
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansmidreg.conformance._trace import (
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

ORACLE = Path(__file__).resolve().parents[2] / "conformance" / "oracle"
ORACLE_TRACES = sorted((ORACLE / "traces").glob("*.txt"))

REGISTER = (
    b"REGISTER sip:example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5251;branch=z9hG4bK-1\r\n"
    b"To: <sip:alice@example.test>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n\r\n@0.000 not-a-block\r\n# not a comment\r\n"
INVITE = (
    b"INVITE sip:bob@example.test SIP/2.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

EXAMPLE = """\
# sansmidreg-trace 1
# title: contact throttling absorbs refreshes until the upstream window closes
# mid-registrar: udp:127.0.0.1:5060
# mid-registrar: tcp:127.0.0.1:5060, [::1]:5060
# upstream: udp:127.0.0.1:5080
# config: mode=contact-throttling outgoing_expires=600
# config: min_expires=10
# time-tolerance: 1.0
# expected-deviations: none
# a free-form comment: with words
@0.000 127.0.0.1:5251 -> 127.0.0.1:5060
REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5251;branch=z9hG4bK-1
To: <sip:alice@example.test>
Content-Length: 0


@0.004 127.0.0.1:5060 -> tcp:[::1]:5080
INVITE sip:bob@example.test SIP/2.0
Content-Type: application/sdp
Content-Length: 70

v=0
o=- 1 1 IN IP4 127.0.0.1

@0.000 not-a-block
# not a comment

"""


def _lines_with(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


# --- the oracle corpus --------------------------------------------------------------------------


def test_oracle_corpus_is_in_the_repo() -> None:
    assert (ORACLE / "README.md").is_file()
    assert len(ORACLE_TRACES) == 15
    assert sorted((ORACLE / "scenarios").glob("*.xml"))


def test_every_oracle_message_has_a_matching_content_length() -> None:
    count = 0
    for path in ORACLE_TRACES:
        trace = load_trace(path)
        assert trace.name == path.stem
        for block in trace.blocks:
            head, sep, body = block.data.partition(b"\r\n\r\n")
            assert sep, (path.name, block.index)
            m = re.search(rb"\r\nContent-Length:[ \t]*([0-9]+)", head, re.IGNORECASE)
            assert m is not None, (path.name, block.index)
            assert int(m.group(1)) == len(body), (path.name, block.index)
            assert b"\n" not in block.data.replace(b"\r\n", b"")
            count += 1
    assert count == 346


@pytest.mark.parametrize("path", ORACLE_TRACES, ids=lambda p: p.stem)
def test_oracle_trace_formats_back_byte_for_byte(path: Path) -> None:
    trace = load_trace(path)
    text = path.read_text(encoding="utf-8")
    magic = "# sansmidreg-trace 1\n"
    assert format_trace(trace) == (text if text.startswith(magic) else magic + text)
    assert parse_trace(format_trace(trace)) == trace
    assert [b.index for b in trace.blocks] == list(range(len(trace.blocks)))
    if trace.mid:
        assert trace.mid == (TraceAddress("udp", "127.0.0.1", 5060),)
        assert trace.upstream == TraceAddress("udp", "127.0.0.1", 5080)
        assert trace.config_dict()["compat"] == "opensips"
        assert trace.title.startswith("OpenSIPS")
        assert any(trace.is_expectation(b) for b in trace.blocks)
    else:  # the -direct baselines have no header at all
        assert (trace.title, trace.upstream, trace.headers) == ("", None, ())
        assert not any(trace.is_expectation(b) for b in trace.blocks)


def test_oracle_block_lines_point_at_the_at_lines() -> None:
    path = ORACLE / "traces" / "fork-mirror.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    for block in load_trace(path).blocks:
        assert lines[block.line - 1].startswith("@")


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("udp:127.0.0.1:5060", TraceAddress("udp", "127.0.0.1", 5060), "127.0.0.1:5060"),
        ("127.0.0.1:5060", TraceAddress("udp", "127.0.0.1", 5060), "127.0.0.1:5060"),
        ("[::1]:5060", TraceAddress("udp", "::1", 5060), "[::1]:5060"),
        ("tcp:[::1]:5061", TraceAddress("tcp", "::1", 5061), "tcp:[::1]:5061"),
        ("TLS:[0:0::1]:5061", TraceAddress("tls", "::1", 5061), "tls:[::1]:5061"),
        (
            "tcp:sip.example.test:0",
            TraceAddress("tcp", "sip.example.test", 0),
            "tcp:sip.example.test:0",
        ),
        ("localhost:65535", TraceAddress("udp", "localhost", 65535), "localhost:65535"),
    ],
)
def test_address_parse_and_str(text: str, expected: TraceAddress, canonical: str) -> None:
    address = TraceAddress.parse(text)
    assert address == expected
    assert str(address) == canonical
    assert TraceAddress.parse(str(address)) == address
    assert TraceAddress.parse(address.qualified()) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1",
        "::1:5060",
        "[127.0.0.1]:5060",
        "sctp:1.2.3.4:5",
        "1.2.3.4:65536",
        "1.2.3.400:5060",
        "[::g]:5060",
        "host name:5060",
        "udp:",
        "[::1]",
    ],
)
def test_address_parse_rejects(text: str) -> None:
    with pytest.raises(TraceFormatError):
        TraceAddress.parse(text)


def test_address_constructor_validates() -> None:
    with pytest.raises(ValueError):
        TraceAddress("udp", "0:0::1", 5060)  # not canonical
    with pytest.raises(ValueError):
        TraceAddress("udp", "127.0.0.1", 70000)


# --- parsing ------------------------------------------------------------------------------------


def test_parse_example_header_and_blocks() -> None:
    trace = parse_trace(EXAMPLE, "example")
    assert trace.name == "example"
    assert trace.title.startswith("contact throttling absorbs")
    assert trace.mid == (
        TraceAddress("udp", "127.0.0.1", 5060),
        TraceAddress("tcp", "127.0.0.1", 5060),
        TraceAddress("udp", "::1", 5060),
    )
    assert trace.upstream == TraceAddress("udp", "127.0.0.1", 5080)
    assert trace.config == (
        ("mode", "contact-throttling"),
        ("outgoing_expires", "600"),
        ("min_expires", "10"),
    )
    assert trace.time_tolerance == 1.0
    assert trace.header_values("expected-deviations") == ("none",)
    assert ("", "a free-form comment: with words") in trace.headers
    first, second = trace.blocks
    assert (first.index, first.time, first.line, first.data) == (0, 0.0, 11, REGISTER)
    assert (second.index, second.time, second.line) == (1, 0.004, 18)
    assert second.dst == TraceAddress("tcp", "::1", 5080)
    assert second.data == INVITE  # the body's "@" and "#" lines belong to it (Content-Length)
    assert not trace.is_expectation(first)
    assert trace.is_expectation(second)
    assert parse_trace(format_trace(trace)) == trace


def test_crlf_file_reads_the_same() -> None:
    assert parse_trace(EXAMPLE.replace("\n", "\r\n")) == parse_trace(EXAMPLE)


def test_defaults_without_header() -> None:
    trace = parse_trace("@1.5 1.2.3.4:5 -> 5.6.7.8:9\nOPTIONS sip:x SIP/2.0\nContent-Length: 0\n")
    assert (trace.title, trace.mid, trace.upstream, trace.config) == ("", (), None, ())
    assert trace.time_tolerance == 0.5
    assert trace.blocks[0].data == b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    assert trace.blocks[0].time == 1.5


def test_missing_blank_lines_between_blocks() -> None:
    text = (
        "@0 a.test:1 -> b.test:2\nOPTIONS sip:x SIP/2.0\n"
        "@0.1 b.test:2 -> a.test:1\nSIP/2.0 200 OK\n"
    )
    first, second = parse_trace(text).blocks
    assert first.data == b"OPTIONS sip:x SIP/2.0\r\n\r\n"
    assert second.data == b"SIP/2.0 200 OK\r\n\r\n"


def test_body_without_content_length_runs_to_the_next_block() -> None:
    text = (
        "@0 a.test:1 -> b.test:2\nMESSAGE sip:x SIP/2.0\n\nhello\n\nworld\n\n\n"
        "@1 a.test:1 -> b.test:2\nX sip:y SIP/2.0\n"
    )
    first, second = parse_trace(text).blocks
    assert first.data == b"MESSAGE sip:x SIP/2.0\r\n\r\nhello\r\n\r\nworld\r\n"
    assert second.time == 1.0


def test_body_without_final_line_break() -> None:
    data = b"MESSAGE sip:x SIP/2.0\r\nl: 3\r\n\r\nabc"
    trace = Trace.build(
        blocks=[
            TraceBlock(
                0, 0.25, TraceAddress.parse("a.test:1"), TraceAddress.parse("b.test:2"), data
            )
        ]
    )
    text = format_trace(trace)
    assert text.endswith("\nabc\n\n")
    assert parse_trace(text) == trace


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (
            "OPTIONS sip:x SIP/2.0\nContent-Length: 0\n\n\n",
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "OPTIONS sip:x SIP/2.0\nContent-Length: 0",
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "M sip:x SIP/2.0\nContent-Length: 6\n\nab\n\n",
            b"M sip:x SIP/2.0\r\nContent-Length: 6\r\n\r\nab\r\n\r\n",
        ),
        (
            "M sip:x SIP/2.0\r\nContent-Length: 4\r\n\r\nab\r\n\r\n",
            b"M sip:x SIP/2.0\r\nContent-Length: 4\r\n\r\nab\r\n",
        ),
        (
            "M sip:x SIP/2.0\nContent-Length: x\n\nab\n\n",
            b"M sip:x SIP/2.0\r\nContent-Length: x\r\n\r\nab\r\n",
        ),
    ],
)
def test_wire_bytes_from_text(text: str, rule: bytes) -> None:
    assert wire_bytes_from_text(text) == rule


# --- errors with line numbers ------------------------------------------------------------------

_OK = "@0 1.2.3.4:5 -> 5.6.7.8:9\nOPTIONS sip:x SIP/2.0\nContent-Length: 0\n\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("# sansmidreg-trace 2\n" + _OK, 1, "unsupported trace version"),
        ("# title: t\n# sansmidreg-trace 1\n" + _OK, 2, "must be the first line"),
        ("# title: t\nhello\n" + _OK, 2, "expected a '# key: value' comment"),
        ("# upstream: 1.2.3.4:5\n# upstream: 1.2.3.4:6\n" + _OK, 2, "given twice"),
        ("# title: a\n\n# mid-registrar: 1.2.3.4:5, nowhere\n" + _OK, 3, "invalid address"),
        ("# config: mode=mirror oops\n" + _OK, 1, "not key=value"),
        ("# time-tolerance: soon\n" + _OK, 1, "time-tolerance"),
        ("# time-tolerance: -1\n" + _OK, 1, "time-tolerance"),
        (_OK + "@0.1 1.2.3.4:5 5.6.7.8:9\nX\n", 5, "malformed block line"),
        (_OK + "@1e3 1.2.3.4:5 -> 5.6.7.8:9\nX\n", 5, "invalid time"),
        (_OK + "@-1 1.2.3.4:5 -> 5.6.7.8:9\nX\n", 5, "invalid time"),
        (_OK + "@1 1.2.3.4:5 -> [::1]\nX\n", 5, "invalid address"),
        (_OK + "@1 1.2.3.4:5 -> 5.6.7.8:9\n\n", 5, "block has no message"),
        (
            _OK + "@1 a.b:5 -> c.d:9\nM sip:x SIP/2.0\nContent-Length: 10\n\nabc\n",
            9,
            "ends inside its body",
        ),
        (
            _OK + "@1 a.b:5 -> c.d:9\nM sip:x SIP/2.0\nContent-Length: 2\n\nabc\n",
            9,
            "text after the end",
        ),
        (
            _OK + "@1 a.b:5 -> c.d:9\nM sip:x SIP/2.0\nContent-Length: 4\n\nabc\n",
            9,
            "inside a line break",
        ),
        (
            _OK + "@1 a.b:5 -> c.d:9\nM sip:x SIP/2.0\nContent-Length: 0\n\nabc\n",
            9,
            "text after the end",
        ),
        (
            _OK + "@1 a.b:5 -> c.d:9\nM sip:x SIP/2.0\nContent-Length: 3\n@2 a.b:5 -> c.d:9\n",
            7,
            "before its body",
        ),
    ],
)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(TraceFormatError) as info:
        parse_trace(text, filename="bad.txt")
    assert info.value.line == line
    assert info.value.source == "bad.txt"
    assert message in str(info.value)
    assert str(info.value).startswith(f"bad.txt:{line}: ")


def test_load_trace_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    path.write_text("# title: x\n@zero a:1 -> b:2\n", encoding="utf-8")
    with pytest.raises(TraceFormatError, match=re.escape(f"{path}:2: invalid time")):
        load_trace(path)


# --- building and writing -----------------------------------------------------------------------

A = TraceAddress.parse("127.0.0.1:5251")
MID = TraceAddress.parse("udp:127.0.0.1:5060")
UP = TraceAddress.parse("127.0.0.1:5080")


def test_build_and_consistency() -> None:
    trace = Trace.build(
        name="built",
        title="a title",
        mid=[MID, TraceAddress.parse("tls:[2001:db8::1]:5061")],
        upstream=UP,
        config={"mode": "mirror", "min_expires": "5"},
        time_tolerance=2,
        extra_headers=[("recorded", "by hand"), ("", "free text")],
        blocks=[TraceBlock(7, 0.0, A, MID, REGISTER), TraceBlock(7, 0.5, MID, UP, INVITE)],
    )
    assert [b.index for b in trace.blocks] == [0, 1]
    assert trace.time_tolerance == 2.0
    assert trace.headers[:2] == (
        ("title", "a title"),
        ("mid-registrar", "udp:127.0.0.1:5060 tls:[2001:db8::1]:5061"),
    )
    assert parse_trace(format_trace(trace)) == trace
    with pytest.raises(ValueError, match="disagree"):
        Trace("x", "other title", (), None, (), 0.5, trace.headers, ())
    with pytest.raises(ValueError):
        Trace.build(title="two\nlines")
    with pytest.raises(ValueError):
        Trace.build(config=[("mode", "has space")])


def test_unrepresentable_data_is_refused() -> None:
    for data in [
        b"",
        b"garbage",
        b"OPTIONS sip:x SIP/2.0\nContent-Length: 0\n\n",  # bare LF
        b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 5\r\n\r\nab",  # body shorter than CL
        b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\nab",  # body longer than CL
        b"@0 sip:x SIP/2.0\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\n\r\nbody\r\n@1 a:1 -> b:2\r\n",  # no CL, '@' line in body
    ]:
        assert not is_representable(data), data
        trace = Trace.build(blocks=[TraceBlock(0, 0.0, A, MID, data)])
        with pytest.raises(TraceFormatError, match="block 0"):
            format_trace(trace)
    assert is_representable(REGISTER) and is_representable(INVITE)


def test_undecodable_bytes_survive_save_and_load(tmp_path: Path) -> None:
    body = b"\xff\xfe\x00binary\xc3(\r\n"
    data = b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 13\r\n\r\n" + body
    trace = Trace.build(title="bytes", blocks=[TraceBlock(0, 0.0, A, MID, data)])
    path = tmp_path / "bytes.txt"
    save_trace(trace, path)
    assert load_trace(path) == trace
    assert parse_trace(format_trace(trace)) == trace


def test_trace_writer_streams_header_then_blocks() -> None:
    class Recorder(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    stream = Recorder()
    writer = TraceWriter(
        stream,
        "recorded run",
        [MID],
        "127.0.0.1:5080",
        [("mode", "mirror")],
        extra_headers=[("recorded", "sansmidreg")],
    )
    header = stream.getvalue()
    assert header.startswith("# sansmidreg-trace 1\n# title: recorded run\n")
    assert stream.flushes == 1
    first = writer.write(1000.25, A, MID, REGISTER)
    second = writer.write(1000.2574, "udp:127.0.0.1:5060", UP, INVITE)
    assert (first.index, first.time, second.index, second.time) == (0, 0.0, 1, 0.007)
    assert stream.flushes == 3
    with pytest.raises(TraceFormatError):
        writer.write(1001.0, A, MID, b"bare\nLF\n\n")
    assert stream.flushes == 3
    trace = parse_trace(stream.getvalue())
    assert trace.title == "recorded run"
    assert trace.config_dict() == {"mode": "mirror"}
    assert [b.data for b in trace.blocks] == [REGISTER, INVITE]
    assert [trace.is_expectation(b) for b in trace.blocks] == [False, True]
    third = writer.write(1002.0, A, MID, REGISTER)
    assert third.index == 2 and third.time == 1.75


def test_trace_writer_time_origin_and_encoding() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    writer = TraceWriter(stream, "t", [], None, time_origin=10.0)
    assert writer.write(12.0, A, MID, REGISTER).time == 2.0
    with pytest.raises(TraceFormatError, match="cannot encode"):
        writer.write(13.0, A, MID, b"MESSAGE sip:x SIP/2.0\r\nl: 2\r\n\r\n\xc3\xa9")


# --- properties ---------------------------------------------------------------------------------

_LOWER = "abcdefghijklmnopqrstuvwxyz"


def _words(first: str, rest: str) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(first), st.text(first + rest, max_size=11)).map("".join)


_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: a.compressed),
    st.lists(st.text(_LOWER + "0123456789", min_size=1, max_size=8), min_size=1, max_size=3)
    .map(".".join)
    .filter(lambda h: not re.fullmatch(r"[0-9.]+", h)),
)
addresses = st.builds(
    TraceAddress, st.sampled_from(["udp", "tcp", "tls"]), _hosts, st.integers(0, 65535)
)
_line_text = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_header_lines = st.lists(
    st.tuples(
        _words(_LOWER + _LOWER.upper(), "-0123456789").filter(
            lambda name: name.lower() not in ("l", "content-length")
        ),
        _line_text,
    ),
    max_size=6,
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    start = draw(
        st.sampled_from(
            [
                b"REGISTER sip:example.test SIP/2.0",
                b"SIP/2.0 200 OK",
                b"INVITE sip:b@[::1]:5060;transport=tcp SIP/2.0",
            ]
        )
    )
    headers = [name.encode() + b": " + value for name, value in draw(_header_lines)]
    body = b"\r\n".join(draw(st.lists(_line_text, max_size=6)))
    if body and draw(st.booleans()):
        body += b"\r\n"
    if draw(st.booleans()) or body:
        compact = draw(st.booleans())
        headers.append((b"l: " if compact else b"Content-Length: ") + str(len(body)).encode())
    return start + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


_times = st.one_of(
    st.integers(0, 10**8).map(lambda n: n / 1000),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
blocks = st.builds(TraceBlock, st.just(0), _times, addresses, addresses, messages())
_keys = _words(_LOWER, "0123456789_.-").filter(
    lambda k: k not in {"title", "mid-registrar", "upstream", "config", "time-tolerance"}
)
_values = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=20)


@given(
    title=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30),
    mid=st.lists(addresses, max_size=3),
    upstream=st.none() | addresses,
    config=st.lists(st.tuples(_keys, _values.filter(lambda v: "=" not in v)), max_size=4),
    tolerance=st.none() | st.floats(0, 100),
    extra=st.lists(st.tuples(_keys, _values), max_size=3),
    body=st.lists(blocks, max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_format_parse_round_trip(
    title: str,
    mid: list[TraceAddress],
    upstream: TraceAddress | None,
    config: list[tuple[str, str]],
    tolerance: float | None,
    extra: list[tuple[str, str]],
    body: list[TraceBlock],
) -> None:
    trace = Trace.build(
        title=title.strip(),
        mid=mid,
        upstream=upstream,
        config=config,
        time_tolerance=tolerance,
        extra_headers=extra,
        blocks=body,
    )
    text = format_trace(trace)
    again = parse_trace(text)
    assert again == trace
    assert [b.data for b in again.blocks] == [b.data for b in body]
    assert format_trace(again) == text
    assert parse_trace(text.replace("\n", "\r\n")) == trace


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_bytes_either_round_trip_or_are_refused(data: bytes) -> None:
    trace = Trace.build(blocks=[TraceBlock(0, 0.0, A, MID, data)])
    if is_representable(data):
        assert parse_trace(format_trace(trace)) == trace
    else:
        with pytest.raises(TraceFormatError):
            format_trace(trace)


@given(
    st.text(alphabet=st.sampled_from("@#:-> \n\r0123456789.abc[]LlContent-Length"), max_size=200)
)
@settings(max_examples=300, deadline=None)
def test_garbage_text_raises_only_trace_format_error(text: str) -> None:
    try:
        trace = parse_trace(text)
    except TraceFormatError:
        return
    assert parse_trace(format_trace(trace)) == trace
