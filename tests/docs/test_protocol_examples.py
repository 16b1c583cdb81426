"""Every example request of docs/protocol.md, sent to the real daemon.

Each example carries the RetCode it must get, written by hand in the page
source (``<!-- example expect=0000 -->``); the test never takes it from the
daemon.  It signs each request with the dev PKI and a fresh SendTime, sends
it over mutual TLS to a real gateway (with the clearing and core simulators
as counterparties), verifies the signed answer and compares its RetCode —
and ``Dup`` — with the page.  The examples run in page order on one gateway,
as one integrator's session: the STATUS asks about the PAY before it, the
resend of §7 is the PAY of §4.1 byte for byte (its original SendTime too).

Options in a marker: ``signer=CORP/OPER`` signs with another operator's key
than the Head names; ``sendtime=stale`` sets SendTime an hour behind the
gateway's clock; ``setup=sent:MSGID`` waits until that payment went to the
clearing system (INQ needs it); ``setup=inquiry:MSGID`` has the simulated
clearing system send an inquiry about that payment and puts its InqId in
the request (RPLY answers it).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from lxml import etree

from gateway.clock import BusinessClock
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import load_signing_key, sign_enveloped
from gateway.net.framing import HEADER_LEN, encode_frame, parse_header
from gateway.net.tls import client_context
from gateway.paths import corplink_schema_path
from gateway.server import Gateway
from gateway.sim.clearing import ClearingSimulator
from gateway.sim.erp import Reply, parse_reply
from gateway.testing import Broker
from tests.docs.pages import PROTOCOL, Example, examples, fenced_after
from tests.integration.harness import (
    Erp,
    gateway_config,
    recent_friday_10,
    running_clearing_sim,
    running_core_sim,
    running_gateway,
    wait_for_state,
)

NS = "urn:corplink:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
C = {"c": NS}
TRN_CODES = ["PAY", "PAYROLL", "STATUS", "NTFY", "INQ", "RPLY", "BAL", "PAIN001", "MT101"]
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
OTHER_BANK = "104100000004"


def _root(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode("utf-8"), PARSER)


# -- the page alone ------------------------------------------------------------------------


def test_the_guide_has_marked_examples_with_their_answers() -> None:
    found = examples()
    assert len(found) >= 15
    for ex in found:
        assert re.fullmatch(r"\d{4}", ex.expect), ex.where
        assert ex.response is not None, f"{ex.where}: no response example follows"
        rsp = _root(ex.response)
        assert rsp.findtext("c:Head/c:RetCode", namespaces=C) == ex.expect, ex.where
        req = _root(ex.request)
        assert rsp.findtext("c:Head/c:MsgId", namespaces=C) == req.findtext(
            "c:Head/c:MsgId", namespaces=C
        ), ex.where


def test_every_trncode_has_an_accepted_example() -> None:
    accepted = {
        _root(ex.request).findtext("c:Head/c:TrnCode", namespaces=C)
        for ex in examples()
        if ex.expect == "0000"
    }
    assert accepted >= set(TRN_CODES)


def test_examples_meet_the_schema_unless_they_show_a_schema_refusal() -> None:
    schema = etree.XMLSchema(etree.parse(str(corplink_schema_path())))
    for ex in examples():
        if ex.expect in ("1003", "1004"):
            continue
        req = _root(ex.request)
        assert schema.validate(req), f"{ex.where}: {schema.error_log}"
        if ex.response is not None:
            rsp = _root(ex.response)
            assert schema.validate(rsp), f"{ex.where} (response): {schema.error_log}"


def test_the_draft_examples_meet_the_schema() -> None:
    """§4.10 and §4.11 show DRAFT and DRAFTRFND without an ``expect=`` marker until
    gatewayd answers them; their requests and answers must still be valid."""
    schema = etree.XMLSchema(etree.parse(str(corplink_schema_path())))
    blocks = [
        block
        for block in re.findall(r"```xml\n(.*?)```", PROTOCOL.read_text(encoding="utf-8"), re.S)
        if re.search(r"<(DraftApply|DraftRefund|Draft)>|<Kind>DRAFT<|>DRAFTRFND<", block)
    ]
    assert len(blocks) >= 6
    for block in blocks:
        assert schema.validate(_root(block)), f"{block[:200]}: {schema.error_log}"


# -- against the daemon ------------------------------------------------------------------


class Session:
    """The integrator's side: signs, sends, remembers what it sent."""

    def __init__(self, gw: Gateway, pki: DevPki, clock: BusinessClock) -> None:
        self.gw, self.pki, self.clock = gw, pki, clock
        self.sent_at: dict[str, datetime] = {}
        self.gw_refs: dict[str, str] = {}
        self.response_certs = x509.load_pem_x509_certificates(pki.response_cert.read_bytes())

    def prepare(self, ex: Example, inq_id: str | None = None) -> bytes:
        root = _root(ex.request)
        for sig in root.findall(f"{{{DS}}}Signature"):
            root.remove(sig)
        msg_id = root.findtext("c:Head/c:MsgId", namespaces=C) or ""
        send_time = root.find("c:Head/c:SendTime", C)
        assert send_time is not None
        if msg_id in self.sent_at:  # a resend: the same bytes (docs/protocol.md §7)
            at = self.sent_at[msg_id]
        elif ex.opts.get("sendtime") == "stale":
            at = self.clock.now() - timedelta(hours=1)
        else:
            at = self.clock.now()
        self.sent_at.setdefault(msg_id, at)
        send_time.text = at.isoformat(timespec="seconds")
        if inq_id is not None:
            el = root.find("c:Body/c:Reply/c:InqId", C)
            assert el is not None
            el.text = inq_id
        sign_enveloped(root, load_signing_key(*self.keys(ex, root)))
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def keys(self, ex: Example, root: etree._Element) -> tuple[Path, Path]:
        signer = ex.opts.get("signer")
        if signer:
            corp, oper = signer.split("/")
        else:
            corp = root.findtext("c:Head/c:CorpId", namespaces=C) or ""
            oper = root.findtext("c:Head/c:OperId", namespaces=C) or ""
        return self.pki.client(corp, oper)

    async def send(self, body: bytes, key_cert: tuple[Path, Path]) -> Reply:
        host, port = self.gw.bound.listeners["tls"]
        key, cert = key_cert
        ctx = client_context(self.pki.server_ca, cert, key)
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname="localhost"
        )
        try:
            writer.write(encode_frame(body))
            await writer.drain()
            header = await asyncio.wait_for(reader.readexactly(HEADER_LEN), 30)
            raw = await reader.readexactly(parse_header(header, 16 * 1024 * 1024))
        finally:
            writer.close()
        return parse_reply(raw, self.response_certs)


