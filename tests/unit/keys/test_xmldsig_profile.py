"""corplink.md §3: the signature profile, and every way out of it answering 2001.

Where possible the hostile document carries a signature that is VALID under
plain XMLDSig (made by xmlsec1 or by re-signing), so the test shows that the
profile check — not a broken digest — is what refuses it.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import (
    SigningKey,
    load_signing_key,
    sign_enveloped,
    verify_enveloped,
    verify_pinned,
)
from tests.certs import self_signed_cert

from .docs import (
    ECDSA_SHA256,
    ECDSA_SHA384,
    ENVELOPED_T,
    EXC_C14N_T,
    INCL_C14N,
    PARSER,
    RSA_SHA1,
    RSA_SHA256,
    RSA_SHA512,
    SHA1,
    XPATH_T,
    ds,
    pay_doc,
    pay_xml,
    reparse,
    template,
    with_template,
)

Run = Callable[..., Any]


def signed(key: SigningKey, **kwargs: str) -> etree._Element:
    root = pay_doc(**kwargs)
    sign_enveloped(root, key)
    return reparse(root)


def refuse(root: etree._Element, fragment: str = "") -> GatewayError:
    with pytest.raises(GatewayError) as info:
        verify_enveloped(root)
    assert info.value.code is RetCode.SIGNATURE_INVALID
    assert fragment.lower() in (info.value.detail or "").lower()
    return info.value


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return self_signed_cert(key, "odd key", before=timedelta(hours=1), after=timedelta(days=1))


def write_pem(tmp_path: Path, name: str, key: object, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def xmlsec_sign(xmlsec1: Run, tmp_path: Path, xml: bytes, key: Path, cert: Path) -> etree._Element:
    src, out = tmp_path / "in.xml", tmp_path / "out.xml"
    src.write_bytes(xml)
    proc = xmlsec1("--sign", "--privkey-pem", f"{key},{cert}", "--output", out, src)
    assert proc.returncode == 0, proc.stderr
    return etree.fromstring(out.read_bytes(), PARSER)


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("which", ["op01", "op01_rsa"])
def test_round_trip_returns_signed_content_only(which: str, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(which)
    root = signed(key)
    before = etree.tostring(root)
    verified = verify_enveloped(root)
    assert etree.tostring(root) == before  # the caller's tree is left as it was
    assert verified.certificates == key.chain
    assert verified.signer == key.chain[0]
    assert next(verified.signed_root.iter(ds("Signature")), None) is None
    amount = verified.signed_root.findtext(".//{urn:corplink:1}Amount")
    assert amount == "12.00"


def test_signature_is_last_child_with_ds_prefix(op01: SigningKey) -> None:
    root = pay_doc()
    sign_enveloped(root, op01)
    assert root[-1].tag == ds("Signature")
    assert root[-1].prefix == "ds"
    with pytest.raises(ValueError, match="already"):
        sign_enveloped(root, op01)


def test_ecdsa_value_is_raw_r_s(op01: SigningKey) -> None:
    root = signed(op01)
    value = base64.b64decode(root.findtext(f".//{ds('SignatureValue')}") or "")
    assert len(value) == 64


def test_text_after_signature_is_part_of_the_signed_content(op01: SigningKey) -> None:
    """The enveloped transform removes the element only: its tail stays signed."""
    root = pay_doc()
    sign_enveloped(root, op01)  # signed content ends "</Body>\n</CorpLink>"
    body, sig = root[-2], root[-1]
    body.tail, sig.tail = None, "\n"  # same text, now after the Signature
    assert verify_enveloped(reparse(root))
    sig.tail = "\n  \n"  # whitespace is content in C14N: the digest changes
    refuse(reparse(root), "digest")


def test_pretty_printed_signature_verifies(op01: SigningKey) -> None:
    """Indentation inside ds:Signature (as tools write it) is harmless."""
    root = signed(op01)
    etree.indent(root[-1][2], space="  ", level=2)  # KeyInfo is not signed
    verify_enveloped(reparse(root))


# -------------------------------------------------------- algorithms (xmlsec1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"c14n": INCL_C14N}, "CanonicalizationMethod"),
        ({"method": ECDSA_SHA384}, "SignatureMethod"),
        ({"digest": SHA1}, "DigestMethod"),
        ({"transforms": ENVELOPED_T}, "Transforms"),
        ({"transforms": ENVELOPED_T + XPATH_T}, "Transform"),
        ({"transforms": XPATH_T + EXC_C14N_T}, "Transform"),
        ({"uris": ("", "")}, "more than one Reference"),
    ],
    ids=[
        "inclusive-c14n",
        "ecdsa-sha384",
        "sha1-digest",
        "no-c14n-transform",
        "xpath-transform",
        "xpath-instead-of-enveloped",
        "two-references",
    ],
)
def test_valid_xmlsec1_signature_outside_profile(
    kwargs: dict[str, object], fragment: str, pki: DevPki, xmlsec1: Run, tmp_path: Path
) -> None:
    xml = with_template(pay_xml(), template(**kwargs))  # type: ignore[arg-type]
    root = xmlsec_sign(xmlsec1, tmp_path, xml, *pki.client("C100000001", "op01"))
    # sanity: xmlsec1 itself accepts it as a valid XMLDSig signature
    out = tmp_path / "check.xml"
    out.write_bytes(etree.tostring(root))
    assert xmlsec1("--verify", "--trusted-pem", pki.client_ca, out).returncode == 0
    refuse(root, fragment)


@pytest.mark.parametrize("method", [RSA_SHA1, RSA_SHA512])
def test_other_rsa_methods(method: str, pki_rsa: DevPki, xmlsec1: Run, tmp_path: Path) -> None:
    xml = with_template(pay_xml(), template(method=method))
    root = xmlsec_sign(xmlsec1, tmp_path, xml, *pki_rsa.client("C100000001", "op01"))
    refuse(root, "SignatureMethod")


def test_rsa_below_2048_bits(xmlsec1: Run, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the hostile case
    paths = write_pem(tmp_path, "rsa1024", key, self_signed(key))
    xml = with_template(pay_xml(), template(method=RSA_SHA256))
    refuse(xmlsec_sign(xmlsec1, tmp_path, xml, *paths), "2048")
    # our own signer refuses to load such a key at all
    with pytest.raises(ConfigError, match="2048"):
        load_signing_key(*paths)


def test_ec_not_p256(xmlsec1: Run, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    paths = write_pem(tmp_path, "p384", key, self_signed(key))
    xml = with_template(pay_xml(), template(method=ECDSA_SHA256))
    refuse(xmlsec_sign(xmlsec1, tmp_path, xml, *paths), "P-256")
    with pytest.raises(ConfigError, match="P-256"):
        load_signing_key(*paths)


def test_method_must_match_key_type(op01: SigningKey) -> None:
    root = signed(op01)
    root.find(f".//{ds('SignatureMethod')}").set("Algorithm", RSA_SHA256)  # type: ignore[union-attr]
    refuse(root, "does not match")


def test_ecdsa_der_value_is_refused(op01: SigningKey) -> None:
    """A DER-encoded ECDSA value (what a naive signer writes) is not the profile's raw r||s."""
    root = signed(op01)
    node = root.find(f".//{ds('SignatureValue')}")
    assert node is not None
    raw = base64.b64decode(node.text or "")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    node.text = base64.b64encode(der).decode()
    refuse(root, "64 bytes")


