"""Signature wrapping, replay, freshness and borrowed certificates (corplink.md §3, §7, §8).

§3: "Anything outside this profile (other algorithms, more references, XPath
transforms, ID-based references, comments anywhere in the document, a
Signature element anywhere but as the root's last child) is rejected with
2001 — except what the schema already refuses: a second Signature beside
the first breaks the fixed child order and gets 1003 (see the order of
checks, §8)."  The schema is strict (§2: "Unknown elements anywhere are a
schema violation (1003)"), so a Signature placed inside Body is refused by
the schema first: 1003.  Each variant starts from a correctly signed PAY and
is changed afterwards, as an attacker holding one signed message would.
Nothing refused here is journaled: a STATUS for the MsgId finds nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta

import pytest
from lxml import etree

from gateway.keys.xmldsig import EXC_C14N
from gateway.sim.erp import Reply
from tests.hostile.tools import Hostile, ds, msg_id, payment, q, to_bytes

XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


def _sig(root: etree._Element) -> etree._Element:
    sig = root.find(ds("Signature"))
    assert sig is not None
    return sig


def _ref(root: etree._Element) -> etree._Element:
    ref = _sig(root).find(f"{ds('SignedInfo')}/{ds('Reference')}")
    assert ref is not None
    return ref


def second_signature_beside(root: etree._Element) -> None:
    root.append(copy.deepcopy(_sig(root)))


def signature_before_body(root: etree._Element) -> None:
    sig = _sig(root)
    root.remove(sig)
    root.insert(1, sig)


def signature_moved_into_body(root: etree._Element) -> None:
    sig = _sig(root)
    root.remove(sig)
    body = root.find(q("Body"))
    assert body is not None
    body.append(sig)


def signature_copy_inside_transfer(root: etree._Element) -> None:
    transfer = root.find(f"{q('Body')}/{q('Transfer')}")
    assert transfer is not None
    transfer.append(copy.deepcopy(_sig(root)))


def id_based_reference(root: etree._Element) -> None:
    _ref(root).set("URI", "#Body")


def xpointer_reference(root: etree._Element) -> None:
    _ref(root).set("URI", "#xpointer(/)")


def second_reference(root: etree._Element) -> None:
    ref = _ref(root)
    ref.addnext(copy.deepcopy(ref))


def extra_xpath_transform(root: etree._Element) -> None:
    transforms = _ref(root).find(ds("Transforms"))
    assert transforms is not None
    t = etree.SubElement(transforms, ds("Transform"), Algorithm=XPATH)
    etree.SubElement(t, ds("XPath")).text = "not(ancestor-or-self::*[local-name()='Amount'])"


def extra_c14n_transform(root: etree._Element) -> None:
    transforms = _ref(root).find(ds("Transforms"))
    assert transforms is not None
    etree.SubElement(transforms, ds("Transform"), Algorithm=EXC_C14N)


def transforms_reordered(root: etree._Element) -> None:
    transforms = _ref(root).find(ds("Transforms"))
    assert transforms is not None
    first = transforms[0]
    transforms.remove(first)
    transforms.append(first)


def only_the_enveloped_transform(root: etree._Element) -> None:
    transforms = _ref(root).find(ds("Transforms"))
    assert transforms is not None
    for t in list(transforms):
        if t.get("Algorithm") != ENVELOPED:
            transforms.remove(t)


def comment_inside_signed_text(root: etree._Element) -> None:
    """The classic: C14N without comments gives the same digest, a naive reader
    sees only the text before the comment."""
    name = root.find(f"{q('Body')}/{q('Transfer')}/{q('PayeeAcct')}")
    assert name is not None and name.text
    keep, rest = name.text[:4], name.text[4:]
    name.text = keep
    comment = etree.Comment("x")
    comment.tail = rest
    name.append(comment)


def comment_between_elements(root: etree._Element) -> None:
    head = root.find(q("Head"))
    assert head is not None
    head.addnext(etree.Comment(" innocent "))


def processing_instruction_inside(root: etree._Element) -> None:
    body = root.find(q("Body"))
    assert body is not None
    body.insert(0, etree.ProcessingInstruction("x", "y"))


def object_wrapping(root: etree._Element) -> None:
    """The signed Body moved into ds:Object, an attacker's Body in its place."""
    sig = _sig(root)
    body = root.find(q("Body"))
    assert body is not None
    obj = etree.SubElement(sig, ds("Object"))
    obj.append(copy.deepcopy(body))
    amount = body.find(f"{q('Transfer')}/{q('Amount')}")
    assert amount is not None
    amount.text = "99999.00"


