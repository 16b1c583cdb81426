"""A differential corpus: the gateway's certificate verdicts against ``openssl verify``.

The reference is ``openssl verify -x509_strict -crl_check_all -auth_level 2
-purpose sslclient -attime T`` on the same files; ``REFERENCE`` maps its
error codes to the RetCodes of docs/protocol.md §8 (2001 for a key or digest
outside the §3 profile).  The gateway is asked twice where it can be:

- the signature path: a request signed with the case's key, KeyInfo carrying
  the case's chain, through ``RequestVerifier`` (XMLDSig profile, then the
  trust store).  Nobody is enrolled, so a chain the trust store accepts ends
  at 2005, which counts as accepted;
- the TLS path: a real handshake (in memory) against the listener context
  built by ``gateway.net.tls.server_context`` with ``client_cert="required"``.
  It runs at the wall clock, which is why the corpus is built at the wall
  clock too, with the case's CRLs and the default revocation policy, as the
  daemon builds its listeners.

Every disagreement fails, unless ``LISTED`` names it with its reason.  Run
with ``-s`` (or ``-rP``) to see the agreement table.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.errors import GatewayError
from gateway.keys.enrolment import Registry
from gateway.keys.kinds import KindPolicy
from gateway.keys.revocation import RevocationPolicy
from gateway.keys.trust import TrustStore
from gateway.keys.verifier import RequestVerifier
from gateway.keys.xmldsig import SigningKey, sign_enveloped
from gateway.net.tls import server_context

from .corpus import Case, Pki, build_corpus, corpus_now, issue
from .docs import pay_doc, reparse


def _codes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split())


#: OpenSSL verify error (x509_vfy.h) -> RetCode (docs/protocol.md §8).
REFERENCE: dict[int, str] = {
    0: "0000",
    # 2002: not issued by a trusted client CA, or wrong key usage
    **dict.fromkeys(
        _codes("2 4 6 7 18 19 20 21 22 24 25 26 27 28 29 30 31 32 34 37 39 41 42 47 48 49 51 52")
        + _codes("53 55 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94"),
        "2002",
    ),
    # 2003: expired or not yet valid
    **dict.fromkeys((9, 10, 13, 14), "2003"),
    # 2004: revoked, or revocation status unknown (no, stale or unusable CRL)
    **dict.fromkeys((3, 5, 8, 11, 12, 15, 16, 23, 33, 35, 36, 44, 54), "2004"),
    # 2001: key or signature digest outside the docs/protocol.md §3 profile
    **dict.fromkeys((66, 67, 68), "2001"),
}

#: Case name -> (path, reason).  At most 3; each must really disagree.
LISTED: dict[str, tuple[str, str]] = {}
"""Disagreements accepted with their reason (at most 3): none since the revocation
policy (gateway.keys.revocation) refuses an unknown status as ``-crl_check_all`` does."""

_ERROR_RE = re.compile(r"^error (\d+) at (\d+) depth lookup: (.*)$", re.MULTILINE)


@dataclass
class Row:
    case: Case
    reference: str
    openssl: str
    signature: str
    tls: str | None

    def disagreements(self) -> list[str]:
        paths = [("signature", self.signature), ("tls", self.tls)]
        return [name for name, got in paths if got is not None and got != self.reference]


@dataclass
class Server:
    cert: Path
    key: Path
    ca: Path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[datetime, list[Case], Server]:
    now = corpus_now()
    cases = build_corpus(now)
    base = tmp_path_factory.mktemp("corpus")
    for case in cases:
        case.write(base)
    pki = Pki(now)
    server = issue(
        "localhost",
        pki.keys.ec(),
        pki.root,
        now,
        eku=None,
        extra=[(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)],
    )
    pem = serialization.Encoding.PEM
    paths = Server(base / "server.pem", base / "server.key", base / "server-ca.pem")
    paths.cert.write_bytes(server.cert.public_bytes(pem))
    paths.key.write_bytes(
        server.key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths.ca.write_bytes(pki.root.cert.public_bytes(pem))
    return now, cases, paths


def reference(case: Case, now: datetime) -> tuple[int, str]:
    """``openssl verify``'s first error (code, text), or (0, "OK")."""
    argv = [
        "openssl",
        "verify",
        "-x509_strict",
        "-crl_check_all",
        "-auth_level",
        "2",
        "-purpose",
        "sslclient",
        "-attime",
        str(int(now.timestamp())),
        "-CAfile",
        str(case.dir / "roots.pem"),
    ]
    if case.untrusted:
        argv += ["-untrusted", str(case.dir / "untrusted.pem")]
    for path in case.crl_paths:
        argv += ["-CRLfile", str(path)]
    argv.append(str(case.dir / "leaf.pem"))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    found = _ERROR_RE.search(out.stdout + out.stderr)
    if out.returncode == 0 and found is None:
        return 0, "OK"
    assert found is not None, f"{case.name}: unparsed openssl output {out.stdout}{out.stderr}"
    return int(found.group(1)), found.group(3)


