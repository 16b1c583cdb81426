"""A differential certificate corpus: paths with CRLs, each with exactly one defect.

Built at test time with ``cryptography`` (once per session, ~1 s).  Material
that ``cryptography`` refuses to sign (MD5, SHA-1 certificate signatures) is
made by signing the TBS bytes with the issuer's key directly and swapping the
algorithm identifier, which is the same length for sha256/sha1/md5WithRSA.

Every CA on every path has a CRL unless the case is about CRLs, so that
``openssl verify -crl_check_all`` (the reference, which wants a CRL at every
level) judges only the defect.  The trust anchors are self-signed roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = Any  # rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
DAY = timedelta(days=1)

# AlgorithmIdentifier DER (with NULL parameters) of the RSA PKCS#1 v1.5 signatures.
_RSA_ALG = {
    "sha256": bytes.fromhex("300d06092a864886f70d01010b0500"),
    "sha1": bytes.fromhex("300d06092a864886f70d0101050500"),
    "md5": bytes.fromhex("300d06092a864886f70d0101040500"),
}
_WEAK_HASH = {"sha1": hashes.SHA1(), "md5": hashes.MD5()}  # noqa: S303 - the defects under test


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _seq(body: bytes) -> bytes:
    return b"\x30" + _der_len(len(body)) + body


def resign_weak(
    cert: x509.Certificate, issuer_key: rsa.RSAPrivateKey, digest: str
) -> x509.Certificate:
    """The same certificate, signed with ``digest`` (sha1/md5) WithRSAEncryption."""
    old, new = _RSA_ALG["sha256"], _RSA_ALG[digest]
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(old) == 1, "the TBS must name sha256WithRSAEncryption exactly once"
    tbs = tbs.replace(old, new)
    sig = issuer_key.sign(tbs, padding.PKCS1v15(), _WEAK_HASH[digest])
    bits = b"\x03" + _der_len(len(sig) + 1) + b"\x00" + sig
    return x509.load_der_x509_certificate(_seq(tbs + new + bits))


@dataclass
class Node:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: Key

    @property
    def name(self) -> x509.Name:
        return self.cert.subject


class Keys:
    """Keys of the corpus: RSA and odd curves made once (RSA generation is slow)."""

    def __init__(self) -> None:
        self.rsa2048 = [rsa.generate_private_key(65537, 2048) for _ in range(2)]
        self.rsa1024 = rsa.generate_private_key(65537, 1024)  # noqa: S505 - a defect under test
        self.p192 = ec.generate_private_key(ec.SECP192R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())

    @staticmethod
    def ec() -> Key:
        """A new P-256 key (~0.1 ms): no two certificates share one by accident."""
        return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "Corpus Bank") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _org(org: str) -> x509.Name:
    """The subtree C=CN, O=org (name constraints)."""
    return x509.Name(_name("x", org).rdns[:2])


def _ku(
    *, sign: bool = True, cert_sign: bool = False, crl_sign: bool = False, encipher: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


CA_KU = _ku(sign=False, cert_sign=True, crl_sign=True)
LEAF_KU = _ku()
UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


def issue(
    cn: str,
    key: Key,
    issuer: Node | None,
    now: datetime,
    *,
    org: str = "Corpus Bank",
    ca: bool = False,
    path_len: int | None = None,
    basic: bool = True,
    ku: x509.KeyUsage | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    issuer_name: x509.Name | None = None,
    digest: str = "sha256",
) -> Node:
    """One certificate that satisfies X509_STRICT unless a parameter says otherwise."""
    subject = _name(cn, org)
    signing_key = key if issuer is None else issuer.key
    iname = subject if issuer is None else (issuer_name or issuer.name)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(iname)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - 30 * DAY)
        .not_valid_after(not_after or now + 365 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if basic:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        b = b.add_extension(aki, critical=False)
    usage = ku if ku is not None else (CA_KU if ca else LEAF_KU)
    b = b.add_extension(usage, critical=True)
    if eku and not ca:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    cert = b.sign(signing_key, hashes.SHA256())
    if digest != "sha256":
        cert = resign_weak(cert, signing_key, digest)
    return Node(cert, key)


def crl_of(
    issuer: Node,
    now: datetime,
    revoked: Sequence[x509.Certificate] = (),
    *,
    last: datetime | None = None,
    next_: datetime | None = None,
    signing_key: Key | None = None,
) -> x509.CertificateRevocationList:
    last = last or now - DAY
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.name)
        .last_update(last)
        .next_update(next_ or now + 7 * DAY)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    for cert in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(last)
            .build()
        )
    return b.sign(signing_key or issuer.key, hashes.SHA256())


@dataclass
class Case:
    """One path: trust anchors, the signer, intermediates as KeyInfo carries them, CRLs."""

    name: str
    defect: str
    roots: list[x509.Certificate]
    leaf: Node
    untrusted: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    #: the defect is about revocation: the TLS path applies only with CRLs at the handshake
    revocation: bool = False
    #: the client can present this signer only in TLS 1.2: RFC 8446 §4.2.3 binds the
    #: TLS 1.3 ECDSA schemes to P-256/P-384/P-521 (docs/protocol.md §1 allows 1.2)
    tls12_only: bool = False
    dir: Path = Path()

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.leaf.cert, *self.untrusted]

    def write(self, base: Path) -> None:
        self.dir = base / self.name
        self.dir.mkdir(parents=True)
        pem = serialization.Encoding.PEM
        (self.dir / "roots.pem").write_bytes(b"".join(c.public_bytes(pem) for c in self.roots))
        (self.dir / "leaf.pem").write_bytes(self.leaf.cert.public_bytes(pem))
        (self.dir / "chain.pem").write_bytes(b"".join(c.public_bytes(pem) for c in self.chain))
        (self.dir / "leaf.key").write_bytes(
            self.leaf.key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        if self.untrusted:
            (self.dir / "untrusted.pem").write_bytes(
                b"".join(c.public_bytes(pem) for c in self.untrusted)
            )
        for i, crl in enumerate(self.crls):
            (self.dir / f"crl{i}.pem").write_bytes(crl.public_bytes(pem))

    @property
    def crl_paths(self) -> list[Path]:
        return [self.dir / f"crl{i}.pem" for i in range(len(self.crls))]


class Pki:
    """Shared CAs of the corpus; ``now`` is the instant every case is judged at."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.keys = Keys()
        self.root = issue("Corpus Root CA", self.keys.ec(), None, now, ca=True)
        self.inter = issue("Corpus Sub CA", self.keys.ec(), self.root, now, ca=True)
        self.other_root = issue("Other Root CA", self.keys.ec(), None, now, ca=True)
        self.rsa_root = issue("Corpus RSA Root CA", self.keys.rsa2048[0], None, now, ca=True)

    def crls(
        self, *cas: Node, revoked: Sequence[x509.Certificate] = ()
    ) -> list[x509.CertificateRevocationList]:
        """Fresh CRLs of ``cas``, each listing those of ``revoked`` it issued."""
        out = []
        for ca in cas:
            mine = [c for c in revoked if c.issuer == ca.name]
            out.append(crl_of(ca, self.now, mine))
        return out

    def leaf(self, issuer: Node, cn: str = "C100000001-op01", **kw: Any) -> Node:
        key = kw.pop("key", None) or self.keys.ec()
        return issue(cn, key, issuer, self.now, **kw)

    def two(self, name: str, defect: str, **leaf_kw: Any) -> Case:
        """leaf <- root, with the root's CRL."""
        leaf = self.leaf(self.root, **leaf_kw)
        return Case(name, defect, [self.root.cert], leaf, [], self.crls(self.root))

    def three(self, name: str, defect: str, inter: Node | None = None, **leaf_kw: Any) -> Case:
        """leaf <- intermediate <- root, with both CRLs."""
        inter = inter or self.inter
        leaf = self.leaf(inter, **leaf_kw)
        return Case(name, defect, [self.root.cert], leaf, [inter.cert], self.crls(self.root, inter))


