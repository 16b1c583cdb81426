"""Properties of the whole desk (parse → schema → signature → credentials → typed request).

``Desk.inspect`` is what every frame body goes through in a worker process;
an exception there costs a 9999 at best.  For arbitrary bytes and for
mutations of a real signed PAY it must always return an ``Inspection``
holding either a request or a refusal with one of the spec's RetCodes
(corplink.md §8), and a refusal's detail never carries internals.  The
default run is a few seconds; ``-m slow`` runs many more examples.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.desk import Desk, Inspection
from gateway.errors import RetCode
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key, sign_enveloped
from gateway.server import desk_setup
from gateway.sim.erp import build_request, transfer_body
from tests.hostile.tools import FRIDAY_10, payment, to_bytes

REFUSALS = frozenset(RetCode) - {RetCode.OK}
PEER = "127.0.0.1"
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=5_000)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, dev_pki: DevPki) -> Desk:
    state = tmp_path_factory.mktemp("desk")
    cfg = load_config(
        None,
        {"environment": "test", "state_dir": str(state), "keys": {"dir": str(dev_pki.dir)}},
    )
    return Desk(desk_setup(cfg))


@pytest.fixture(scope="module")
def signed_pay(dev_pki: DevPki) -> bytes:
    root = build_request(
        "PAY", "C100000001", "op01", "FUZZ-1", FRIDAY_10, transfer_body(payment("12.34"))
    )
    sign_enveloped(root, load_signing_key(*dev_pki.client("C100000001", "op01")))
    return to_bytes(root)


def check(desk: Desk, body: bytes, now: datetime = FRIDAY_10) -> Inspection:
    ins = desk.inspect(body, PEER, now)
    assert isinstance(ins, Inspection)
    if ins.refusal is not None:
        assert ins.refusal.code in REFUSALS
        detail = ins.refusal.detail or ""
        for word in ("Traceback", "lxml", "Error", "Exception", tempfile.gettempdir(), "/work"):
            assert word not in detail, detail
    else:
        assert ins.request is not None or (ins.deferred is not None and ins.head is not None)
    return ins


def test_the_unmutated_request_passes(desk: Desk, signed_pay: bytes) -> None:
    ins = check(desk, signed_pay)
    assert ins.request is not None
    assert ins.refusal is None


# -- strategies ----------------------------------------------------------------

_SPLICES = st.sampled_from(
    [
        b"",
        b"<",
        b">",
        b"&",
        b"&amp;",
        b"&#0;",
        b"&#x110000;",
        b"<!--x-->",
        b"<![CDATA[x]]>",
        b"<?pi x?>",
        b"<!DOCTYPE x>",
        b'<!ENTITY e "x">',
        b"\x00",
        b"\xff",
        b"\xc3",
        b"\xef\xbb\xbf",
        b'xmlns="urn:other"',
        b'xmlns:ds="urn:other"',
        b"</Body>",
        b"<Body>",
        b"<ds:Signature>",
        b"</ds:Signature>",
        b'Id="x"',
        b"\r\n",
        b" " * 64,
        b"9" * 40,
    ]
)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """A few byte-level edits of ``base``: flips, deletions, duplications, splices."""
    data = bytearray(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not data:
            break
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        kind = draw(st.sampled_from(["flip", "delete", "duplicate", "splice", "truncate"]))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "delete":
            end = pos + draw(st.integers(min_value=1, max_value=32))
            del data[pos:end]
        elif kind == "duplicate":
            end = pos + draw(st.integers(min_value=1, max_value=64))
            data[pos:pos] = data[pos:end]
        elif kind == "splice":
            data[pos:pos] = draw(_SPLICES)
        else:
            del data[pos:]
    return bytes(data)


def _property_arbitrary(desk: Desk, body: bytes) -> None:
    check(desk, body)


def _property_mutated(desk: Desk, signed_pay: bytes, data: st.DataObject) -> None:
    body = data.draw(mutated(signed_pay))
    ins = check(desk, body)
    if body != signed_pay and ins.request is not None:
        # A changed byte that still verifies can only be outside the signed
        # content's canonical form (whitespace inside tags, quote style, ...).
        assert ins.request.head.msg_id == "FUZZ-1"


@FAST
@given(body=st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(desk: Desk, body: bytes) -> None:
    _property_arbitrary(desk, body)


@FAST
@given(data=st.data())
def test_mutated_signed_requests_never_raise(
    desk: Desk, signed_pay: bytes, data: st.DataObject
) -> None:
    _property_mutated(desk, signed_pay, data)


@pytest.mark.slow
@SLOW
@given(body=st.binary(max_size=65536))
def test_arbitrary_bytes_never_raise_long(desk: Desk, body: bytes) -> None:
    _property_arbitrary(desk, body)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_mutated_signed_requests_never_raise_long(
    desk: Desk, signed_pay: bytes, data: st.DataObject
) -> None:
    _property_mutated(desk, signed_pay, data)


def test_a_desk_survives_every_sample(desk: Desk) -> None:
    """The shipped samples (codecs/samples) go through without an exception."""
    samples = Path(__file__).resolve().parents[2] / "codecs" / "samples"
    for sample in sorted(samples.glob("*.xml")):
        check(desk, sample.read_bytes())