def signature_verdict(case: Case, now: datetime) -> str:
    """The RetCode of a request signed by the case's signer (2005 = chain accepted → 0000)."""
    trust = TrustStore([*case.roots], case.crls)
    verifier = RequestVerifier(trust, Registry({}), KindPolicy.dev())
    doc = pay_doc()
    # SigningKey is built directly: the loader refuses keys outside the profile,
    # and here the sender is the one who does not follow it.
    sign_enveloped(doc, SigningKey(case.leaf.key, tuple(case.chain)))
    try:
        verified = verifier.verify_signature(reparse(doc))
        verifier.check_credentials(
            verified, "C100000001", "op01", "PAY", [Decimal("12.00")], "127.0.0.1", now
        )
    except GatewayError as exc:
        return "0000" if exc.code.value == "2005" else exc.code.value
    raise AssertionError("nobody is enrolled: the verifier cannot answer 0000")


def _pump(src: ssl.MemoryBIO, dst: ssl.MemoryBIO) -> None:
    data = src.read()
    if data:
        dst.write(data)


def tls_verdict(case: Case, server: Server) -> str | None:
    """The RetCode-equivalent of a handshake against the gateway's listener context."""
    sctx = server_context(
        server.cert,
        server.key,
        client_cert="required",
        client_ca_paths=[case.dir / "roots.pem"],
        crl_paths=case.crl_paths,
        revocation=RevocationPolicy("fail_closed"),
    )
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(server.ca)
    cctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client offers whatever it holds
    if case.tls12_only:
        cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    cctx.load_cert_chain(case.dir / "chain.pem", case.dir / "leaf.key")
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = sctx.wrap_bio(s_in, s_out, server_side=True)
    cli = cctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_done = False
    for _ in range(10):
        try:
            cli.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:  # the client gave up (e.g. an alert from the server)
            _pump(c_out, s_in)
            if not server_done:
                return f"client:{exc.reason}"
        _pump(c_out, s_in)
        try:
            srv.do_handshake()
            server_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLCertVerificationError as exc:
            return REFERENCE.get(exc.verify_code, f"unmapped:{exc.verify_code}")
        except ssl.SSLError as exc:
            return f"server:{exc.reason}"
        _pump(s_out, c_in)
        if server_done:
            return "0000"
    return "no handshake"


def run_corpus(cases: list[Case], now: datetime, server: Server) -> Iterator[Row]:
    for case in cases:
        code, text = reference(case, now)
        assert code in REFERENCE, f"{case.name}: OpenSSL error {code} ({text}) is not mapped"
        yield Row(
            case,
            REFERENCE[code],
            f"{code} {text}",
            signature_verdict(case, now),
            tls_verdict(case, server),
        )


def table(rows: list[Row]) -> str:
    head = f"{'case':42} {'openssl verify':48} {'ref':4} {'sig':4} {'tls':4}  verdict"
    lines = [head, "-" * len(head)]
    for r in rows:
        bad = r.disagreements()
        listed = r.case.name in LISTED
        verdict = "agree" if not bad else ("LISTED" if listed else "DISAGREE " + ",".join(bad))
        lines.append(
            f"{r.case.name:42} {r.openssl[:48]:48} {r.reference:4} {r.signature:4} "
            f"{r.tls or 'n/a':4}  {verdict}"
        )
    agree = sum(1 for r in rows if not r.disagreements())
    lines.append(
        f"{len(rows)} cases, {agree} agree on every path, "
        f"{sum(1 for r in rows if r.disagreements() and r.case.name in LISTED)} listed, "
        f"{sum(1 for r in rows if r.tls is not None)} with the TLS path"
    )
    return "\n".join(lines)


def test_corpus_agrees_with_openssl(corpus: tuple[datetime, list[Case], Server]) -> None:
    now, cases, server = corpus
    rows = list(run_corpus(cases, now, server))
    print(table(rows))
    assert len(rows) >= 40
    assert len(LISTED) <= 3
    # the corpus has teeth: every verdict of docs/protocol.md §3 occurs in the reference
    assert {r.reference for r in rows} >= {"0000", "2001", "2002", "2003", "2004"}
    unlisted = [
        f"{r.case.name} ({r.case.defect}): openssl {r.openssl} -> {r.reference}, "
        f"signature {r.signature}, tls {r.tls}"
        for r in rows
        if r.disagreements() and r.case.name not in LISTED
    ]
    assert not unlisted, "\n" + "\n".join(unlisted)
    by_name = {r.case.name: r for r in rows}
    for name, (path, _reason) in LISTED.items():
        assert path in by_name[name].disagreements(), f"{name} is listed but agrees on {path}"


def test_names_are_unique(corpus: tuple[datetime, list[Case], Server]) -> None:
    names = [c.name for c in corpus[1]]
    assert len(names) == len(set(names))
