"""Cost of the CorpLink codec per message: parse, validate, decode, render + serialise.

Run on purpose:  python bench/bench_codec.py [--iterations N] [--encoding UTF-8|GB18030]

Prints microseconds per message for each stage, the median of 5 rounds.  The
request is codecs/samples/pay.xml with its signature template filled to the
size of a real ECDSA signature and certificate (~3 KB), so libxml2 sees what it
sees in production; verification itself is the signature layer's cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.clock import SHANGHAI
from gateway.codec.corplink import CorpLinkCodec, serialize
from gateway.codec.xmlparse import parse_body
from gateway.model import Engine, Response, State, StatusView, Transition
from gateway.paths import data_root

ROUNDS = 5


def signed_looking_request(encoding: str) -> bytes:
    """pay.xml with DigestValue, SignatureValue and an X509Certificate of real sizes."""
    name = "pay-gb18030.xml" if encoding == "GB18030" else "pay.xml"
    codec_name = "gb18030" if encoding == "GB18030" else "utf-8"
    text = (data_root() / "codecs" / "samples" / name).read_bytes().decode(codec_name)
    cert = "\n".join(["MIIBszCCAVmgAwIBAgIUQ" + "A" * 43] * 22)
    text = (
        text.replace("<ds:DigestValue/>", "<ds:DigestValue>" + "D" * 43 + "=</ds:DigestValue>")
        .replace(
            "<ds:SignatureValue/>", "<ds:SignatureValue>" + "S" * 86 + "==</ds:SignatureValue>"
        )
        .replace(
            "<ds:X509Data/>",
            "<ds:X509Data><ds:X509Certificate>" + cert + "</ds:X509Certificate></ds:X509Data>",
        )
    )
    return text.encode(codec_name)


def per_message_us(func: Callable[[], object], iterations: int) -> float:
    """Median over ROUNDS of the mean cost of one call, in microseconds."""
    results = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(iterations):
            func()
        results.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--encoding", choices=["UTF-8", "GB18030"], default="UTF-8")
    args = parser.parse_args(argv)

    codec = CorpLinkCodec()
    body = signed_looking_request(args.encoding)
    parsed = parse_body(body)
    root = parsed.root
    codec.validate(root)
    at = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
    rsp = Response(
        trn_code="PAY",
        corp_id="C100000001",
        msg_id="20261127-000001",
        rsp_time=at,
        ret_code="0000",
        ret_msg="accepted",
        gw_ref="GW20261127A000000042",
        status=StatusView(
            state=State.QUEUED,
            engine=Engine.HVPS,
            work_date=at.date(),
            history=(Transition(State.ACCEPTED, at), Transition(State.QUEUED, at)),
        ),
        encoding=parsed.encoding,
    )

    def whole() -> None:
        p = parse_body(body)
        codec.read_head(p.root)
        codec.validate(p.root)
        codec.decode(p.root, p.encoding)

    stages: list[tuple[str, Callable[[], object]]] = [
        ("parse_body", lambda: parse_body(body)),
        ("read_head", lambda: codec.read_head(root)),
        ("validate (XSD)", lambda: codec.validate(root)),
        ("decode (+digest)", lambda: codec.decode(root, parsed.encoding)),
        ("render", lambda: codec.render(rsp)),
        ("render+serialize", lambda: serialize(codec.render(rsp), parsed.encoding)),
        ("parse+validate+decode", whole),
    ]
    print(f"request: {len(body)} bytes, {parsed.encoding}; median of {ROUNDS} x {args.iterations}")
    for label, func in stages:
        print(f"{label:>24}: {per_message_us(func, args.iterations):8.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
