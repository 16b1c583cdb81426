"""Present a draft to the gateway as an agent bank would, through the clearing centre.

docs/bank-drafts.md §3: an agent paying bank presents a draft (通兑); the
bank's clearing centre forwards it to the issuing bank's gateway as a signed
``intra.draft.present`` on ``{prefix}/intra/in`` (``Sndr`` the centre's
code, ``Rcvr`` the gateway's participant, the agent bank only in the
Document's ``AgentBank``), and the gateway answers with an
``intra.draft.answer`` on ``{prefix}/intra/out``: ACCP, or RJCT with a reason.

:func:`present` does that once with a connection of its own, so it works
beside a running ``gateway-sim clearing`` (which gives the answer its
``ccms.990``) or without one.  It subscribes before it publishes, so the
answer cannot slip past, and waits for the answer that names its
``PrsntmtId``; answers are verified against the pinned gateway certificates
and read with the gateway's own Document reader.  Presenting the same
``PrsntmtId`` again is a redelivery (the gateway must re-send its first
answer); by default each call sends under a new envelope MsgId, of a form
(a 15-digit sequence, 35 characters) that no simulator answer ever has, so
it can never meet another message's MsgId.

``gateway-sim clearing present ...`` is the command line over it: one line
on stdout (``ACCP`` or ``RJCT PD``), exit 0 when an answer came, 3 when none
came in time, 2 for refused options, 1 when the broker failed.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import aiomqtt
from cryptography import x509
from lxml import etree
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.documents import (
    build_envelope,
    hardened_parser,
    parse_envelope,
    parse_message,
    serialize,
)
from gateway.clearing.mqtt_client import PubackClient
from gateway.clock import Clock, SystemClock
from gateway.drafts.documents import (
    MSG_TP_ANSWER,
    MSG_TP_PRESENT,
    DraftAnswer,
    build_presentment,
    read_answer,
)
from gateway.drafts.records import Presentment
from gateway.errors import ConfigError, GatewayError
from gateway.keys.xmldsig import SigningKey, sign_enveloped, verify_pinned
from gateway.sim.clearing import ClearingSimConfig, load_keys
from gateway.sim.cli_options import add_broker_option, add_tls_options, broker_address, broker_tls

#: Exit code of ``present`` when no answer came within ``--timeout``.
EXIT_TIMEOUT: Final = 3
#: Exit code when the broker could not be reached or refused the presentment.
EXIT_BROKER: Final = 1
#: docs/clearing-link.md §3: participant + yyyymmdd + sequence, here 15 digits (35 in all).
MSG_ID_SEQ_DIGITS: Final = 15
DEFAULT_HOLDER_ACCT: Final = "6222020200000000017"
DEFAULT_HOLDER_NAME: Final = "持票人 Holder"
#: Seconds for the broker to answer CONNECT, SUBSCRIBE or PUBLISH.
BROKER_TIMEOUT_S: Final = 10.0


class PresentTimeout(TimeoutError):
    """No answer naming the presentment's PrsntmtId came in time."""


class PresentRefused(Exception):
    """The broker answered the presentment's PUBLISH with a failure reason code."""


@dataclass(frozen=True)
class CentreLink:
    """How the clearing centre reaches the gateway (docs/clearing-link.md §1-§3)."""

    broker_url: str
    #: the clearing systems' key: the gateway verifies presentments against its certificate
    sign_key: SigningKey
    #: pinned: the gateway's answers must be signed by one of these
    gateway_certs: tuple[x509.Certificate, ...]
    topic_prefix: str = "clearing"
    #: the clearing centre's code: the presentment's Sndr
    centre: str = "000000000000"
    #: the gateway's participant code: the presentment's Rcvr
    bank: str = "103100000019"
    #: None: a fresh one per call, so two presenters never take each other's session
    client_id: str | None = None
    tls_context: ssl.SSLContext | None = None
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def of_simulator(cls, config: ClearingSimConfig) -> CentreLink:
        """The link of a clearing simulator's config: its broker, key, pinned gateway
        certificates, prefix and clock; the centre is its ``participant``, the bank its
        ``gateway_participant`` (a client id of its own, not the simulator's)."""
        return cls(
            broker_url=config.broker_url,
            sign_key=config.sign_key,
            gateway_certs=config.gateway_certs,
            topic_prefix=config.topic_prefix,
            centre=config.participant,
            bank=config.gateway_participant,
            tls_context=config.tls_context,
            clock=config.clock,
        )


def new_prsntmt_id(today: date) -> str:
    """A PrsntmtId no one used before: ``P`` + date + 12 random hex digits (23 characters)."""
    return f"P{today:%Y%m%d}{secrets.token_hex(6).upper()}"


