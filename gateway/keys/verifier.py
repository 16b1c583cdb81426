"""Request verification in the order of docs/protocol.md §3, in one place.

The pipeline calls ``verify_signature`` (2001 only: the profile, digest and
value, ``gateway.keys.xmldsig``) as soon as the schema passed, then reads the
Head from ``Verified.signed_root`` and calls ``check_credentials``, which
answers with the first failure of:

2002 → 2003 → 2004  chain, validity, revocation (``TrustStore.check``)
2005                 certificate enrolled for CorpId/OperId (``Registry.check_signer``)
2006                 kind permissions (docs/protocol.md §6), the corporate's TrnCodes,
                     the operator's per-transaction ``max_item``
2007                 source address allowed for CorpId (``Registry.check_source``)

The verifier holds references to immutable collaborators; a reload builds a
new ``RequestVerifier`` and swaps it in whole.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lxml import etree

from gateway.errors import GatewayError, RetCode
from gateway.keys.enrolment import Operator, Registry
from gateway.keys.kinds import KindPolicy
from gateway.keys.trust import TrustStore, fingerprint
from gateway.keys.xmldsig import Verified, verify_enveloped
from gateway.model import Signer


@dataclass(frozen=True)
class Credentials:
    """Who signed, as established by verification, and their enrolment entry."""

    signer: Signer
    operator: Operator


class RequestVerifier:
    """Signature and credential checks for CorpLink requests (docs/protocol.md §3, §6)."""

    def __init__(self, trust: TrustStore, registry: Registry, kinds: KindPolicy) -> None:
        self.trust = trust
        self.registry = registry
        self.kinds = kinds

    def verify_signature(self, root: etree._Element) -> Verified:
        """The profile check alone; raises 2001 only."""
        return verify_enveloped(root)

    def check_credentials(
        self,
        verified: Verified,
        corp_id: str,
        oper_id: str,
        trn_code: str,
        amounts: Sequence[Decimal],
        peer_ip: str,
        now: datetime,
        *,
        currencies: Collection[str] = (),
    ) -> Credentials:
        """Checks 2002 to 2007 in the order of docs/protocol.md §3; the first failure raises.

        ``amounts`` are the item amounts of a payment request (one for PAY,
        one per item for PAYROLL/PAIN001/MT101, none for queries); ``now`` is
        the injected clock's instant; ``currencies`` the payment's ``Ccy``
        values (a file certificate may send CNY only, docs/foreign-currency.md §1).
        """
        cert = verified.signer
        self.trust.check(verified.certificates, now)
        fp = fingerprint(cert)
        operator = self.registry.check_signer(corp_id, oper_id, fp)
        kind = self.kinds.kind_of(cert)
        self.kinds.check(kind, trn_code, amounts, currencies=currencies)
        if kind is None:  # unreachable (check() refuses None); narrows the type
            raise GatewayError(RetCode.NOT_PERMITTED, "certificate maps to no credential kind")
        corp = self.registry.corporate(corp_id)
        if corp is not None and corp.trn_codes is not None and trn_code not in corp.trn_codes:
            raise GatewayError(RetCode.NOT_PERMITTED, f"TrnCode {trn_code} not allowed for CorpId")
        if operator.max_item is not None and any(a > operator.max_item for a in amounts):
            raise GatewayError(RetCode.NOT_PERMITTED, "Amount above the operator's item limit")
        self.registry.check_source(corp_id, peer_ip)
        signer = Signer(
            fingerprint=fp,
            subject=cert.subject.rfc4514_string(),
            kind=kind,
            serial=cert.serial_number,
        )
        return Credentials(signer=signer, operator=operator)
