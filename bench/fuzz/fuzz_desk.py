"""atheris harness: the whole inbound desk (parse → schema → signature → credentials), on purpose.

    pip install atheris
    python bench/fuzz/fuzz_desk.py bench/fuzz/corpus_desk -max_total_time=600

``Desk.inspect`` is what every frame body goes through in a worker process.
For any bytes it must return an ``Inspection`` holding a request or a
refusal with one of the spec's RetCodes (docs/protocol.md §8); an exception is a
finding (the daemon would answer 9999 and log a stack trace per frame).

At start the harness makes a throwaway dev PKI in a temp dir and writes seed
inputs into the corpus folder given on the command line (created if
missing): a signed PAY, a signed STATUS, a GB18030 PAY and the samples in
``codecs/samples``.  libFuzzer mutates from there, so most inputs stay close
to real signed requests (the interesting part is past the parser).
``-dict=bench/fuzz/corplink.dict`` adds CorpLink/XMLDSig tokens.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import atheris
from lxml import etree

# Run from a checkout: import this tree's gateway, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["gateway"]):
    from gateway.clock import SHANGHAI
    from gateway.config import load_config
    from gateway.desk import Desk, Inspection
    from gateway.errors import RetCode
    from gateway.keys.devpki import generate_dev_pki
    from gateway.keys.xmldsig import load_signing_key, sign_enveloped
    from gateway.server import desk_setup
    from gateway.sim.erp import Payment, build_request, status_body, transfer_body

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
REFUSALS = frozenset(RetCode) - {RetCode.OK}
_DESK: Desk | None = None


def build_desk(tmp: Path) -> tuple[Desk, list[bytes]]:
    pki = generate_dev_pki(tmp / "pki")
    cfg = load_config(
        None,
        {"environment": "test", "state_dir": str(tmp / "state"), "keys": {"dir": str(pki.dir)}},
    )
    signer = load_signing_key(*pki.client("C100000001", "op01"))
    pay = Payment(
        "6222000000000001",
        "示范贸易有限公司",
        "6217000011112222",
        "收款人",
        "104100000004",
        Decimal("12.34"),
        purpose="货款",
    )
    seeds = []
    for root, enc in (
        (build_request("PAY", "C100000001", "op01", "FZ-1", NOW, transfer_body(pay)), "UTF-8"),
        (build_request("STATUS", "C100000001", "op01", "FZ-2", NOW, status_body("FZ-1")), "UTF-8"),
        (build_request("PAY", "C100000001", "op01", "FZ-3", NOW, transfer_body(pay)), "GB18030"),
    ):
        sign_enveloped(root, signer)
        seeds.append(etree.tostring(root, xml_declaration=True, encoding=enc))
    seeds += [p.read_bytes() for p in sorted((REPO / "codecs" / "samples").glob("*.xml"))]
    return Desk(desk_setup(cfg)), seeds


def test_one_input(data: bytes) -> None:
    assert _DESK is not None
    ins = _DESK.inspect(data, "127.0.0.1", NOW)
    if not isinstance(ins, Inspection):
        raise TypeError(f"inspect returned {type(ins).__name__}")
    if ins.refusal is not None:
        if ins.refusal.code not in REFUSALS:
            raise AssertionError(f"refusal with {ins.refusal.code}")
        detail = ins.refusal.detail or ""
        for word in ("Traceback", "lxml", "Exception", tempfile.gettempdir(), str(REPO)):
            if word in detail:
                raise AssertionError(f"internal detail reaches the client: {detail!r}")
    elif ins.request is None and (ins.deferred is None or ins.head is None):
        raise AssertionError("an Inspection with neither request nor refusal")


def main() -> None:
    global _DESK
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-desk-"))
    _DESK, seeds = build_desk(tmp)
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds):
            (corpus / f"seed-{i}.xml").write_bytes(seed)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
