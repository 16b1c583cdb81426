"""The CorpLink XMLDSig profile, both directions (docs/protocol.md §3, docs/clearing-link.md §3).

The profile is a strict subset of W3C XML-Signature 1.1: one enveloped
``ds:Signature`` as the root's last child, exclusive C14N, RSA-SHA256
(RSA >= 2048) or ECDSA-SHA256 (P-256, raw ``r || s``), exactly one
``Reference URI=""`` with the transforms enveloped-signature then exc-c14n,
SHA-256 digests, and the signer's certificate (then intermediates) in
``KeyInfo/X509Data``.  Anything else is refused with 2001 — that is what
closes signature wrapping: a verifier that accepts more can be made to check
one element while business logic reads another.

Hand-written on lxml + cryptography rather than signxml: it is several times
faster and it refuses everything outside the profile by construction.
Business logic must read only ``Verified.signed_root``, the document
re-parsed from the very canonical bytes the digest covered (docs/architecture.md §9, "XML
and signatures").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from gateway.errors import ConfigError, GatewayError, RetCode

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

#: docs/protocol.md §3: RSA keys below this size are outside the profile.
MIN_RSA_BITS = 2048
#: docs/protocol.md §3: ECDSA P-256 values are raw ``r || s``, 32 bytes each (RFC 4050/6931).
ECDSA_P256_VALUE_LEN = 64
#: Our bound on KeyInfo certificates (signer + intermediates, docs/protocol.md §3):
#: a path longer than trust.MAX_PATH_LEN is useless, and each one costs a DER parse.
MAX_KEYINFO_CERTS = 8

_SIG = f"{{{DS_NS}}}Signature"
_SIGNED_INFO = f"{{{DS_NS}}}SignedInfo"
_C14N_METHOD = f"{{{DS_NS}}}CanonicalizationMethod"
_SIG_METHOD = f"{{{DS_NS}}}SignatureMethod"
_REFERENCE = f"{{{DS_NS}}}Reference"
_TRANSFORMS = f"{{{DS_NS}}}Transforms"
_TRANSFORM = f"{{{DS_NS}}}Transform"
_DIGEST_METHOD = f"{{{DS_NS}}}DigestMethod"
_DIGEST_VALUE = f"{{{DS_NS}}}DigestValue"
_SIG_VALUE = f"{{{DS_NS}}}SignatureValue"
_KEY_INFO = f"{{{DS_NS}}}KeyInfo"
_X509_DATA = f"{{{DS_NS}}}X509Data"
_X509_CERT = f"{{{DS_NS}}}X509Certificate"

_SIGNATURE_CHILDREN = (_SIGNED_INFO, _SIG_VALUE, _KEY_INFO)
_SIGNED_INFO_CHILDREN = (_C14N_METHOD, _SIG_METHOD, _REFERENCE)
_REFERENCE_CHILDREN = (_TRANSFORMS, _DIGEST_METHOD, _DIGEST_VALUE)
_PROFILE_TRANSFORMS = (ENVELOPED, EXC_C14N)

_ECDSA = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


@dataclass(frozen=True)
class SigningKey:
    """A private key with its certificate chain (signer certificate first)."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class Verified:
    """The outcome of a successful profile verification.

    ``signed_root`` is the document re-parsed from the canonical bytes the
    digest covered (the Signature removed): the only tree business logic may
    read.  ``certificates`` come from ``KeyInfo``, signer first; they are not
    yet trusted (see ``gateway.keys.trust``).
    """

    signed_root: etree._Element
    certificates: tuple[x509.Certificate, ...]

    @property
    def signer(self) -> x509.Certificate:
        return self.certificates[0]


# --------------------------------------------------------------------------- keys


