"""The clearing link's documents in one import (clearing.md §2-§4), sans-IO.

The code lives in two modules of one concern each: ``envelope`` (the
``ClrMsg`` envelope, the ccms.990 receipt, MsgIds, topics, the hardened
parse of a message) and ``pacs`` (the ISO 20022 pacs.008 and pacs.002
Documents).  Engines, the link and the simulators import from here.
"""

from __future__ import annotations

from gateway.clearing.envelope import (
    MAX_MESSAGE_BYTES,
    MSG_TP_BEPS_DEBIT,
    MSG_TP_FOR_ENGINE,
    MSG_TP_RECEIPT,
    MSG_TP_STATUS,
    NS_CLR,
    Envelope,
    Receipt,
    build_envelope,
    build_receipt,
    engine_of_topic,
    format_datetime,
    hardened_parser,
    in_topic,
    out_msg_id,
    out_topic,
    parse_envelope,
    parse_message,
    parse_receipt,
    serialize,
)
from gateway.clearing.pacs import (
    NS_PACS002,
    NS_PACS003,
    NS_PACS008,
    PACS003_NAME,
    PACS008_NAME,
    TX_STATUSES,
    CreditTx,
    GroupHeader,
    build_pacs002,
    build_pacs008,
    format_amount,
    parse_amount,
    parse_pacs002,
    parse_pacs008,
    transaction_ids,
)
from gateway.journal.records import TxResult

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MSG_TP_BEPS_DEBIT",
    "MSG_TP_FOR_ENGINE",
    "MSG_TP_RECEIPT",
    "MSG_TP_STATUS",
    "NS_CLR",
    "NS_PACS002",
    "NS_PACS003",
    "NS_PACS008",
    "PACS003_NAME",
    "PACS008_NAME",
    "TX_STATUSES",
    "CreditTx",
    "Envelope",
    "GroupHeader",
    "Receipt",
    "TxResult",
    "build_envelope",
    "build_pacs002",
    "build_pacs008",
    "build_receipt",
    "engine_of_topic",
    "format_amount",
    "format_datetime",
    "hardened_parser",
    "in_topic",
    "out_msg_id",
    "out_topic",
    "parse_amount",
    "parse_envelope",
    "parse_message",
    "parse_pacs002",
    "parse_pacs008",
    "parse_receipt",
    "serialize",
    "transaction_ids",
]
