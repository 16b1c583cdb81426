"""Presenting a draft as an agent bank through the clearing centre (docs/bank-drafts.md §3).

The test plays the gateway on a real mosquitto: it reads the presentment on
``clearing/intra/in`` with the gateway's own readers (signature pinned to
the clearing-system certificate, envelope, ``DrftPrsntmt``) and answers
with a signed ``intra.draft.answer`` on ``clearing/intra/out``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.clearing.envelope import build_envelope, out_msg_id, serialize
from gateway.cli.sim import main as sim_main
from gateway.drafts.documents import (
    MSG_TP_ANSWER,
    MSG_TP_PRESENT,
    DraftAnswer,
    build_answer,
    read_presentment,
)
from gateway.drafts.numbers import make_draft_no
from gateway.drafts.records import ACCEPTED, Presentment, Reason, rejected
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, sign_enveloped
from gateway.sim.present import (
    DEFAULT_HOLDER_ACCT,
    DEFAULT_HOLDER_NAME,
    EXIT_TIMEOUT,
    CentreLink,
    present,
)
from gateway.testing import Broker
from tests.unit.clearing.pacs_samples import CREATED, OUR_PARTICIPANT, WORK_DATE
from tests.unit.sim.test_clearing_sim import (
    SIM_PARTICIPANT,
    WAIT,
    Answer,
    Gateway,
    gateway_side,
    running,
    sim_config,
)

DRAFT_NO = make_draft_no(OUR_PARTICIPANT, 42)
CODE = "0123456789012345"
AGENT = "105100000017"
ISSUED = date(2026, 11, 2)


def link(broker: Broker, system_key: SigningKey, gateway_key: SigningKey) -> CentreLink:
    return CentreLink(
        broker_url=broker.url,
        sign_key=system_key,
        gateway_certs=gateway_key.chain,
        centre=SIM_PARTICIPANT,
        bank=OUR_PARTICIPANT,
    )


def answer_message(
    key: SigningKey, seq: int, prsntmt_id: str, reason: Reason | None = None
) -> bytes:
    """The gateway's ``intra.draft.answer``, signed with ``key``."""
    outcome = ACCEPTED if reason is None else rejected(reason)
    document = build_answer(DraftAnswer(prsntmt_id, DRAFT_NO, outcome))
    msg_id = out_msg_id(OUR_PARTICIPANT, WORK_DATE, seq)
    root = build_envelope(
        MSG_TP_ANSWER, msg_id, OUR_PARTICIPANT, SIM_PARTICIPANT, CREATED, WORK_DATE, document
    )
    sign_enveloped(root, key)
    return serialize(root)


async def presentment_in(gw: Gateway) -> tuple[Answer, Presentment]:
    got = await gw.next()
    assert got.topic == "clearing/intra/in"
    return got, read_presentment(got.env.document)