def new_msg_id(centre: str, work_date: date) -> str:
    """A 35-character envelope MsgId: ``centre`` + date + a random 15-digit sequence."""
    seq = secrets.randbelow(10**MSG_ID_SEQ_DIGITS)
    return f"{centre}{work_date:%Y%m%d}{seq:0{MSG_ID_SEQ_DIGITS}d}"


def presentment_message(
    link: CentreLink, presentment: Presentment, msg_id: str, work_date: date
) -> bytes:
    """The signed ``intra.draft.present`` ClrMsg (docs/bank-drafts.md §3); ``ValueError``
    for a field the Document or the envelope cannot carry."""
    root = build_envelope(
        MSG_TP_PRESENT,
        msg_id,
        link.centre,
        link.bank,
        link.clock.now(),
        work_date,
        build_presentment(presentment),
    )
    sign_enveloped(root, link.sign_key)
    return serialize(root)


async def present(
    link: CentreLink,
    *,
    draft_no: str,
    code: str,
    amount: Decimal,
    settle_amount: Decimal,
    agent_bank: str,
    issue_date: date | None = None,
    prsntmt_id: str | None = None,
    holder_acct: str = DEFAULT_HOLDER_ACCT,
    holder_name: str = DEFAULT_HOLDER_NAME,
    timeout: float = 30.0,
    msg_id: str | None = None,
    work_date: date | None = None,
) -> tuple[str, str | None]:
    """Present one draft and return the gateway's answer: ``("ACCP", None)`` or
    ``("RJCT", reason)``.

    ``issue_date`` and ``work_date`` default to the clock's date, ``prsntmt_id``
    to a new one, ``msg_id`` to a new one each call.  Raises
    :class:`PresentTimeout` when no answer naming the PrsntmtId arrives within
    ``timeout`` seconds of the publish, ``ValueError`` for a field the
    Documents refuse, ``aiomqtt.MqttError`` or :class:`PresentRefused` when the
    broker fails.
    """
    today = link.clock.now().date()
    work_date = work_date or today
    presentment = Presentment(
        prsntmt_id=prsntmt_id or new_prsntmt_id(today),
        draft_no=draft_no,
        code=code,
        issue_date=issue_date or today,
        amount=amount,
        settle_amount=settle_amount,
        agent_bank=agent_bank,
        holder_acct=holder_acct,
        holder_name=holder_name,
    )
    msg_id = msg_id or new_msg_id(link.centre, work_date)
    payload = presentment_message(link, presentment, msg_id, work_date)
    answer = await _exchange(link, payload, msg_id, presentment.prsntmt_id, timeout)
    reason = answer.answer.reason
    return answer.answer.result.value, reason.value if reason is not None else None


async def _exchange(
    link: CentreLink, payload: bytes, msg_id: str, prsntmt_id: str, timeout: float
) -> DraftAnswer:
    host, port = broker_address(link.broker_url, link.tls_context)
    client = PubackClient(
        host,
        port,
        identifier=link.client_id or f"draft-presenter-{secrets.token_hex(4)}",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        tls_context=link.tls_context,
        timeout=BROKER_TIMEOUT_S,
    )
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = [("MsgTp", MSG_TP_PRESENT), ("MsgId", msg_id)]
    parser = hardened_parser()
    async with client:
        # docs/bank-drafts.md §3: the answer comes on the gateway's outbound INTRA topic
        await client.subscribe(f"{link.topic_prefix}/intra/out", qos=1)
        try:
            code = await client.publish_qos1(
                f"{link.topic_prefix}/intra/in", payload, props, BROKER_TIMEOUT_S
            )
        except TimeoutError:
            raise aiomqtt.MqttError("no PUBACK in time") from None
        if code is not None and code.is_failure:
            raise PresentRefused(str(code))
        try:
            async with asyncio.timeout(timeout):
                async for message in client.messages:
                    data = message.payload if isinstance(message.payload, bytes) else b""
                    answer = _answer_in(data, link.gateway_certs, parser)
                    if answer is not None and answer.prsntmt_id == prsntmt_id:
                        return answer
        except TimeoutError:
            pass
    raise PresentTimeout(f"no answer to PrsntmtId {prsntmt_id} within {timeout:g} s")


def _answer_in(
    data: bytes, trusted: Sequence[x509.Certificate], parser: etree.XMLParser
) -> DraftAnswer | None:
    """The ``DrftAnswr`` of a verified ``intra.draft.answer``; None for anything else."""
    try:
        root = parse_message(data, parser)
        env = parse_envelope(verify_pinned(root, trusted).signed_root)
        return read_answer(env.document) if env.msg_tp == MSG_TP_ANSWER else None
    except (ValueError, GatewayError):
        return None  # not signed by the gateway, or not an answer: not ours to read