# ------------------------------------------------------------- references


@pytest.mark.parametrize("uri", ["#head", "#xpointer(/)", "http://example.invalid/doc"])
def test_reference_uri_must_be_empty(uri: str, op01: SigningKey) -> None:
    root = signed(op01)
    root.find(f".//{ds('Reference')}").set("URI", uri)  # type: ignore[union-attr]
    refuse(root, "URI")


def test_reference_without_uri(op01: SigningKey) -> None:
    root = signed(op01)
    ref = root.find(f".//{ds('Reference')}")
    assert ref is not None
    del ref.attrib["URI"]
    refuse(root, "URI")


def test_transforms_reversed(op01: SigningKey) -> None:
    root = signed(op01)
    transforms = root.find(f".//{ds('Transforms')}")
    assert transforms is not None
    transforms.append(transforms[0])  # now exc-c14n, enveloped
    refuse(root, "Transform")


def test_transforms_three(op01: SigningKey) -> None:
    root = signed(op01)
    transforms = root.find(f".//{ds('Transforms')}")
    assert transforms is not None
    transforms.append(copy.deepcopy(transforms[1]))
    refuse(root, "Transforms")


def test_transform_with_inclusive_namespaces_parameter(op01: SigningKey) -> None:
    root = signed(op01)
    transform = root.findall(f".//{ds('Transform')}")[1]
    etree.SubElement(
        transform, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces", PrefixList="ds"
    )
    refuse(root, "parameters")


def test_object_element_in_signature(op01: SigningKey) -> None:
    root = signed(op01)
    etree.SubElement(root[-1], ds("Object")).text = "payload"
    refuse(root, "Signature")


# ----------------------------------------------------------------- comments