def sha1_digest(root: etree._Element) -> None:
    dm = _ref(root).find(ds("DigestMethod"))
    assert dm is not None
    dm.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")


def amount_changed(root: etree._Element) -> None:
    amount = root.find(f"{q('Body')}/{q('Transfer')}/{q('Amount')}")
    assert amount is not None
    amount.text = "99999.00"


WRAPPING: list[tuple[str, Callable[[etree._Element], None], str]] = [
    ("second Signature beside the first", second_signature_beside, "1003"),
    ("Signature before Body", signature_before_body, "1003"),
    ("Signature moved inside Body", signature_moved_into_body, "1003"),
    ("copy of the Signature inside Transfer", signature_copy_inside_transfer, "1003"),
    ("Id-based Reference", id_based_reference, "2001"),
    ("XPointer Reference", xpointer_reference, "2001"),
    ("two References", second_reference, "2001"),
    ("extra XPath transform", extra_xpath_transform, "2001"),
    ("extra exc-c14n transform", extra_c14n_transform, "2001"),
    ("transforms reordered", transforms_reordered, "2001"),
    ("enveloped transform only", only_the_enveloped_transform, "2001"),
    ("comment inside signed text", comment_inside_signed_text, "2001"),
    ("comment between signed elements", comment_between_elements, "2001"),
    ("processing instruction in signed content", processing_instruction_inside, "2001"),
    ("signed Body moved into ds:Object", object_wrapping, "2001"),
    ("SHA-1 digest", sha1_digest, "2001"),
    ("amount changed after signing", amount_changed, "2001"),
]


async def not_journaled(h: Hostile, mid: str) -> None:
    """STATUS for ``mid`` finds nothing: the refused request left no trace (§5, §8)."""
    c = await h.erp.client()
    try:
        r = await c.status(msg_id("S"), h.now(), mid)
        assert (r.ret_code, r.state) == ("0000", None), r.ret_msg
        assert "no request" in r.ret_msg
    finally:
        await c.close()


async def test_each_wrapping_variant_gets_its_code(hostile: Hostile) -> None:
    results: dict[str, tuple[str, str]] = {}
    mids = []
    for name, change, _code in WRAPPING:
        mid = msg_id("W")
        mids.append(mid)
        root = hostile.pay_tree(mid)
        change(root)
        reply = await hostile.exchange(to_bytes(root), "tls")
        results[name] = (reply.ret_code, reply.ret_msg)
    assert {n: r[0] for n, r in results.items()} == {n: code for n, _, code in WRAPPING}, results
    for mid in mids:
        await not_journaled(hostile, mid)
    await hostile.serves()


async def test_comment_before_the_root_element(hostile: Hostile) -> None:
    """ "comments anywhere in the document" (§3): outside the root too."""
    body = hostile.signed_pay()
    decl_end = body.index(b"?>") + 2
    reply = await hostile.exchange(body[:decl_end] + b"<!-- hi -->" + body[decl_end:])
    assert reply.ret_code == "2001"
    await hostile.serves()


async def test_replay_with_different_content_is_3001(hostile: Hostile) -> None:
    mid = msg_id("R")
    sent = hostile.now()
    first = await hostile.exchange(hostile.signed_pay(mid, send_time=sent, amount="10.00"))
    assert first.ret_code == "0000"
    other = await hostile.exchange(hostile.signed_pay(mid, send_time=sent, amount="10.01"))
    assert (other.ret_code, other.msg_id, other.gw_ref) == ("3001", mid, None)
    again = await hostile.exchange(hostile.signed_pay(mid, send_time=sent, amount="10.00"))
    assert (again.ret_code, again.dup, again.gw_ref) == ("0000", True, first.gw_ref)
    await hostile.serves()