def build_corpus(now: datetime) -> list[Case]:
    p = Pki(now)
    k = p.keys
    root, inter = p.root, p.inter
    cases: list[Case] = []
    add = cases.append

    # ---- valid controls
    add(p.two("valid-leaf-root", "none"))
    add(p.three("valid-leaf-intermediate", "none"))
    add(p.two("valid-rsa2048-leaf", "none", key=k.rsa2048[1]))
    add(p.two("valid-no-eku", "none (no EKU is any purpose)", eku=None))
    p384 = issue("Corpus P-384 Sub CA", k.p384, root, now, ca=True)
    add(p.three("valid-p384-intermediate", "none", inter=p384))
    i1 = issue("Corpus Sub CA L1", k.ec(), root, now, ca=True, path_len=1)
    i2 = issue("Corpus Sub CA L2", k.ec(), i1, now, ca=True, path_len=0)
    leaf = p.leaf(i2)
    add(
        Case(
            "valid-two-intermediates",
            "none",
            [root.cert],
            leaf,
            [i2.cert, i1.cert],
            p.crls(root, i1, i2),
        )
    )
    add(
        Case(
            "valid-intermediates-reversed",
            "none",
            [root.cert],
            leaf,
            [i1.cert, i2.cert],
            p.crls(root, i1, i2),
        )
    )
    c = p.three("valid-extra-unrelated-cert", "none")
    c.untrusted.append(p.other_root.cert)
    add(c)
    c = p.three("valid-crl-lists-others", "none")
    c.crls = p.crls(root, inter, revoked=[p.leaf(inter).cert, p.leaf(inter).cert])
    add(c)
    add(
        Case(
            "valid-rsa-root", "none", [p.rsa_root.cert], p.leaf(p.rsa_root), [], p.crls(p.rsa_root)
        )
    )
    # cross-signed CA: X is certified by the other root, which the trusted root cross-signs
    x_key = k.ec()
    other_x = issue("Cross CA", x_key, p.other_root, now, ca=True)
    cross = issue("Other Root CA", p.other_root.key, root, now, ca=True)  # other root, by ours
    leaf = p.leaf(other_x)
    add(
        Case(
            "valid-cross-signed-ca",
            "none (reached through the cross certificate)",
            [root.cert],
            leaf,
            [other_x.cert, cross.cert],
            p.crls(root, p.other_root, other_x),
        )
    )

    # ---- validity (2003)
    add(p.two("leaf-expired", "leaf expired", not_before=now - 60 * DAY, not_after=now - DAY))
    add(p.two("leaf-not-yet-valid", "leaf not yet valid", not_before=now + DAY))
    add(
        p.three(
            "leaf-expired-under-intermediate",
            "leaf expired",
            not_before=now - 60 * DAY,
            not_after=now - 2 * DAY,
        )
    )
    old = issue(
        "Corpus Old Sub CA",
        k.ec(),
        root,
        now,
        ca=True,
        not_before=now - 400 * DAY,
        not_after=now - DAY,
    )
    add(
        p.three(
            "intermediate-expired",
            "intermediate expired",
            inter=old,
            not_before=now - 300 * DAY,
            not_after=now + 30 * DAY,
        )
    )
    young = issue("Corpus Young Sub CA", k.ec(), root, now, ca=True, not_before=now + DAY)
    add(p.three("intermediate-not-yet-valid", "intermediate not yet valid", inter=young))
    stale_root = issue(
        "Corpus Stale Root CA",
        k.ec(),
        None,
        now,
        ca=True,
        not_before=now - 800 * DAY,
        not_after=now - DAY,
    )
    leaf = issue(
        "C100000001-op01",
        k.ec(),
        stale_root,
        now,
        not_before=now - 700 * DAY,
        not_after=now + 30 * DAY,
    )
    add(
        Case(
            "root-expired", "trust anchor expired", [stale_root.cert], leaf, [], p.crls(stale_root)
        )
    )

    # ---- chain and extensions (2002)
    ee_ca = issue("Corpus Not A CA", k.ec(), root, now, ca=False, ku=_ku(sign=True), eku=None)
    add(p.three("intermediate-ca-false", "intermediate CA:FALSE", inter=ee_ca))
    no_bc = issue("Corpus No BC CA", k.ec(), root, now, basic=False, ku=_ku(sign=True), eku=None)
    add(
        p.three(
            "intermediate-no-basic-constraints",
            "intermediate without basicConstraints",
            inter=no_bc,
        )
    )
    no_cs = issue(
        "Corpus No CertSign CA", k.ec(), root, now, ca=True, ku=_ku(sign=True, crl_sign=True)
    )
    add(
        p.three(
            "intermediate-no-keycertsign", "intermediate keyUsage without keyCertSign", inter=no_cs
        )
    )
    j1 = issue("Corpus PathLen0 CA", k.ec(), root, now, ca=True, path_len=0)
    j2 = issue("Corpus Below PathLen0 CA", k.ec(), j1, now, ca=True)
    leaf = p.leaf(j2)
    add(
        Case(
            "pathlen-exceeded",
            "pathLen 0 followed by another CA",
            [root.cert],
            leaf,
            [j2.cert, j1.cert],
            p.crls(root, j1, j2),
        )
    )
    permitted = x509.NameConstraints(
        permitted_subtrees=[x509.DirectoryName(_org("Allowed Corp"))],
        excluded_subtrees=None,
    )
    nc = issue("Corpus NC Sub CA", k.ec(), root, now, ca=True, extra=[(permitted, True)])
    add(
        p.three(
            "name-constraints-permitted",
            "leaf DN outside the permitted subtree",
            inter=nc,
            org="Other Corp",
        )
    )
    excluded = x509.NameConstraints(
        permitted_subtrees=None,
        excluded_subtrees=[x509.DirectoryName(_org("Banned Corp"))],
    )
    nx = issue("Corpus NX Sub CA", k.ec(), root, now, ca=True, extra=[(excluded, True)])
    add(
        p.three(
            "name-constraints-excluded",
            "leaf DN inside an excluded subtree",
            inter=nx,
            org="Banned Corp",
        )
    )
    unknown = x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00")
    add(
        p.two(
            "leaf-unknown-critical-extension",
            "unknown critical extension on the leaf",
            extra=[(unknown, True)],
        )
    )
    uc = issue("Corpus Odd Sub CA", k.ec(), root, now, ca=True, extra=[(unknown, True)])
    add(
        p.three(
            "intermediate-unknown-critical-extension",
            "unknown critical extension on the intermediate",
            inter=uc,
        )
    )
    me = k.ec()
    selfsigned = issue("C100000001-op01", me, None, now, ku=LEAF_KU)
    add(Case("leaf-self-signed", "self-signed signer", [root.cert], selfsigned, [], p.crls(root)))
    add(
        Case(
            "untrusted-root",
            "issued by a root that is not configured",
            [root.cert],
            p.leaf(p.other_root),
            [],
            p.crls(root, p.other_root),
        )
    )
    impostor = Node(root.cert, k.ec())  # our root's name, someone else's key
    add(
        Case(
            "same-name-other-key",
            "issuer name of the root, another key",
            [root.cert],
            issue("C100000001-op01", k.ec(), impostor, now),
            [],
            p.crls(root),
        )
    )
    c = p.three("missing-intermediate", "intermediate not supplied")
    c.untrusted = []
    add(c)
    good = p.leaf(root)
    der = bytearray(good.cert.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value
    add(
        Case(
            "bad-leaf-signature",
            "leaf signature does not verify",
            [root.cert],
            Node(x509.load_der_x509_certificate(bytes(der)), good.key),
            [],
            p.crls(root),
        )
    )
    add(
        Case(
            "cross-signed-without-cross-cert",
            "cross certificate not supplied",
            [root.cert],
            p.leaf(other_x),
            [other_x.cert],
            p.crls(root, p.other_root, other_x),
        )
    )

    # ---- usage (2002)
    add(
        p.two(
            "leaf-missing-digital-signature",
            "keyUsage keyEncipherment only",
            ku=_ku(sign=False, encipher=True),
        )
    )
    add(p.two("leaf-wrong-eku", "EKU serverAuth only", eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    add(
        p.three(
            "leaf-wrong-eku-under-intermediate",
            "EKU codeSigning only",
            eku=[ExtendedKeyUsageOID.CODE_SIGNING],
        )
    )
    srv_ca = issue(
        "Corpus Server-only Sub CA",
        k.ec(),
        root,
        now,
        ca=True,
        extra=[(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)],
    )
    add(p.three("intermediate-wrong-eku", "intermediate EKU serverAuth only", inter=srv_ca))

    # ---- revocation (2004)
    c = p.two("leaf-revoked", "leaf on the root's CRL")
    c.crls = p.crls(root, revoked=[c.leaf.cert])
    c.revocation = True
    add(c)
    c = p.three("leaf-revoked-by-intermediate", "leaf on the intermediate's CRL")
    c.crls = p.crls(root, inter, revoked=[c.leaf.cert])
    c.revocation = True
    add(c)
    c = p.three("intermediate-revoked", "intermediate on the root's CRL")
    c.crls = p.crls(root, inter, revoked=[inter.cert])
    c.revocation = True
    add(c)
    c = p.two("stale-crl", "the root's CRL is past its nextUpdate")
    c.crls = [crl_of(root, now, last=now - 10 * DAY, next_=now - 3 * DAY)]
    c.revocation = True
    add(c)
    c = p.three("stale-intermediate-crl", "the intermediate's CRL is past its nextUpdate")
    c.crls = [crl_of(root, now), crl_of(inter, now, last=now - 10 * DAY, next_=now - DAY)]
    c.revocation = True
    add(c)
    c = p.three("crl-not-yet-valid", "the intermediate's CRL starts tomorrow")
    c.crls = [crl_of(root, now), crl_of(inter, now, last=now + DAY, next_=now + 8 * DAY)]
    c.revocation = True
    add(c)
    c = p.three("crl-wrong-key", "the intermediate's CRL is signed by another key")
    c.crls = [crl_of(root, now), crl_of(inter, now, signing_key=k.ec())]
    c.revocation = True
    add(c)
    c = p.three("crl-from-another-issuer", "the intermediate's CRL is another CA's")
    c.crls = [crl_of(root, now), crl_of(p.other_root, now)]
    c.revocation = True
    add(c)
    no_crl_sign = issue(
        "Corpus No CRLSign CA", k.ec(), root, now, ca=True, ku=_ku(sign=False, cert_sign=True)
    )
    c = p.three(
        "crl-issuer-without-crlsign", "the CRL's issuer lacks keyUsage cRLSign", inter=no_crl_sign
    )
    c.revocation = True
    add(c)

    # ---- outside the profile (2001)
    rsa_root = p.rsa_root
    add(
        Case(
            "leaf-md5-signature",
            "leaf signed with md5WithRSAEncryption",
            [rsa_root.cert],
            p.leaf(rsa_root, digest="md5"),
            [],
            p.crls(rsa_root),
        )
    )
    add(
        Case(
            "leaf-sha1-signature",
            "leaf signed with sha1WithRSAEncryption",
            [rsa_root.cert],
            p.leaf(rsa_root, digest="sha1"),
            [],
            p.crls(rsa_root),
        )
    )
    sha1_ca = issue("Corpus SHA-1 Sub CA", k.ec(), rsa_root, now, ca=True, digest="sha1")
    leaf = p.leaf(sha1_ca)
    add(
        Case(
            "intermediate-sha1-signature",
            "intermediate signed with SHA-1",
            [rsa_root.cert],
            leaf,
            [sha1_ca.cert],
            p.crls(rsa_root, sha1_ca),
        )
    )
    add(p.two("leaf-rsa1024", "1024-bit RSA signer key", key=k.rsa1024))
    weak_ca = issue("Corpus RSA-1024 Sub CA", k.rsa1024, root, now, ca=True)
    add(p.three("intermediate-rsa1024", "1024-bit RSA intermediate key", inter=weak_ca))
    c = p.two("leaf-p192", "P-192 signer key", key=k.p192)
    c.tls12_only = True
    add(c)
    p192_ca = issue("Corpus P-192 Sub CA", k.p192, root, now, ca=True)
    add(p.three("intermediate-p192", "P-192 intermediate key", inter=p192_ca))
    return cases


def corpus_now() -> datetime:
    """Whole seconds: ``openssl verify -attime`` takes seconds."""
    return datetime.now(UTC).replace(microsecond=0)