@pytest.mark.parametrize(
    "where",
    ["inside-text", "inside-body", "before-root", "after-root", "pi-before-root", "pi-inside"],
)
def test_comments_and_pis_anywhere_are_refused(where: str, op01: SigningKey) -> None:
    """A comment does not change the digest (URI="" drops comments), so it must be refused."""
    root = signed(op01)
    xml = etree.tostring(root)
    edits = {
        "inside-text": (b"6222999900001234", b"62229999<!-- -->00001234"),
        "inside-body": (b"<Body>", b"<Body><!-- note -->"),
        "pi-inside": (b"<Body>", b"<Body><?erp hint?>"),
    }
    if where in edits:
        old, new = edits[where]
        xml = xml.replace(old, new, 1)
    elif where == "before-root":
        xml = b"<!-- hi -->\n" + xml
    elif where == "after-root":
        xml = xml + b"\n<!-- bye -->"
    else:
        xml = b"<?erp hint?>\n" + xml
    hostile = etree.fromstring(xml, PARSER)
    if where == "inside-text":  # plain XMLDSig would accept this one
        stripped = etree.fromstring(xml, etree.XMLParser(remove_comments=True))
        verify_enveloped(stripped)
    refuse(hostile, "comment")


def test_doctype_and_entity_references_are_refused(op01: SigningKey) -> None:
    xml = etree.tostring(signed(op01))
    refuse(etree.fromstring(b"<!DOCTYPE CorpLink>" + xml, PARSER), "DOCTYPE")
    with_entity = b'<!DOCTYPE CorpLink [<!ENTITY e "x">]>' + xml.replace(b"<Body>", b"<Body>&e;", 1)
    refuse(etree.fromstring(with_entity, PARSER), "DOCTYPE")


# ------------------------------------------------------- Signature placement


def test_signature_missing(op01: SigningKey) -> None:
    refuse(pay_doc(), "missing")


def test_signature_first_child(op01: SigningKey) -> None:
    root = signed(op01)
    root.insert(0, root[-1])  # still a valid enveloped signature under plain XMLDSig
    refuse(root, "last child")


def test_signature_nested_in_body(op01: SigningKey) -> None:
    root = signed(op01)
    body = root.find("{urn:corplink:1}Body")
    assert body is not None
    body.append(root[-1])
    refuse(root, "last child")


def test_second_signature_nested(op01: SigningKey) -> None:
    root = signed(op01)
    body = root.find("{urn:corplink:1}Body")
    assert body is not None
    body.append(copy.deepcopy(root[-1]))
    refuse(root, "more than one")


def test_two_signatures_at_the_end(op01: SigningKey) -> None:
    root = signed(op01)
    root.append(copy.deepcopy(root[-1]))
    refuse(root, "more than one")


def test_wrapping_attack_reference_to_moved_original(op01: SigningKey) -> None:
    """Classic wrapping: the original signed Body hidden in an Object, a new Body shown."""
    root = signed(op01)
    sig = root[-1]
    obj = etree.SubElement(sig, ds("Object"))
    original_body = root.find("{urn:corplink:1}Body")
    assert original_body is not None
    obj.append(copy.deepcopy(original_body))
    original_body.find(".//{urn:corplink:1}Amount").text = "99999.00"  # type: ignore[union-attr]
    refuse(root)


# ----------------------------------------------------------------- KeyInfo


def _key_info(root: etree._Element) -> etree._Element:
    node = root.find(f".//{ds('KeyInfo')}")
    assert node is not None
    return node


def test_keyinfo_missing(op01: SigningKey) -> None:
    root = signed(op01)
    root[-1].remove(_key_info(root))
    refuse(root, "Signature")


def test_keyinfo_without_certificate(op01: SigningKey) -> None:
    root = signed(op01)
    data = _key_info(root)[0]
    for cert in list(data):
        data.remove(cert)
    refuse(root, "X509Certificate")


def test_keyinfo_with_too_many_certificates(op01: SigningKey) -> None:
    root = signed(op01)
    data = _key_info(root)[0]
    for _ in range(8):
        data.append(copy.deepcopy(data[0]))
    refuse(root, "more than 8")


def test_keyinfo_with_key_value_only(op01: SigningKey) -> None:
    root = signed(op01)
    info = _key_info(root)
    info.remove(info[0])
    etree.SubElement(info, ds("KeyValue"))
    refuse(root, "KeyInfo")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("not base64 at all!", "base64"), (base64.b64encode(b"\x30\x03junk").decode(), "DER")],
)
def test_bad_embedded_certificate(text: str, fragment: str, op01: SigningKey) -> None:
    root = signed(op01)
    _key_info(root)[0][0].text = text
    refuse(root, fragment)