async def test_present_sends_a_signed_presentment_and_returns_the_gateways_answer(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    async with gateway_side(broker, system_key) as gw:  # verifies against the system cert
        task = asyncio.create_task(
            present(
                link(broker, system_key, gateway_key),
                draft_no=DRAFT_NO,
                code=CODE,
                amount=Decimal("1000.00"),
                settle_amount=Decimal("800.50"),
                agent_bank=AGENT,
                issue_date=ISSUED,
                prsntmt_id="AG-0001",
                timeout=WAIT,
            )
        )
        got, doc = await presentment_in(gw)
        env = got.env
        assert (env.msg_tp, env.sndr, env.rcvr) == (
            MSG_TP_PRESENT,
            SIM_PARTICIPANT,
            OUR_PARTICIPANT,
        )
        assert got.user_properties == {"MsgTp": MSG_TP_PRESENT, "MsgId": env.msg_id}
        assert len(env.msg_id) == 35 and env.msg_id.startswith(SIM_PARTICIPANT)
        assert doc == Presentment(
            "AG-0001", DRAFT_NO, CODE, ISSUED, Decimal("1000.00"), Decimal("800.50"), AGENT,
            DEFAULT_HOLDER_ACCT, DEFAULT_HOLDER_NAME,
        )  # fmt: skip

        out = "clearing/intra/out"
        await gw.client.publish(out, answer_message(gateway_key, 1, "AG-0002"), qos=1)  # another
        await gw.client.publish(out, answer_message(system_key, 2, "AG-0001"), qos=1)  # forged
        await gw.client.publish(out, answer_message(gateway_key, 3, "AG-0001", Reason.PD), qos=1)
        assert await asyncio.wait_for(task, WAIT) == ("RJCT", "PD")


async def test_the_same_prsntmt_id_twice_is_a_redelivery_under_a_new_msg_id(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey
) -> None:
    config = sim_config(
        broker, system_key, gateway_key, participant=SIM_PARTICIPANT,
        gateway_participant=OUR_PARTICIPANT,
    )  # fmt: skip
    centre = CentreLink.of_simulator(config)  # the simulator's broker, keys and codes
    async with running(config) as sim:
        async with gateway_side(broker, system_key) as gw:
            seen = []
            for _ in range(2):
                task = asyncio.create_task(
                    present(
                        centre, draft_no=DRAFT_NO, code=CODE, amount=Decimal("10.00"),
                        settle_amount=Decimal("10.00"), agent_bank=AGENT, prsntmt_id="AG-7",
                        timeout=WAIT,
                    )
                )  # fmt: skip
                got, doc = await presentment_in(gw)
                seen.append((got.env.msg_id, doc.prsntmt_id))
                # the gateway's first answer, re-sent under its original MsgId
                payload = answer_message(gateway_key, 9, "AG-7")
                await gw.client.publish("clearing/intra/out", payload, qos=1)
                assert await asyncio.wait_for(task, WAIT) == ("ACCP", None)
                receipt = await gw.next()  # the running simulator receipts the answer
                assert receipt.env.msg_tp == "ccms.990"
        assert seen[0][1] == seen[1][1] == "AG-7"
        assert seen[0][0] != seen[1][0]
        assert sim.draft_answers["AG-7"].result == "ACCP"
        assert sim.stats["duplicates"] == 1  # the answer's second delivery
        assert sim.stats["draft_answers_repeated"] == 0


# ------------------------------------------------------------------------- CLI


def cli(pki: DevPki, broker_url: str, *extra: str) -> list[str]:
    return [
        "clearing", "present",
        "--draft", DRAFT_NO, "--code", CODE, "--amount", "1000.00", "--settle", "999.99",
        "--agent", AGENT, "--issue-date", ISSUED.isoformat(),
        "--broker", broker_url,
        "--key", str(pki.clearing_system_key), "--cert", str(pki.clearing_system_cert),
        "--gateway-cert", str(pki.clearing_cert),
        "--participant", SIM_PARTICIPANT, "--gateway-participant", OUR_PARTICIPANT,
        *extra,
    ]  # fmt: skip


async def test_the_command_prints_the_answer_and_exits_0(
    broker: Broker, system_key: SigningKey, gateway_key: SigningKey, dev_pki: DevPki
) -> None:
    async with gateway_side(broker, system_key) as gw:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli.sim",
            *cli(dev_pki, broker.url, "--prsntmt-id", "AG-CLI-1", "--timeout", str(WAIT)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, doc = await presentment_in(gw)
            assert (doc.prsntmt_id, doc.settle_amount, doc.agent_bank) == (
                "AG-CLI-1",
                Decimal("999.99"),
                AGENT,
            )
            payload = answer_message(gateway_key, 4, "AG-CLI-1", Reason.SA)
            await gw.client.publish("clearing/intra/out", payload, qos=1)
            stdout, stderr = await asyncio.wait_for(proc.communicate(), WAIT * 2)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, stderr
    assert stdout.decode() == "RJCT SA\n"
    assert "AG-CLI-1" in stderr.decode()


def test_the_command_exits_3_when_nobody_answers(
    broker: Broker, dev_pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim_main(cli(dev_pki, broker.url, "--timeout", "0.2")) == EXIT_TIMEOUT
    out, err = capsys.readouterr()
    assert out == ""
    assert "no answer to PrsntmtId P" in err  # the generated one, named on stderr too


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--agent", "10510000001"), "AgentBank"),
        (("--prsntmt-id", "AG 1"), "PrsntmtId"),
        (("--code", "12345"), "Code"),
        (("--settle", "1.001"), "fen"),
        (("--holder-name", " "), "HolderName"),
    ],
)
def test_the_command_refuses_a_field_before_it_connects(
    dev_pki: DevPki, capsys: pytest.CaptureFixture[str], extra: tuple[str, str], message: str
) -> None:
    # a broker URL nothing listens on: reaching it would be exit 1, not 2
    assert sim_main(cli(dev_pki, "mqtt://127.0.0.1:9", *extra)) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ("--amount", "abc"),
        ("--issue-date", "2026-13-01"),
        ("--timeout", "0"),
        ("--timeout", "soon"),
    ],
)
def test_the_command_refuses_malformed_options(dev_pki: DevPki, extra: tuple[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        sim_main(cli(dev_pki, "mqtt://127.0.0.1:9", *extra))
    assert exc.value.code == 2


def test_the_command_needs_the_draft_and_the_keys(
    dev_pki: DevPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli(dev_pki, "mqtt://127.0.0.1:9")
    with pytest.raises(SystemExit) as exc:
        sim_main([a for a in args if a not in ("--draft", DRAFT_NO)])
    assert exc.value.code == 2
    missing = str(tmp_path / "missing.pem")
    args[args.index("--key") + 1] = missing
    assert sim_main(args) == 2
    assert "BEGIN" not in capsys.readouterr().err


def test_the_command_exits_1_when_the_broker_is_unreachable(
    dev_pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim_main(cli(dev_pki, "mqtt://127.0.0.1:9")) == 1
    assert "broker" in capsys.readouterr().err