@pytest.mark.parametrize("skew", [301, -301, 86_400 * 365])
async def test_stale_or_future_sendtime_is_3002(hostile: Hostile, skew: int) -> None:
    mid = msg_id("T")
    reply = await hostile.exchange(
        hostile.signed_pay(mid, send_time=hostile.now() - timedelta(seconds=skew))
    )
    assert (reply.ret_code, reply.msg_id) == ("3002", mid)
    await not_journaled(hostile, mid)
    await hostile.serves()


async def test_certificate_of_another_corporate_is_2005(hostile: Hostile) -> None:
    """C100000002's operator signs a PAY in the name of C100000001."""
    mid = msg_id("X")
    body = hostile.signed_pay(mid, signer=hostile.signer("C100000002", "op01"))
    reply: Reply = await hostile.exchange(body, "tls")
    assert (reply.ret_code, reply.msg_id) == ("2005", mid)
    await not_journaled(hostile, mid)
    # and over mutual TLS with the other corporate's client certificate
    c = await hostile.erp.client(
        "C100000001", "op01", key_cert=hostile.pki.client("C100000002", "op01")
    )
    try:
        r = await c.pay(msg_id("X"), hostile.now(), payment())
        assert r.ret_code == "2005"
    finally:
        await c.close()
    await hostile.serves()


async def test_unsigned_request_is_refused(hostile: Hostile) -> None:
    """No Signature at all: the schema requires it as the root's last child (1003)."""
    reply = await hostile.exchange(to_bytes(hostile.pay_tree(sign=False)))
    assert reply.ret_code == "1003"
    await hostile.serves()


# -- corrupted certificates in KeyInfo (found by tests/hostile/test_fuzz_properties.py) --
#
# KeyInfo is not covered by the signature, so anyone can change its bytes.  A
# certificate whose public key cannot be loaded cannot verify the
# SignatureValue: 2001 (§3, "signature value", as for a certificate that is
# not DER at all).  One whose key is intact but whose other fields are
# corrupted verifies the signature and then fails its chain: 2002.

EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")
DEV_USBKEY_POLICY = bytes.fromhex("060a2b0601040186 8d1f0101".replace(" ", ""))
AKI_OID, SKI_OID = bytes.fromhex("0603551d23"), bytes.fromhex("0603551d0e")


def _corrupt_point(der: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    bad = spki[:-1] + bytes([spki[-1] ^ 1])  # y no longer on the curve
    return der.replace(spki, bad, 1)


def _replace(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def change(der: bytes) -> bytes:
        assert old in der
        return der.replace(old, new, 1)

    return change


CORRUPT_CERTS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("public key not on the curve", _corrupt_point, "2001"),
    ("unknown key type", _replace(EC_PUBLIC_KEY_OID, EC_PUBLIC_KEY_OID[:-1] + b"\x02"), "2001"),
    (
        "invalid X.509 version",
        _replace(bytes.fromhex("a003020102"), bytes.fromhex("a003020122")),
        "2001",
    ),
    (
        "truncated policy OID",
        _replace(DEV_USBKEY_POLICY, DEV_USBKEY_POLICY[:-1] + b"\x81"),
        "2002",
    ),
    ("duplicate extension", _replace(AKI_OID, SKI_OID), "2002"),
]


@pytest.mark.parametrize(
    ("change", "code"),
    [(c, code) for _, c, code in CORRUPT_CERTS],
    ids=[n for n, _, _ in CORRUPT_CERTS],
)
async def test_corrupted_certificate_in_keyinfo(
    hostile: Hostile, change: Callable[[bytes], bytes], code: str
) -> None:
    import base64

    mid = msg_id("K")
    root = hostile.pay_tree(mid)
    cert_el = root.find(
        f"{ds('Signature')}/{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}"
    )
    assert cert_el is not None and cert_el.text
    cert_el.text = base64.b64encode(change(base64.b64decode(cert_el.text))).decode()
    reply = await hostile.exchange(to_bytes(root))
    assert (reply.ret_code, reply.msg_id) == (code, mid), reply.ret_msg
    await hostile.serves()