def test_certificate_of_someone_else(op01: SigningKey, pki: DevPki) -> None:
    """Swapping in another certificate (KeyInfo is unsigned) breaks the value check."""
    other = load_signing_key(*pki.client("C100000002", "op01"))
    root = signed(op01)
    _key_info(root)[0][0].text = base64.b64encode(
        other.chain[0].public_bytes(serialization.Encoding.DER)
    ).decode()
    refuse(root, "does not verify")


# -------------------------------------------------------- digest and value


def test_digest_mismatch(op01: SigningKey) -> None:
    root = signed(op01)
    root.find(".//{urn:corplink:1}Amount").text = "12000.00"  # type: ignore[union-attr]
    refuse(root, "digest")


def test_signature_value_mismatch(op01_rsa: SigningKey) -> None:
    root = signed(op01_rsa)
    node = root.find(f".//{ds('SignatureValue')}")
    assert node is not None
    value = bytearray(base64.b64decode(node.text or ""))
    value[10] ^= 0x01
    node.text = base64.b64encode(bytes(value)).decode()
    refuse(root, "does not verify")


def test_signed_info_changed_after_signing(op01: SigningKey) -> None:
    """A matching digest for altered content, but SignedInfo no longer carries the signature."""
    root = signed(op01)
    root.find(".//{urn:corplink:1}Amount").text = "12000.00"  # type: ignore[union-attr]
    sig = root[-1]
    root.remove(sig)
    digest = sha256(etree.tostring(root, method="c14n", exclusive=True)).digest()
    root.append(sig)
    sig.find(f".//{ds('DigestValue')}").text = base64.b64encode(digest).decode()  # type: ignore[union-attr]
    refuse(root, "does not verify")


def test_bad_base64_values(op01: SigningKey) -> None:
    root = signed(op01)
    root.find(f".//{ds('SignatureValue')}").text = "%%%"  # type: ignore[union-attr]
    refuse(root, "base64")
    root = signed(op01)
    root.find(f".//{ds('DigestValue')}").text = "%%%"  # type: ignore[union-attr]
    refuse(root, "base64")


def test_refusal_leaves_tree_unchanged(op01: SigningKey) -> None:
    root = signed(op01)
    root.find(".//{urn:corplink:1}Amount").text = "1.00"  # type: ignore[union-attr]
    before = etree.tostring(root)
    refuse(root, "digest")
    assert etree.tostring(root) == before


# ------------------------------------------------------------------ pinned


def test_verify_pinned(pki: DevPki) -> None:
    system = load_signing_key(pki.clearing_system_key, pki.clearing_system_cert)
    gateway = load_signing_key(pki.clearing_key, pki.clearing_cert)
    root = signed(system)
    assert verify_pinned(root, [gateway.chain[0], system.chain[0]]).signer == system.chain[0]
    with pytest.raises(GatewayError) as info:
        verify_pinned(signed(gateway), [system.chain[0]])
    assert info.value.code is RetCode.CERT_UNTRUSTED
    tampered = signed(system)
    tampered.find(".//{urn:corplink:1}Amount").text = "1.00"  # type: ignore[union-attr]
    with pytest.raises(GatewayError) as info:
        verify_pinned(tampered, [system.chain[0]])
    assert info.value.code is RetCode.SIGNATURE_INVALID


# ----------------------------------------------------------- load_signing_key


def test_load_signing_key_errors(pki: DevPki, tmp_path: Path) -> None:
    key, cert = pki.client("C100000001", "op01")
    _, other_cert = pki.client("C100000002", "op01")
    with pytest.raises(ConfigError, match="does not match"):
        load_signing_key(key, other_cert)
    with pytest.raises(ConfigError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key", cert)
    junk = tmp_path / "junk.key"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as info:
        load_signing_key(junk, cert)
    assert "AAAA" not in str(info.value)


def test_load_encrypted_key_and_chain(pki: DevPki, tmp_path: Path) -> None:
    key_path, cert_path = pki.client("C100000001", "op01")
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    enc = tmp_path / "enc.key"
    enc.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    chain = tmp_path / "chain.pem"
    chain.write_bytes(cert_path.read_bytes() + pki.client_ca.read_bytes())
    loaded = load_signing_key(enc, chain, b"s3cret")
    assert len(loaded.chain) == 2
    with pytest.raises(ConfigError, match="passphrase"):
        load_signing_key(enc, chain, b"wrong")
    root = signed(loaded)
    assert len(verify_enveloped(root).certificates) == 2