# ------------------------------------------------------------------------- CLI


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not an amount") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError("an amount is a finite number")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a date is YYYY-MM-DD") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("seconds must be a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("seconds must be positive")
    return value


def present_parser() -> argparse.ArgumentParser:
    """``gateway-sim clearing present``'s options."""
    p = argparse.ArgumentParser(
        prog="gateway-sim clearing present",
        description="Present a draft to the gateway as an agent bank, through the clearing"
        " centre, and print its answer (docs/bank-drafts.md §3).",
    )
    p.add_argument("--draft", required=True, help="DraftNo (20 digits)")
    p.add_argument("--code", required=True, help="the draft's Code (16 digits)")
    p.add_argument("--amount", required=True, type=_decimal, help="the face Amount")
    p.add_argument("--settle", required=True, type=_decimal, help="the SettleAmount")
    p.add_argument("--agent", required=True, help="the agent bank's 12-digit code")
    p.add_argument("--issue-date", type=_date, help="YYYY-MM-DD (default: today)")
    p.add_argument("--prsntmt-id", help="PrsntmtId; the same one again is a redelivery")
    p.add_argument("--timeout", type=_positive, default=30.0, help="seconds to wait (30)")
    p.add_argument("--holder-acct", default=DEFAULT_HOLDER_ACCT, help="HolderAcct")
    p.add_argument("--holder-name", default=DEFAULT_HOLDER_NAME, help="HolderName")
    p.add_argument("--msg-id", help="envelope MsgId (default: a new one each time)")
    p.add_argument("--work-date", type=_date, help="envelope WorkDt (default: today)")
    add_broker_option(p)
    p.add_argument("--prefix", default="clearing", help="topic prefix (docs/clearing-link.md §2)")
    p.add_argument("--key", type=Path, required=True, help="clearing systems' signing key (PEM)")
    p.add_argument("--cert", type=Path, required=True, help="its certificate (PEM)")
    p.add_argument(
        "--gateway-cert",
        type=Path,
        action="append",
        required=True,
        help="pinned gateway clearing certificate (PEM); repeatable",
    )
    p.add_argument("--participant", default="000000000000", help="the centre's code: Sndr")
    p.add_argument("--gateway-participant", default="103100000019", help="the gateway's code: Rcvr")
    p.add_argument("--client-id", help="MQTT client id (default: a new one)")
    add_tls_options(p)
    return p


def run_present(argv: Sequence[str]) -> int:
    """``gateway-sim clearing present ...``: 0 answered, 3 timed out, 2 refused, 1 broker."""
    args = present_parser().parse_args(list(argv))
    prog = "gateway-sim clearing present"
    try:
        key, certs = load_keys(args.key, args.cert, args.gateway_cert)
        link = CentreLink(
            broker_url=args.broker,
            sign_key=key,
            gateway_certs=certs,
            topic_prefix=args.prefix,
            centre=args.participant,
            bank=args.gateway_participant,
            client_id=args.client_id,
            tls_context=broker_tls(args),
        )
        broker_address(link.broker_url, link.tls_context)
    except (ConfigError, ValueError, OSError, ssl.SSLError) as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    prsntmt_id = args.prsntmt_id or new_prsntmt_id(link.clock.now().date())
    sys.stderr.write(f"{prog}: PrsntmtId {prsntmt_id}\n")  # to present it again
    try:
        result, reason = asyncio.run(
            present(
                link,
                draft_no=args.draft,
                code=args.code,
                amount=args.amount,
                settle_amount=args.settle,
                agent_bank=args.agent,
                issue_date=args.issue_date,
                prsntmt_id=prsntmt_id,
                holder_acct=args.holder_acct,
                holder_name=args.holder_name,
                timeout=args.timeout,
                msg_id=args.msg_id,
                work_date=args.work_date,
            )
        )
    except PresentTimeout as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return EXIT_TIMEOUT
    except ValueError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    except (aiomqtt.MqttError, PresentRefused) as exc:
        sys.stderr.write(f"{prog}: broker: {exc}\n")
        return EXIT_BROKER
    sys.stdout.write(f"{result} {reason}\n" if reason else f"{result}\n")
    return 0


__all__ = [
    "DEFAULT_HOLDER_ACCT",
    "DEFAULT_HOLDER_NAME",
    "EXIT_TIMEOUT",
    "CentreLink",
    "PresentRefused",
    "PresentTimeout",
    "new_msg_id",
    "new_prsntmt_id",
    "present",
    "present_parser",
    "presentment_message",
    "run_present",
]