def _check_key(key: object, where: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{where}: RSA key below {MIN_RSA_BITS} bits (docs/protocol.md §3)")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"{where}: EC key is not P-256 (docs/protocol.md §3)")
        return key
    raise ConfigError(f"{where}: key type outside the profile (RSA or EC P-256 only)")


def load_signing_key(
    key_path: Path, cert_path: Path, passphrase: bytes | None = None
) -> SigningKey:
    """Load a PEM private key (PKCS#8, optionally encrypted) and its PEM certificate chain.

    The certificate file may hold the signer certificate followed by
    intermediates.  Raises ``ConfigError`` naming the file (never the key
    material) when a file is unreadable, the key is outside the profile, or
    the key does not match the first certificate.
    """
    try:
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key_path}: cannot read key file ({exc.strerror})") from None
    try:
        cert_pem = cert_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{cert_path}: cannot read certificate file ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=passphrase)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{key_path}: not a PEM private key, or wrong/missing passphrase"
        ) from None
    except Exception:  # noqa: BLE001 - any backend failure must not leak key material
        raise ConfigError(f"{key_path}: cannot load private key") from None
    checked = _check_key(key, str(key_path))
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_pem))
    except ValueError:
        raise ConfigError(f"{cert_path}: not a PEM certificate file") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*spki) != checked.public_key().public_bytes(*spki):
        raise ConfigError(f"{cert_path}: first certificate does not match key {key_path.name}")
    return SigningKey(checked, chain)


# ------------------------------------------------------------------ canonical form


def _canonical_without(root: etree._Element, sig: etree._Element) -> bytes:
    """Exclusive C14N of ``root`` with ``sig`` removed (the enveloped transform).

    Detaches the Signature for the duration of the call instead of deep-copying
    the tree; the text that followed the Signature stays in the document, as
    the enveloped-signature transform removes only the element (XMLDSig §6.6.4).
    The tree is restored before returning.
    """
    tail = sig.tail
    prev = sig.getprevious()
    prev_tail = prev.tail if prev is not None else None
    root_text = root.text
    index = root.index(sig)
    root.remove(sig)  # lxml moves the tail along with the element
    try:
        if tail:
            if prev is not None:
                prev.tail = (prev_tail or "") + tail
            else:
                root.text = (root_text or "") + tail
        return etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    finally:
        if prev is not None:
            prev.tail = prev_tail
        else:
            root.text = root_text
        root.insert(index, sig)
        sig.tail = tail


def _canonical(elem: etree._Element) -> bytes:
    return etree.tostring(elem, method="c14n", exclusive=True, with_comments=False)


_local = threading.local()


