"""corplink.md §3: corporate developers use off-the-shelf tools; both directions must work.

xmlsec1 (Debian 1.2.37) and signxml sign documents we verify, and verify
documents we sign, for RSA-2048 and EC P-256.  The ECDSA convention (raw
``r || s``, RFC 4050) is proven by xmlsec1 accepting ours and us accepting its.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from lxml import etree

from gateway.keys.devpki import DevPki, issue_client_cert, issue_intermediate_ca
from gateway.keys.trust import TrustStore
from gateway.keys.xmldsig import load_signing_key, sign_enveloped, verify_enveloped
from gateway.model import CredentialKind

from .docs import ECDSA_SHA256, PARSER, RSA_SHA256, ds, pay_doc, pay_xml, template, with_template

Run = Callable[..., Any]
KEY_TYPES = ["ec", "rsa"]

#: These tests check the chain, not revocation: no CRL is configured, which the
#: default policy refuses (gateway.keys.revocation).
NO_CRL_OK = "fail_open"


@pytest.fixture(params=KEY_TYPES)
def any_pki(request: pytest.FixtureRequest) -> DevPki:
    name = "pki" if request.param == "ec" else "pki_rsa"
    pki: DevPki = request.getfixturevalue(name)
    return pki


def _method(pki: DevPki) -> str:
    return ECDSA_SHA256 if pki.key_type == "ec" else RSA_SHA256


def test_xmlsec1_signs_we_verify(any_pki: DevPki, xmlsec1: Run, tmp_path: Path) -> None:
    key, cert = any_pki.client("C100000001", "op01")
    src, out = tmp_path / "tmpl.xml", tmp_path / "signed.xml"
    src.write_bytes(with_template(pay_xml(), template(method=_method(any_pki))))
    proc = xmlsec1("--sign", "--privkey-pem", f"{key},{cert}", "--output", out, src)
    assert proc.returncode == 0, proc.stderr
    root = etree.fromstring(out.read_bytes(), PARSER)
    assert root[-1].tail == "\n"  # xmlsec1 keeps the text after the template
    verified = verify_enveloped(root)
    assert verified.signer == load_signing_key(key, cert).chain[0]
    TrustStore([x509_ca(any_pki)], stale_crl_policy=NO_CRL_OK).check(
        verified.certificates, any_pki.now
    )
    value = base64.b64decode(root.findtext(f".//{ds('SignatureValue')}") or "")
    assert len(value) == (64 if any_pki.key_type == "ec" else 256)


def test_we_sign_xmlsec1_verifies(any_pki: DevPki, xmlsec1: Run, tmp_path: Path) -> None:
    root = pay_doc()
    sign_enveloped(root, load_signing_key(*any_pki.client("C100000001", "op01")))
    out = tmp_path / "ours.xml"
    out.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    proc = xmlsec1("--verify", "--trusted-pem", any_pki.client_ca, out)
    assert proc.returncode == 0, proc.stderr
    # and xmlsec1 notices tampering, so the check above means something
    out.write_bytes(out.read_bytes().replace(b">12.00<", b">12000.00<"))
    assert xmlsec1("--verify", "--trusted-pem", any_pki.client_ca, out).returncode != 0


def test_xmlsec1_chain_signer_first(pki: DevPki, xmlsec1: Run, tmp_path: Path) -> None:
    """With an intermediate CA: ``--privkey-pem key,signer.pem,intermediate.pem``."""
    sub_key, sub_cert = issue_intermediate_ca(pki)
    key, cert = issue_client_cert(
        pki, "C100000001", "op01", CredentialKind.USBKEY, issuer=(sub_key, sub_cert)
    )
    src, out = tmp_path / "tmpl.xml", tmp_path / "signed.xml"
    src.write_bytes(with_template(pay_xml(), template()))
    proc = xmlsec1("--sign", "--privkey-pem", f"{key},{cert},{sub_cert}", "--output", out, src)
    assert proc.returncode == 0, proc.stderr
    verified = verify_enveloped(etree.fromstring(out.read_bytes(), PARSER))
    assert len(verified.certificates) == 2
    TrustStore([x509_ca(pki)], stale_crl_policy=NO_CRL_OK).check(verified.certificates, pki.now)


def test_signxml_signs_we_verify(any_pki: DevPki) -> None:
    signxml = pytest.importorskip("signxml")
    key, cert = any_pki.client("C100000001", "op01")
    signer = signxml.XMLSigner(
        method=signxml.SignatureConstructionMethod.enveloped,
        signature_algorithm=(
            signxml.SignatureMethod.ECDSA_SHA256
            if any_pki.key_type == "ec"
            else signxml.SignatureMethod.RSA_SHA256
        ),
        digest_algorithm=signxml.DigestAlgorithm.SHA256,
        c14n_algorithm=signxml.CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(pay_doc(), key=key.read_bytes(), cert=cert.read_bytes())
    root = etree.fromstring(etree.tostring(signed), PARSER)
    verified = verify_enveloped(root)
    assert verified.signed_root.findtext(".//{urn:corplink:1}Amount") == "12.00"


def test_signxml_verifies_ours(any_pki: DevPki) -> None:
    signxml = pytest.importorskip("signxml")
    key, cert = any_pki.client("C100000001", "op01")
    root = pay_doc()
    sign_enveloped(root, load_signing_key(key, cert))
    method = (
        signxml.SignatureMethod.ECDSA_SHA256
        if any_pki.key_type == "ec"
        else signxml.SignatureMethod.RSA_SHA256
    )
    result = signxml.XMLVerifier().verify(
        etree.tostring(root),
        x509_cert=cert.read_text(),
        expect_config=signxml.SignatureConfiguration(
            signature_methods=frozenset({method}),
            digest_algorithms=frozenset({signxml.DigestAlgorithm.SHA256}),
        ),
    )
    assert result.signed_xml.findtext(".//{urn:corplink:1}Amount") == "12.00"


def x509_ca(pki: DevPki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.client_ca.read_bytes())
