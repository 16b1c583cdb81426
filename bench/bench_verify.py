"""Micro-measure: verify_enveloped + check_credentials per second, one core.

Run on purpose (not a test): ``python bench/bench_verify.py [--n 2000]``.
Builds a throw-away dev PKI in a temp dir, signs a ~2.5 KB CorpLink PAY with
an EC P-256 and an RSA-2048 operator key, then times, per key type, the
profile check plus the whole credential order of docs/protocol.md §3 (2001-2007)
on a freshly parsed tree each round.  Prints the median of 5 runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from lxml import etree

from gateway.keys.devpki import generate_dev_pki
from gateway.keys.enrolment import Registry
from gateway.keys.kinds import KindPolicy
from gateway.keys.trust import TrustStore
from gateway.keys.verifier import RequestVerifier
from gateway.keys.xmldsig import load_signing_key, sign_enveloped

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def pay_request(purpose_len: int) -> bytes:
    purpose = ("Invoice 2026-118 goods and freight, " * 10)[:purpose_len]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CorpLink xmlns="urn:corplink:1">
  <Head>
    <TrnCode>PAY</TrnCode>
    <CorpId>C100000001</CorpId>
    <OperId>op01</OperId>
    <MsgId>20261127-000001</MsgId>
    <SendTime>2026-11-27T10:00:00+08:00</SendTime>
  </Head>
  <Body>
    <Transfer>
      <PayerAcct>6222000000000001</PayerAcct>
      <PayerName>Demo Trading Co.</PayerName>
      <PayeeAcct>6222999900001234</PayeeAcct>
      <PayeeName>Shanghai Example Trading Co., Ltd.</PayeeName>
      <PayeeBankCode>104100000004</PayeeBankCode>
      <Amount Ccy="CNY">12345.67</Amount>
      <Priority>NORM</Priority>
      <Purpose>{purpose}</Purpose>
    </Transfer>
  </Body>
</CorpLink>
""".encode()


def signed_bytes(key_path: Path, cert_path: Path, target: int = 2500) -> bytes:
    key = load_signing_key(key_path, cert_path)
    purpose_len = 140
    while True:  # the RSA certificate and signature are longer: trim Purpose to ~target
        root = etree.fromstring(pay_request(purpose_len), PARSER)
        sign_enveloped(root, key)
        data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        if len(data) <= target or purpose_len == 0:
            return data
        purpose_len = max(0, purpose_len - (len(data) - target))


def run(verifier: RequestVerifier, data: bytes, n: int, now: object) -> tuple[float, float]:
    roots = [etree.fromstring(data, PARSER) for _ in range(n)]
    amounts = [Decimal("12345.67")]
    start = time.perf_counter()
    for root in roots:
        verified = verifier.verify_signature(root)
        verifier.check_credentials(
            verified,
            "C100000001",
            "op01",
            "PAY",
            amounts,
            "127.0.0.1",
            now,  # type: ignore[arg-type]
        )
    verify_rate = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(n):
        verified = verifier.verify_signature(etree.fromstring(data, PARSER))
        verifier.check_credentials(
            verified,
            "C100000001",
            "op01",
            "PAY",
            amounts,
            "127.0.0.1",
            now,  # type: ignore[arg-type]
        )
    with_parse = n / (time.perf_counter() - start)
    return verify_rate, with_parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="verifications per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for key_type in ("ec", "rsa"):
            pki = generate_dev_pki(Path(tmp) / key_type, key_type=key_type)
            trust = TrustStore.from_files([pki.client_ca], [pki.client_crl], pki.deny_list)
            verifier = RequestVerifier(trust, Registry.load(pki.enrolment), KindPolicy.dev())
            data = signed_bytes(*pki.client("C100000001", "op01"))
            results = [run(verifier, data, args.n, pki.now) for _ in range(5)]
            verify = statistics.median(r[0] for r in results)
            parse = statistics.median(r[1] for r in results)
            print(
                f"{key_type:3} {len(data)} B: verify_enveloped+check_credentials "
                f"{verify:,.0f}/s ({1e6 / verify:.0f} us); with parse {parse:,.0f}/s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
