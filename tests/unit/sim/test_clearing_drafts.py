"""The clearing simulator as the clearing centre for bank drafts (docs/bank-drafts.md §3).

As in test_clearing_sim, the test plays the gateway against a real
mosquitto: it signs draft messages with the dev PKI's gateway clearing key,
publishes them on ``clearing/intra/out`` and verifies what the simulator
answers on ``clearing/intra/in`` against the clearing-system certificate.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from gateway.clearing.documents import TxResult, parse_pacs002, parse_receipt
from gateway.clearing.envelope import Envelope, build_envelope, out_msg_id, serialize
from gateway.clock import SHANGHAI
from gateway.drafts.documents import (
    MSG_TP_ANSWER,
    MSG_TP_ISSUE,
    MSG_TP_REFUND,
    MSG_TP_SETTLE,
    NS_CLR,
    DraftAnswer,
    DraftIssue,
    DraftRefund,
    DraftSettlement,
    build_answer,
    build_issue,
    build_refund,
    build_settlement,
)
from gateway.drafts.numbers import make_draft_no
from gateway.drafts.records import ACCEPTED, Scope, rejected
from gateway.drafts.records import Reason as DraftReason
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, sign_enveloped
from gateway.sim.clearing import (
    FORMAT_REJECT,
    REJECT_REASONS,
    ClearingSimConfig,
    ClearingSimulator,
    _config,
    _parser,
)
from gateway.sim.clearing_drafts import (
    TRIGGER_REASONS,
    ClearingDrafts,
    parse_reject_fen,
)
from gateway.testing import Broker
from tests.unit.clearing.pacs_samples import CREATED, OUR_PARTICIPANT, WORK_DATE
from tests.unit.sim.test_clearing_sim import (
    SIM_PARTICIPANT,
    Gateway,
    gateway_side,
    running,
    sim_config,
)

PAYER = "6222020200000000001"
TOPIC = "clearing/intra/out"


def draft_no(seq: int) -> str:
    return make_draft_no(OUR_PARTICIPANT, seq)


def signed(key: SigningKey, msg_tp: str, seq: int, document: etree._Element) -> tuple[str, bytes]:
    """A draft message as the gateway sends it: Sndr us, Rcvr the clearing centre."""
    msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq)
    root = build_envelope(
        msg_tp, msg_id, OUR_PARTICIPANT, SIM_PARTICIPANT, CREATED, WORK_DATE, document
    )
    sign_enveloped(root, key)
    return msg_id, serialize(root)


def issue(seq: int, amount: str = "1000.00") -> etree._Element:
    return build_issue(DraftIssue(draft_no(seq), Decimal(amount), PAYER, Scope.NATIONAL))


def settle(seq: int, settle_amount: str, amount: str = "1000.00") -> etree._Element:
    paid = Decimal(settle_amount)
    return build_settlement(DraftSettlement(draft_no(seq), paid, Decimal(amount) - paid, PAYER))


def refund(seq: int, amount: str = "1000.00") -> etree._Element:
    return build_refund(DraftRefund(draft_no(seq), Decimal(amount), PAYER))


def answer(seq: int, prsntmt_id: str, reason: DraftReason | None = None) -> etree._Element:
    outcome = ACCEPTED if reason is None else rejected(reason)
    return build_answer(DraftAnswer(prsntmt_id, draft_no(seq), outcome))


async def status_of(gw: Gateway, msg_id: str) -> TxResult:
    """The ccms.990 then the ccms.900 of ``msg_id``; its one result."""
    receipt = await gw.next()
    assert receipt.topic == "clearing/intra/in"
    assert receipt.env.msg_tp == "ccms.990"
    assert parse_receipt(receipt.env.document).orgnl_msg_id == msg_id
    status = await gw.next()
    assert status.topic == "clearing/intra/in"
    assert status.env.msg_tp == "ccms.900"
    assert (status.env.sndr, status.env.rcvr) == (SIM_PARTICIPANT, OUR_PARTICIPANT)
    orgnl, results = parse_pacs002(status.env.document)
    assert orgnl == msg_id
    (result,) = results
    return result


# ------------------------------------------------------------ issue, settle, refund


@pytest.mark.parametrize(
    ("msg_tp", "document"),
    [
        (MSG_TP_ISSUE, issue(1)),
        (MSG_TP_SETTLE, settle(1, "800.00")),
        (MSG_TP_REFUND, refund(1)),
    ],
)
async def test_issue_settle_refund_get_a_receipt_then_one_acsc_naming_the_draft(
    broker: Broker,
    system_key: SigningKey,
    gateway_key: SigningKey,
    tmp_path: Path,
    msg_tp: str,
    document: etree._Element,
) -> None:
    record = tmp_path / "record.jsonl"
    config = sim_config(broker, system_key, gateway_key, record_path=record)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        msg_id, payload = signed(gateway_key, msg_tp, 1, document)
        await gw.send(payload, TOPIC)
        assert await status_of(gw, msg_id) == TxResult(draft_no(1), None, "ACSC")
        assert sim.stats["received"] == 1
    (line,) = [json.loads(x) for x in record.read_text(encoding="utf-8").splitlines()]
    assert (line["msg_tp"], line["tx_ids"], line["valid"]) == (msg_tp, [draft_no(1)], True)


async def test_fen_trigger_rejects_only_the_kind_it_names(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(
        broker, system_key, gateway_key, draft_reject_fen={MSG_TP_SETTLE: 13, MSG_TP_REFUND: 7}
    )
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        cases = [
            (MSG_TP_ISSUE, issue(2, "500.13"), "ACSC"),  # the settle trigger is not the issue's
            (MSG_TP_SETTLE, settle(2, "400.13", "500.13"), "RJCT"),
            (MSG_TP_SETTLE, settle(3, "400.14", "500.13"), "ACSC"),
            (MSG_TP_REFUND, refund(4, "99.07"), "RJCT"),
        ]
        for seq, (msg_tp, document, want) in enumerate(cases, start=10):
            msg_id, payload = signed(gateway_key, msg_tp, seq, document)
            await gw.send(payload, TOPIC)
            result = await status_of(gw, msg_id)
            assert result.status == want, msg_tp
            if want == "RJCT":
                assert (result.reason_code, result.reason_text) == TRIGGER_REASONS[msg_tp]
        assert sim.stats["draft_rejected"] == 2


async def test_reject_ratio_one_rejects_every_draft_message_with_a_reason(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, draft_reject_ratio=1.0)
    async with running(config), gateway_side(broker, system_key) as gw:
        msg_id, payload = signed(gateway_key, MSG_TP_ISSUE, 20, issue(20))
        await gw.send(payload, TOPIC)
        result = await status_of(gw, msg_id)
        assert result.status == "RJCT"
        assert (result.reason_code, result.reason_text) in REJECT_REASONS


async def test_resent_issue_gets_the_same_answers_never_a_second_decision(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key, draft_reject_ratio=0.5)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        _, payload = signed(gateway_key, MSG_TP_ISSUE, 21, issue(21))
        await gw.send(payload, TOPIC)
        first = [await gw.next(), await gw.next()]
        await gw.send(payload, TOPIC)
        again = [await gw.next(), await gw.next()]
        assert [a.payload for a in again] == [a.payload for a in first]
        assert sim.stats["duplicates"] == 1


async def test_a_draft_document_that_does_not_read_is_rejected_ff01(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        bad_amount = issue(30)
        bad_amount[1].text = "1000.0"  # Amount with one decimal
        msg_id, payload = signed(gateway_key, MSG_TP_ISSUE, 30, bad_amount)
        await gw.send(payload, TOPIC)
        result = await status_of(gw, msg_id)
        assert (result.tx_id, result.status, result.reason_code) == (
            draft_no(30),
            "RJCT",
            FORMAT_REJECT[0],
        )

        nameless = etree.fromstring(f'<DrftRfnd xmlns="{NS_CLR}"><Amount>1.00</Amount></DrftRfnd>')
        msg_id, payload = signed(gateway_key, MSG_TP_REFUND, 31, nameless)
        await gw.send(payload, TOPIC)
        assert (await gw.next()).env.msg_tp == "ccms.990"
        status = await gw.next()
        orgnl, results = parse_pacs002(status.env.document)
        assert (orgnl, results) == (msg_id, [])  # no DraftNo to name: the group is RJCT
        group = status.env.document.find(".//{*}OrgnlGrpInfAndSts/{*}GrpSts")
        assert group is not None and group.text == "RJCT"
        assert sim.stats["draft_invalid"] == 2


# ------------------------------------------------------------ answers to presentments


async def test_an_answer_gets_a_receipt_only_and_is_recorded(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        msg_id, payload = signed(gateway_key, MSG_TP_ANSWER, 40, answer(40, "P-40", DraftReason.PD))
        await gw.send(payload, TOPIC)
        # an issue after it: its 990 and 900 come next, so nothing else came for the answer
        issue_id, issue_payload = signed(gateway_key, MSG_TP_ISSUE, 41, issue(41))
        await gw.send(issue_payload, TOPIC)
        receipt = await gw.next()
        assert receipt.env.msg_tp == "ccms.990"
        assert parse_receipt(receipt.env.document).orgnl_msg_id == msg_id
        assert (await status_of(gw, issue_id)).status == "ACSC"

        recorded = await sim.wait_draft_answer("P-40")
        assert (recorded.msg_id, recorded.draft_no, recorded.result, recorded.reason) == (
            msg_id,
            draft_no(40),
            "RJCT",
            "PD",
        )
        assert sim.draft_answers.keys() == {"P-40"}
        assert sim.stats["draft_answers"] == 1


async def test_a_resent_answer_is_a_redelivery_and_a_second_one_is_counted(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        msg_id, payload = signed(gateway_key, MSG_TP_ANSWER, 50, answer(50, "P-50"))
        await gw.send(payload, TOPIC)
        first = await gw.next()
        await gw.send(payload, TOPIC)  # re-sent under its MsgId: the same receipt
        assert (await gw.next()).payload == first.payload
        assert sim.stats["duplicates"] == 1
        assert sim.stats["draft_answers_repeated"] == 0

        # the same presentment answered again under another MsgId: not "exactly once"
        _, other = signed(gateway_key, MSG_TP_ANSWER, 51, answer(50, "P-50", DraftReason.PD))
        await gw.send(other, TOPIC)
        assert (await gw.next()).env.msg_tp == "ccms.990"
        assert sim.stats["draft_answers_repeated"] == 1
        assert sim.stats["draft_answers"] == 1
        assert (sim.draft_answers["P-50"].msg_id, sim.draft_answers["P-50"].result) == (
            msg_id,
            "ACCP",
        )


async def test_an_answer_that_does_not_read_is_receipted_not_recorded(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(broker, system_key, gateway_key)
    async with running(config) as sim, gateway_side(broker, system_key) as gw:
        document = answer(60, "P-60")
        document[2].text = "RJCT"  # RJCT without its Rsn
        msg_id, payload = signed(gateway_key, MSG_TP_ANSWER, 60, document)
        await gw.send(payload, TOPIC)
        receipt = await gw.next()
        assert parse_receipt(receipt.env.document).orgnl_msg_id == msg_id
        assert sim.draft_answers == {}
        assert sim.stats["draft_invalid"] == 1


# ------------------------------------------------------------ decisions and options


def envelope(msg_tp: str, document: etree._Element, seq: int = 1) -> Envelope:
    return Envelope(
        msg_tp,
        out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq),
        OUR_PARTICIPANT,
        SIM_PARTICIPANT,
        datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI),
        WORK_DATE,
        document,
    )


def drafts(seed: int = 0, ratio: float = 0.0, fen: dict[str, int] | None = None) -> ClearingDrafts:
    return ClearingDrafts(
        {},
        seed=seed,
        reject_ratio=ratio,
        reject_fen=fen or {},
        reject_reasons=REJECT_REASONS,
        format_reject=FORMAT_REJECT,
    )


def test_a_share_rejects_about_that_share_reproducibly_per_seed() -> None:
    def statuses(seed: int) -> list[str]:
        d = drafts(seed, 0.5)
        out = []
        for seq in range(1, 201):
            decided = d.decide(envelope(MSG_TP_ISSUE, issue(seq)))
            assert decided is not None
            out.append(decided[0][0].status)
        return out

    first = statuses(3)
    assert statuses(3) == first
    assert 40 < first.count("RJCT") < 160
    assert statuses(4) != first


def test_payments_and_answers_are_not_drafts_to_decide() -> None:
    assert drafts().decide(envelope(MSG_TP_ANSWER, answer(1, "P-1"))) is None
    assert drafts().decide(envelope("intra.111", issue(1))) is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("settle=13", {MSG_TP_SETTLE: 13}),
        ("issue=0", {MSG_TP_ISSUE: 0}),
        ("7", {MSG_TP_ISSUE: 7, MSG_TP_SETTLE: 7, MSG_TP_REFUND: 7}),
    ],
)
def test_reject_fen_reads(text: str, parsed: dict[str, int]) -> None:
    assert parse_reject_fen(text) == parsed


@pytest.mark.parametrize("text", ["", "100", "settle=", "answer=1", "settle=-1", "issue=１", "x=1"])
def test_reject_fen_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"fen|kind"):
        parse_reject_fen(text)


def test_the_cli_takes_the_draft_options(dev_pki: DevPki) -> None:
    keys = [
        "--key", str(dev_pki.clearing_system_key),
        "--cert", str(dev_pki.clearing_system_cert),
        "--gateway-cert", str(dev_pki.clearing_cert),
    ]  # fmt: skip
    args = _parser().parse_args(
        [*keys, "--draft-reject-ratio", "0.25", "--draft-reject-fen", "9",
         "--draft-reject-fen", "settle=13"]
    )  # fmt: skip
    config: ClearingSimConfig = _config(args)
    assert config.draft_reject_ratio == 0.25
    assert config.draft_reject_fen == {MSG_TP_ISSUE: 9, MSG_TP_SETTLE: 13, MSG_TP_REFUND: 9}
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args([*keys, "--draft-reject-fen", "answer=1"])
    assert exc.value.code == 2


def test_a_draft_reject_ratio_outside_0_1_is_refused(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    with pytest.raises(ValueError, match="draft_reject_ratio"):
        ClearingSimulator(sim_config(broker, system_key, gateway_key, draft_reject_ratio=1.5))
    with pytest.raises(ValueError, match="draft_reject_fen"):
        ClearingSimulator(
            sim_config(broker, system_key, gateway_key, draft_reject_fen={MSG_TP_ANSWER: 1})
        )