async def _setup(
    ex: Example, s: Session, sim: ClearingSimulator, erp_ids: Callable[[], str]
) -> str | None:
    """Bring the daemon to where the example starts; returns an InqId to use."""
    what = ex.opts.get("setup", "")
    if not what:
        return None
    kind, msg_id = what.split(":", 1)
    erp = await Erp(s.gw, s.pki).client()
    try:
        if kind == "sent":
            await wait_for_state(
                erp, s.clock.now(), msg_id, ["SENT", "ACKED", "NETTED", "SETTLED", "REJECTED"]
            )
            return None
        assert kind == "inquiry", ex.where
        await wait_for_state(erp, s.clock.now(), msg_id, ["SETTLED"])
        inq_id = await sim.inject_inquiry(
            orgnl_msg_id="UNUSED",
            orgnl_tx_id=s.gw_refs[msg_id],
            text="收款人户名不符，请核实",
            sender=OTHER_BANK,
        )
        ids = (f"SETUP-{erp_ids()}-{n}" for n in itertools.count(1))
        seen = await erp.wait_notice(
            ids, s.clock.now, lambda n: n.kind == "INQUIRY" and n.inq_id == inq_id
        )
        assert seen is not None, f"{ex.where}: the inquiry was not notified"
        return inq_id
    finally:
        await erp.close()


async def test_every_example_gets_the_retcode_the_page_gives(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    clock = BusinessClock(recent_friday_10())
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    dump = os.environ.get("DOCS_DUMP_RESPONSES")  # a folder: write each answer (to edit the page)
    counter = itertools.count(1)
    wrong: list[str] = []
    async with (
        running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl") as sim,
        running_core_sim(broker.url),
        running_gateway(cfg, clock) as gw,
    ):
        s = Session(gw, dev_pki, clock)
        for ex in examples():
            inq_id = await _setup(ex, s, sim, lambda: str(next(counter)))
            body = s.prepare(ex, inq_id)
            reply = await s.send(body, s.keys(ex, _root(ex.request)))
            if reply.gw_ref:
                s.gw_refs.setdefault(reply.msg_id, reply.gw_ref)
            if dump:
                Path(dump).mkdir(parents=True, exist_ok=True)
                (Path(dump) / f"{ex.line:04d}.xml").write_bytes(reply.raw)
            page_dup = _root(ex.response or "<x/>").findtext("c:Head/c:Dup", namespaces=C)
            if reply.ret_code != ex.expect or (page_dup and page_dup != str(reply.dup).lower()):
                wrong.append(
                    f"{ex.where}: page says {ex.expect} Dup={page_dup}, gateway answered "
                    f"{reply.ret_code} Dup={reply.dup} ({reply.ret_msg})"
                )
    assert not wrong, "\n".join(wrong)


# -- the xmlsec1 commands of §3, as written ---------------------------------------------------


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shlex.split(line), cwd=cwd, capture_output=True, text=True, check=False)


async def test_the_xmlsec1_commands_sign_a_request_and_verify_the_answer(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """§3's template and commands, run verbatim in a folder holding the files they name."""
    sign_cmd, verify_cmd = (
        line for line in fenced_after("xmlsec1-commands").splitlines() if line.strip()
    )
    template = fenced_after("xmlsec1-template")
    work = tmp_path / "erp"
    work.mkdir()
    key, cert = dev_pki.client("C100000001", "op01")
    (work / "op01.key").write_bytes(key.read_bytes())
    (work / "op01.pem").write_bytes(cert.read_bytes())
    (work / "server-ca.pem").write_bytes(dev_pki.server_ca.read_bytes())
    pay = next(ex for ex in examples() if ex.expect == "0000")
    clock = BusinessClock(recent_friday_10())
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with running_gateway(cfg, clock) as gw:
        request = pay.request.replace(
            "2026-11-27T10:00:00+08:00", clock.now().isoformat("T", "seconds")
        )
        request = re.sub(r"<ds:Signature .*?</ds:Signature>", template.strip(), request, flags=re.S)
        (work / "request.xml").write_text(request, encoding="utf-8")
        proc = _run(sign_cmd, work)
        assert proc.returncode == 0, proc.stderr
        s = Session(gw, dev_pki, clock)
        reply = await s.send((work / "signed.xml").read_bytes(), (key, cert))
        assert (reply.ret_code, reply.dup) == ("0000", False), reply.ret_msg
    (work / "response.xml").write_bytes(reply.raw)
    assert _run(verify_cmd, work).returncode == 0
    # and the command notices tampering, so its success means something
    (work / "response.xml").write_bytes(reply.raw.replace(b"<RetCode>0000<", b"<RetCode>9999<"))
    assert _run(verify_cmd, work).returncode != 0
