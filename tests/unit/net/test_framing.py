"""corplink.md §1 framing, sans-IO: table tests and hypothesis properties."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.net.framing import (
    FrameDecoder,
    FrameError,
    check_header_prefix,
    encode_frame,
    parse_header,
)

MAX = 1_048_576


@pytest.mark.parametrize(
    ("header", "length"),
    [(b"00000001", 1), (b"00001234", 1234), (b"01048576", MAX)],
)
def test_valid_headers(header: bytes, length: int) -> None:
    assert parse_header(header, MAX) == length


@pytest.mark.parametrize(
    "header",
    [
        b"12ab5678",
        b" 1234567",  # int() would accept the space
        b"+1234567",  # ... and the sign
        b"1_234567",  # ... and the underscore
        b"1234567\n",
        "١٢٣٤".encode(),  # Arabic-Indic digits: 8 bytes, not ASCII digits
        b"1234567",  # 7 bytes
        b"123456789",  # 9 bytes
        b"",
        b"GET / HT",
        b"\x16\x03\x01\x02\x00\x01\x00\x01",  # a TLS ClientHello on a plain listener
    ],
)
def test_header_not_eight_ascii_digits(header: bytes) -> None:
    with pytest.raises(FrameError) as info:
        parse_header(header, MAX)
    assert info.value.reason == "header"


def test_length_above_limit() -> None:
    with pytest.raises(FrameError) as info:
        parse_header(b"01048577", MAX)
    assert info.value.reason == "length"
    with pytest.raises(FrameError) as info:
        parse_header(b"99999999", 16 * MAX)
    assert info.value.reason == "length"


def test_zero_length_is_refused_as_empty() -> None:
    with pytest.raises(FrameError) as info:
        parse_header(b"00000000", MAX)
    assert info.value.reason == "empty"


def test_prefix_check_refuses_early() -> None:
    check_header_prefix(b"")
    check_header_prefix(b"0001")
    with pytest.raises(FrameError):
        check_header_prefix(b"00x")


def test_encode_frame() -> None:
    assert encode_frame(b"<a/>") == b"00000004<a/>"
    assert encode_frame(b"") == b"00000000"


def test_encode_refuses_what_eight_digits_cannot_say() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return 100_000_000

    with pytest.raises(ValueError, match="8-digit"):
        encode_frame(Huge(b"x"))


def test_decoder_rejects_garbage_before_a_full_header() -> None:
    dec = FrameDecoder(MAX)
    with pytest.raises(FrameError) as info:
        dec.feed(b"GET")
    assert info.value.reason == "header"
    with pytest.raises(FrameError):  # the stream stays broken
        dec.feed(b"00000001x")


def test_decoder_refuses_oversize_without_buffering_the_body() -> None:
    dec = FrameDecoder(10)
    with pytest.raises(FrameError) as info:
        dec.feed(b"00000011" + b"x" * 5)
    assert info.value.reason == "length"
    assert dec.buffered == 0


def test_decoder_boundary_tracking() -> None:
    dec = FrameDecoder(MAX)
    assert dec.at_boundary
    assert dec.feed(b"0000") == []
    assert not dec.at_boundary
    assert dec.feed(b"0003ab") == []
    assert dec.buffered == 10
    assert dec.feed(b"c00000001z") == [b"abc", b"z"]
    assert dec.at_boundary


bodies = st.lists(st.binary(min_size=1, max_size=300), max_size=20)


@given(bodies=bodies, cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30))
def test_round_trip_any_chunking(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    dec = FrameDecoder(300)
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out.extend(dec.feed(stream[a:b]))
    assert out == bodies
    assert dec.at_boundary


@given(data=st.binary(max_size=200), chunk=st.integers(min_value=1, max_value=50))
def test_arbitrary_bytes_raise_only_frame_error(data: bytes, chunk: int) -> None:
    dec = FrameDecoder(64)
    reasons: list[str] = []
    try:
        for i in range(0, len(data), chunk):
            for body in dec.feed(data[i : i + chunk]):
                assert 1 <= len(body) <= 64
    except FrameError as exc:
        reasons.append(exc.reason)
    assert set(reasons) <= {"header", "length", "empty"}
    assert dec.buffered <= 64 + 8


@given(prefix=st.binary(min_size=8, max_size=8))
def test_parse_header_agrees_with_a_strict_regex(prefix: bytes) -> None:
    ok = re.fullmatch(rb"[0-9]{8}", prefix) is not None
    if ok and prefix != b"00000000":
        assert parse_header(prefix, 99_999_999) == int(prefix)
    else:
        with pytest.raises(FrameError) as info:
            parse_header(prefix, 99_999_999)
        assert info.value.reason == ("empty" if ok else "header")