def _hardened_parser() -> etree.XMLParser:
    """One hardened parser per thread (lxml parsers are not thread-safe)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=False,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


# ------------------------------------------------------------------------ signing


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@lru_cache(maxsize=64)
def _cert_b64(cert: x509.Certificate) -> str:
    return _b64(cert.public_bytes(serialization.Encoding.DER))


def _raw_signature(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _PKCS1, _SHA256)
    r, s = decode_dss_signature(key.sign(data, _ECDSA))
    half = ECDSA_P256_VALUE_LEN // 2
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def sign_enveloped(root: etree._Element, signer: SigningKey) -> None:
    """Append a profile ``ds:Signature`` as the last child of ``root``, in place.

    docs/protocol.md §3: exc-c14n, rsa-sha256 or ecdsa-sha256 (raw r||s), one
    ``Reference URI=""`` with enveloped-signature then exc-c14n, SHA-256, and
    every certificate of ``signer.chain`` in ``KeyInfo/X509Data``.  Raises
    ``ValueError`` if ``root`` already holds a Signature (a programming error).
    """
    if next(root.iter(_SIG), None) is not None:
        raise ValueError("document already holds a ds:Signature")
    digest = hashlib.sha256(_canonical(root)).digest()
    method = RSA_SHA256 if isinstance(signer.key, rsa.RSAPrivateKey) else ECDSA_SHA256

    sig = etree.SubElement(root, _SIG, nsmap={"ds": DS_NS})
    signed_info = etree.SubElement(sig, _SIGNED_INFO)
    etree.SubElement(signed_info, _C14N_METHOD, Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _SIG_METHOD, Algorithm=method)
    ref = etree.SubElement(signed_info, _REFERENCE, URI="")
    transforms = etree.SubElement(ref, _TRANSFORMS)
    for algorithm in _PROFILE_TRANSFORMS:
        etree.SubElement(transforms, _TRANSFORM, Algorithm=algorithm)
    etree.SubElement(ref, _DIGEST_METHOD, Algorithm=SHA256)
    etree.SubElement(ref, _DIGEST_VALUE).text = _b64(digest)
    sig_value = etree.SubElement(sig, _SIG_VALUE)
    x509_data = etree.SubElement(etree.SubElement(sig, _KEY_INFO), _X509_DATA)
    for cert in signer.chain:
        etree.SubElement(x509_data, _X509_CERT).text = _cert_b64(cert)
    sig_value.text = _b64(_raw_signature(signer.key, _canonical(signed_info)))


# ---------------------------------------------------------------------- verifying


def _fail(detail: str) -> GatewayError:
    return GatewayError(RetCode.SIGNATURE_INVALID, detail)


def _children(elem: etree._Element, expected: tuple[str, ...], name: str) -> list[etree._Element]:
    kids = list(elem)
    if tuple(k.tag for k in kids) != expected:
        raise _fail(f"{name} content outside the profile")
    return kids


def _algorithm(elem: etree._Element, allowed: tuple[str, ...], name: str) -> str:
    algorithm = elem.get("Algorithm")
    if algorithm not in allowed:
        raise _fail(f"{name} algorithm outside the profile")
    if len(elem):
        raise _fail(f"{name} parameters outside the profile")
    return algorithm


def _b64decode(elem: etree._Element, name: str) -> bytes:
    text = elem.text or ""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{name} is not base64") from None


@lru_cache(maxsize=4096)
def _load_der(der: bytes) -> x509.Certificate:
    """A KeyInfo certificate, fully readable or refused (2001).

    KeyInfo is not covered by the signature, so these bytes are the sender's
    to choose: anything cryptography cannot parse (bad DER, version, key
    algorithm) is outside the profile, never an internal error.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.public_key()
    except Exception:  # noqa: BLE001 - InvalidVersion, UnsupportedAlgorithm, ValueError, ...
        raise _fail("X509Certificate is not a readable DER certificate") from None
    return cert


def _certificates(key_info: etree._Element) -> tuple[x509.Certificate, ...]:
    x509_data = _children(key_info, (_X509_DATA,), "KeyInfo")[0]
    nodes = list(x509_data)
    if not nodes or any(n.tag != _X509_CERT for n in nodes):
        raise _fail("KeyInfo/X509Data must hold X509Certificate elements only")
    if len(nodes) > MAX_KEYINFO_CERTS:
        raise _fail(f"more than {MAX_KEYINFO_CERTS} certificates in KeyInfo")
    certs = []
    for node in nodes:
        der = _b64decode(node, "X509Certificate")
        try:
            certs.append(_load_der(der))
        except ValueError:
            raise _fail("X509Certificate is not a DER certificate") from None
    return tuple(certs)


def _check_no_foreign_nodes(root: etree._Element) -> None:
    """docs/protocol.md §3: no comments (nor PIs, DTDs, entity references) anywhere in the
    document."""
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        raise _fail("DOCTYPE not allowed in a signed document")
    doc_root = tree.getroot()
    if doc_root.getprevious() is not None or doc_root.getnext() is not None:
        raise _fail("comment or processing instruction outside the root element")
    for _node in doc_root.iter(etree.Comment, etree.ProcessingInstruction, etree.Entity):
        raise _fail("comment or processing instruction in the document")


def _verify_value(cert: x509.Certificate, method: str, value: bytes, data: bytes) -> None:
    public_key = cert.public_key()
    try:
        if method == RSA_SHA256:
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise _fail("SignatureMethod does not match the certificate key")
            if public_key.key_size < MIN_RSA_BITS:
                raise _fail(f"RSA key below {MIN_RSA_BITS} bits")
            public_key.verify(value, data, _PKCS1, _SHA256)
            return
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise _fail("SignatureMethod does not match the certificate key")
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise _fail("EC key is not P-256")
        if len(value) != ECDSA_P256_VALUE_LEN:
            raise _fail("ECDSA SignatureValue is not 64 bytes (raw r||s)")
        half = ECDSA_P256_VALUE_LEN // 2
        r = int.from_bytes(value[:half], "big")
        s = int.from_bytes(value[half:], "big")
        public_key.verify(encode_dss_signature(r, s), data, _ECDSA)
    except InvalidSignature:
        raise _fail("SignatureValue does not verify") from None


