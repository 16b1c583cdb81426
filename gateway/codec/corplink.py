"""The CorpLink v1 codec: schema checks, typed decode, response rendering.

Stages, in docs/protocol.md §8's order, for a body that ``parse_body`` accepted:

1. ``read_head`` — best-effort TrnCode/CorpId/MsgId, so that any refusal
   from here on can echo them (§8: empty only when the request "could not be
   parsed far enough").
2. ``validate`` — the schema stage, 1003 and 1004 (§2, §4, §8).
3. (signature layer, 2001-2007, outside this module)
4. ``decode`` — the typed ``Request`` from the verified root, with the
   idempotency digest (§7) and the amount rules (4004, §4).
5. ``render`` + ``serialize`` — the response (§5) in the request's encoding
   (§1), signed by the caller in between.

Decisions on the order within the schema stage (§8 lists "schema (1003,
1004)" as one step):

- A root that is not ``{urn:corplink:1}CorpLink`` → 1003 naming it.
- An unknown ``Head/TrnCode`` value → 1004 *before* the XSD, so a client that
  uses a TrnCode we do not know gets "unknown TrnCode" rather than a
  complaint about the Body element that goes with it.  Likewise a PAIN001
  whose ``Document`` is another pain.001 version → 1004 (unsupported payload).
- Then the XSD (1003, naming the first offending element), then the Body
  element against the TrnCode (1003 naming the Body child).
- Then ``check_payload``: what the batch payloads need beyond the XSD —
  PAYROLL's item count and ``SeqNo`` 1..n, the pain.001 document (the
  official schema when configured, then the pain.001 codec's rules) and the
  MT101 block structure — still 1003/1004 of the schema stage, so answered
  before any signature work (§8).  Their amount errors (4004) wait for the
  decode stage, which raises them as ``BusinessRuleError``.

Each PAIN001 ``CdtTrfTxInf`` and each MT101 sequence B becomes a
``BatchItem`` with ``seq_no`` = its position (1..n), like a PAYROLL item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree

from gateway.codec.corplink_decode import (
    BODY_ELEMENT,
    CORPLINK,
    DS_NS,
    DS_SIGNATURE,
    NS,
    PAIN001_NS,
    BusinessRuleError,
    check_batch,
    check_payees,
    children,
    decode_body,
    decode_parts,
    optional_text,
)
from gateway.codec.corplink_render import render_response, serialize
from gateway.codec.foreign import AmountCheck, cny_only
from gateway.codec.mt101 import parse_mt101, to_transfers
from gateway.codec.pain001 import decode_pain001, load_schema
from gateway.codec.xmlparse import local_name
from gateway.errors import GatewayError, RetCode
from gateway.model import Batch, BatchItem, Body, Head, Request, Response, TrnCode
from gateway.paths import corplink_schema_path

__all__ = ["BusinessRuleError", "CorpLinkCodec", "PartialHead", "serialize"]

_TRN_CODES: Final = frozenset(code.value for code in TrnCode)

# Request patterns (docs/protocol.md §2), for best-effort echoes before the schema.
_TRN_TOKEN: Final = re.compile(r"[A-Za-z0-9_]{1,20}")
_CORP_ID_RE: Final = re.compile(r"[A-Z0-9]{1,20}")
_MSG_ID_RE: Final = re.compile(r"[A-Za-z0-9-]{1,35}")

_ISO_NS: Final = re.compile(r"urn:iso:std:iso:20022:tech:xsd:(pain\.001\.[0-9]{3}\.[0-9]{2})")

# The XSD is our own file, but it is still read with entities and network off.
_SCHEMA_PARSER: Final = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


@dataclass(frozen=True, slots=True)
class PartialHead:
    """What a refusal can echo before the schema passed; '' when absent or invalid."""

    trn_code: str
    corp_id: str
    msg_id: str


EMPTY_HEAD: Final = PartialHead("", "", "")


class CorpLinkCodec:
    """Schema validation, decoding and rendering for CorpLink v1.

    Holds the compiled XSD (loaded once; lxml validates ~67k small documents
    per second, docs/architecture.md §9).  Not thread-safe in its error reporting (lxml's
    schema error log is per object): give each worker thread or process its
    own codec.
    """

    def __init__(
        self,
        schema_path: Path | None = None,
        *,
        pain001_xsd_dir: Path | None = None,
        amount_check: AmountCheck = cny_only,
    ) -> None:
        """``pain001_xsd_dir``: the official ISO 20022 schema folder, when the
        configuration names one; PAIN001 documents are then validated against
        ``pain.001.001.09.xsd`` too (``ConfigError`` here if it cannot be read).

        ``amount_check``: the configured currencies (``CurrencyTable.check_amount``,
        docs/foreign-currency.md §1), run on every amount not in CNY; without it
        the codec takes CNY only."""
        self._amount_check = amount_check
        path = schema_path if schema_path is not None else corplink_schema_path()
        self._schema = etree.XMLSchema(etree.parse(str(path), _SCHEMA_PARSER))
        self._pain001_xsd_dir = pain001_xsd_dir
        if pain001_xsd_dir is not None:
            load_schema(pain001_xsd_dir)  # fail at start, not at the first PAIN001

    # -- stage 1: echoes for early refusals ---------------------------------

    def read_head(self, root: etree._Element) -> PartialHead:
        """Best-effort TrnCode/CorpId/MsgId from a parsed, not yet validated root."""
        if root.tag != CORPLINK:
            return EMPTY_HEAD
        head = children(root).get("Head")
        if head is None:
            return EMPTY_HEAD
        fields = children(head)
        return PartialHead(
            trn_code=_match(optional_text(fields, "TrnCode"), _TRN_TOKEN),
            corp_id=_match(optional_text(fields, "CorpId"), _CORP_ID_RE),
            msg_id=_match(optional_text(fields, "MsgId"), _MSG_ID_RE),
        )

    # -- stage 2: schema (1003, 1004) --------------------------------------

    def validate(self, root: etree._Element) -> None:
        """Raise ``GatewayError`` 1003/1004 unless ``root`` is a valid request."""
        if root.tag != CORPLINK:
            raise GatewayError(
                RetCode.SCHEMA, f"{local_name(root.tag)}: root must be CorpLink in {NS}"
            )
        parts = children(root)
        head = parts.get("Head")
        trn = None if head is None else optional_text(children(head), "TrnCode")
        body = parts.get("Body")
        payload = None if body is None else next(body.iterchildren(etree.Element), None)
        if trn is not None:
            _check_trn_code(trn, payload)
        if not self._schema.validate(root):
            raise GatewayError(RetCode.SCHEMA, _schema_detail(self._schema.error_log))
        # The schema passed, so TrnCode exists and is known, and the root's
        # element children are exactly Head, Body and one ds:* element.
        if trn is None or payload is None or payload.tag != BODY_ELEMENT.get(trn):
            name = local_name(None if payload is None else payload.tag)
            raise GatewayError(RetCode.SCHEMA, f"{name}: does not match TrnCode {trn}")
        last = list(root.iterchildren(etree.Element))[-1]
        if last.tag != DS_SIGNATURE:  # the XSD admits any element of the ds namespace
            raise GatewayError(RetCode.SCHEMA, f"{local_name(last.tag)}: expected Signature")

    def check_payload(self, root: etree._Element) -> None:
        """The batch payloads' schema-stage rules (1003, 1004), on a ``validate``d root.

        PAY and PAYROLL: the payee-bank fields (docs/foreign-currency.md §1);
        PAYROLL: 1-50,000 items numbered 1..n; PAIN001: the pain.001 document;
        MT101: the FIN block structure and fields (docs/protocol.md §4, §8).  An
        amount error (4004) passes here: it is a business rule, answered
        after the credential and replay checks by ``decode``.
        """
        trn = optional_text(children(children(root)["Head"]), "TrnCode")
        if trn not in _BATCH_PAYLOADS and trn != TrnCode.PAY:
            return
        payload = next(children(root)["Body"].iterchildren(etree.Element))
        try:
            if trn == TrnCode.PAY:
                check_payees(trn, payload)
            elif trn == TrnCode.PAYROLL:
                check_batch(payload)
                check_payees(trn, payload)
            elif trn == TrnCode.PAIN001:
                decode_pain001(
                    payload, xsd_dir=self._pain001_xsd_dir, amount_check=self._amount_check
                )
            else:
                parse_mt101(payload.text or "", amount_check=self._amount_check)
        except GatewayError as exc:
            if exc.code is not RetCode.AMOUNT_INVALID:
                raise

    # -- stage 4: typed request --------------------------------------------

    def decode(self, signed_root: etree._Element, encoding: str) -> Request:
        """The typed request from the verified root (Signature removed).

        Every TrnCode of docs/protocol.md §4 decodes: NTFY, INQ, RPLY and BAL to
        ``NotifyPull``, ``Inquiry``, ``Reply`` and ``BalanceQuery`` (their rules
        are all in the XSD, 1003 in ``validate``), DRAFT and DRAFTRFND to
        ``DraftApply`` and ``DraftRefundRequest``.  Raises ``BusinessRuleError``
        (4004) for amount rules, in any item of a batch; a DRAFT's currency is
        left to the business rules.
        """
        head, payload, digest = decode_parts(signed_root)
        body: Body
        if head.trn_code in _OWN_CODECS:
            body = self._payload_batch(head, payload, digest)
        else:
            body = decode_body(head, payload, digest, self._amount_check)
        return Request(head, body, digest, encoding)

    def _payload_batch(self, head: Head, payload: etree._Element, digest: str) -> Batch:
        """A PAIN001 document or an MT101 message as a batch, one item per transaction.

        The codecs' 4004 becomes ``BusinessRuleError``, answered after §8's
        replay and freshness checks like a PAYROLL's.
        """
        try:
            if head.trn_code == TrnCode.PAIN001:
                found = [
                    (i.seq_no, i.transfer, i.bic)
                    for i in decode_pain001(
                        payload, xsd_dir=self._pain001_xsd_dir, amount_check=self._amount_check
                    )
                ]
            else:
                mt = parse_mt101(payload.text or "", amount_check=self._amount_check)
                found = [(i.seq_no, i.transfer, i.bic) for i in to_transfers(mt)]
        except GatewayError as exc:
            if exc.code is RetCode.AMOUNT_INVALID:
                raise BusinessRuleError(
                    exc.code, exc.detail or exc.code.text, head=head, digest=digest
                ) from None
            raise
        return Batch(items=tuple(BatchItem(seq, transfer, bic) for seq, transfer, bic in found))

    # -- stage 5: response ---------------------------------------------------

    def render(self, rsp: Response) -> etree._Element:
        """The unsigned ``CorpLinkRsp`` tree; sign it, then ``serialize`` it."""
        return render_response(rsp)


_BATCH_PAYLOADS: Final = frozenset(
    {TrnCode.PAYROLL.value, TrnCode.PAIN001.value, TrnCode.MT101.value}
)
"""TrnCodes whose payload has schema-stage rules beyond the XSD (``check_payload``)."""
_OWN_CODECS: Final = frozenset({TrnCode.PAIN001.value, TrnCode.MT101.value})
"""TrnCodes whose payload is decoded by its own codec (pain001, mt101)."""


def _match(text: str | None, pattern: re.Pattern[str]) -> str:
    return text if text is not None and pattern.fullmatch(text) else ""


def _check_trn_code(trn: str, payload: etree._Element | None) -> None:
    """1004: an unknown TrnCode, or a pain.001 version we do not take (§4, §8)."""
    if trn not in _TRN_CODES:
        shown = f" {trn}" if _TRN_TOKEN.fullmatch(trn) else ""
        raise GatewayError(RetCode.UNKNOWN_TRNCODE, f"TrnCode{shown} unknown")
    if trn == TrnCode.PAIN001 and payload is not None and isinstance(payload.tag, str):
        namespace, _, name = payload.tag[1:].rpartition("}")
        version = _ISO_NS.fullmatch(namespace)
        if name == "Document" and version is not None and namespace != PAIN001_NS:
            raise GatewayError(
                RetCode.UNKNOWN_TRNCODE,
                f"{version.group(1)} not supported, expected pain.001.001.09",
            )


# -- turning libxml2's first schema error into a short, safe detail ----------

_ERROR: Final = re.compile(r"Element '([^']*)'(?:, attribute '([^']*)')?: (.*)", re.DOTALL)
_EXPECTED: Final = re.compile(r"Expected is (?:one of )?\( (.*?) \)")
_EXPECTED_NAME: Final = re.compile(r"\{([^}]*)\}([A-Za-z0-9_*]+)")
_WILDCARD_NAMES: Final = {DS_NS: "Signature", PAIN001_NS: "Document"}


# (words in libxml2's message, what the detail says); the first match wins.
_ELEMENT_PROBLEMS: Final[tuple[tuple[str, str], ...]] = (
    ("This element is not expected", "unexpected element{expected}"),
    ("Missing child element", "missing child element{expected}"),
    ("Duplicate key-sequence", "duplicate SeqNo"),
    ("content other than whitespace is not allowed", "unexpected content"),
    ("Element content is not allowed", "unexpected content"),
)
_ATTRIBUTE_PROBLEMS: Final[tuple[tuple[str, str], ...]] = (
    ("is not allowed", "attribute {attribute} not allowed"),
)
_MISSING_ATTRIBUTE: Final = re.compile(r"The attribute '([^']*)' is required but missing")


def _schema_detail(log: etree._ListErrorLog) -> str:
    """``<element>: <what is wrong>`` for the first schema error (docs/protocol.md §8).

    Never echoes a value (it may be an account number) or libxml2's wording.
    """
    first = next(iter(log), None)
    found = _ERROR.match(first.message) if first is not None else None
    if found is None:
        return "CorpLink: invalid"
    element, attribute, message = found.groups()
    if attribute is None and (missing := _MISSING_ATTRIBUTE.search(message)) is not None:
        return f"{local_name(element)}: missing attribute {local_name(missing.group(1))}"
    if attribute is None:
        problems, fallback = _ELEMENT_PROBLEMS, "invalid value"
    else:
        problems, fallback = _ATTRIBUTE_PROBLEMS, "invalid attribute {attribute}"
    template = next((text for words, text in problems if words in message), fallback)
    what = template.format(expected=_expected(message), attribute=local_name(attribute or ""))
    return f"{local_name(element)}: {what}"


def _expected(message: str) -> str:
    listed = _EXPECTED.search(message)
    if listed is None:
        return ""
    names = [
        _WILDCARD_NAMES.get(ns, local) if local == "*" else local
        for ns, local in _EXPECTED_NAME.findall(listed.group(1))
    ]
    return f", expected {' or '.join(names)}" if names else ""