def verify_enveloped(root: etree._Element) -> Verified:
    """Verify ``root`` against the profile of docs/protocol.md §3; 2001 for any deviation.

    Checks, in order: no comments/PIs anywhere; exactly one ``ds:Signature``
    and it is the root's last child; the exact Signature/SignedInfo/Reference
    structure and algorithms; the certificates in KeyInfo; the digest over
    the exc-c14n of the document without the Signature; the SignatureValue
    over the exc-c14n of SignedInfo with the first certificate's key.  The
    certificates are NOT checked for trust here (``trust.TrustStore``).
    ``root`` is left as it was.
    """
    _check_no_foreign_nodes(root)
    sigs = list(root.iter(_SIG))
    if not sigs:
        raise _fail("ds:Signature missing")
    if len(sigs) > 1:
        raise _fail("more than one ds:Signature in the document")
    sig = sigs[0]
    if sig.getparent() is not root or root[-1] is not sig:
        raise _fail("ds:Signature is not the last child of the root element")

    signed_info, sig_value_el, key_info = _children(sig, _SIGNATURE_CHILDREN, "Signature")
    kids = list(signed_info)
    if sum(1 for k in kids if k.tag == _REFERENCE) > 1:
        raise _fail("more than one Reference")
    c14n_el, method_el, ref = _children(signed_info, _SIGNED_INFO_CHILDREN, "SignedInfo")
    _algorithm(c14n_el, (EXC_C14N,), "CanonicalizationMethod")
    method = _algorithm(method_el, (RSA_SHA256, ECDSA_SHA256), "SignatureMethod")
    if ref.get("URI") != "":
        raise _fail('Reference URI must be ""')
    transforms_el, digest_method_el, digest_value_el = _children(
        ref, _REFERENCE_CHILDREN, "Reference"
    )
    transforms = list(transforms_el)
    if len(transforms) != len(_PROFILE_TRANSFORMS) or any(t.tag != _TRANSFORM for t in transforms):
        raise _fail("Transforms must be enveloped-signature then exc-c14n")
    for transform, expected in zip(transforms, _PROFILE_TRANSFORMS, strict=True):
        _algorithm(transform, (expected,), "Transform")
    _algorithm(digest_method_el, (SHA256,), "DigestMethod")
    digest_value = _b64decode(digest_value_el, "DigestValue")
    sig_value = _b64decode(sig_value_el, "SignatureValue")
    certificates = _certificates(key_info)

    signed_bytes = _canonical_without(root, sig)
    if not hmac.compare_digest(hashlib.sha256(signed_bytes).digest(), digest_value):
        raise _fail("digest mismatch")
    _verify_value(certificates[0], method, sig_value, _canonical(signed_info))

    try:
        signed_root = etree.fromstring(signed_bytes, _hardened_parser())
    except etree.XMLSyntaxError:  # cannot happen for C14N output; refuse rather than trust
        raise _fail("signed content does not re-parse") from None
    return Verified(signed_root, certificates)


def verify_pinned(root: etree._Element, trusted: Sequence[x509.Certificate]) -> Verified:
    """As ``verify_enveloped``, and the signer must be one of ``trusted`` (DER-equal).

    docs/clearing-link.md §3: inbound clearing messages are verified against the
    clearing systems' configured certificates, not a CA.  A signature that
    verifies with any other certificate is refused with 2002.
    """
    verified = verify_enveloped(root)
    if verified.signer not in trusted:  # Certificate equality compares the DER bytes
        raise GatewayError(RetCode.CERT_UNTRUSTED, "signer is not a configured certificate")
    return verified


__all__ = [
    "DS_NS",
    "ECDSA_SHA256",
    "ENVELOPED",
    "EXC_C14N",
    "RSA_SHA256",
    "SHA256",
    "SigningKey",
    "Verified",
    "load_signing_key",
    "sign_enveloped",
    "verify_enveloped",
    "verify_pinned",
]
