"""Credential kinds and what each may do (docs/protocol.md §6, RetCode 2006).

The bank's client CA issues two kinds of certificate, told apart by a
certificate-policy OID that the configuration maps to a kind: USBKey
(hardware token, payment operators) and file certificate (PKCS#12 file,
query staff and small payments).  A certificate whose policies map to no
kind may do nothing: refusing is the only safe default for an unknown
credential.

Not here: the file kind's 200,000.00 daily cap per operator and the
registry's daily limits need durable running totals (a journal concern);
the operator's per-transaction ``max_item`` is checked by
``gateway.keys.verifier``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal

from cryptography import x509

from gateway.errors import GatewayError, RetCode
from gateway.model import CredentialKind

#: Example policy OIDs used by the dev PKI (``gateway.keys.devpki``) under a
#: private-enterprise arc reserved for documentation; real deployments
#: configure the OIDs their client CA writes.
DEV_USBKEY_OID = "1.3.6.1.4.1.99999.1.1"
DEV_FILE_OID = "1.3.6.1.4.1.99999.1.2"

#: docs/protocol.md §6: what a file certificate may do by default.
FILE_ALLOWED_DEFAULT = frozenset({"BAL", "STATUS", "NTFY", "INQ", "RPLY", "PAY", "PAYROLL"})
#: docs/protocol.md §6: file-certificate PAY/PAYROLL items must be *below* this amount.
FILE_MAX_ITEM_DEFAULT = Decimal("50000.00")
#: docs/foreign-currency.md §1: the one currency a file certificate may send.
FILE_CURRENCY = "CNY"
#: docs/protocol.md §6: "at most 200,000.00 a day per operator" for a file certificate.
FILE_DAILY_LIMIT_DEFAULT = Decimal("200000.00")


def policy_oids(cert: x509.Certificate) -> frozenset[str]:
    """The dotted OIDs of the certificatePolicies extension (empty if absent or unreadable)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    except x509.ExtensionNotFound:
        return frozenset()
    except ValueError:  # a malformed extension: treat as no policy (→ no kind → 2006)
        return frozenset()
    return frozenset(p.policy_identifier.dotted_string for p in ext.value)


@dataclass(frozen=True)
class KindPolicy:
    """Maps policy OIDs to credential kinds and enforces the kind's permissions.

    ``file_allowed`` and ``file_max_item`` default to docs/protocol.md §6; the
    USBKey kind may use every TrnCode (its limits are the operator's, from the
    enrolment registry).
    """

    usbkey_oids: frozenset[str]
    file_oids: frozenset[str]
    file_allowed: frozenset[str] = FILE_ALLOWED_DEFAULT
    file_max_item: Decimal = FILE_MAX_ITEM_DEFAULT
    file_daily_limit: Decimal = FILE_DAILY_LIMIT_DEFAULT

    def __post_init__(self) -> None:
        both = self.usbkey_oids & self.file_oids
        if both:
            raise ValueError(f"policy OIDs mapped to both kinds: {', '.join(sorted(both))}")

    @classmethod
    def dev(cls) -> KindPolicy:
        """The mapping for certificates of the dev PKI."""
        return cls(usbkey_oids=frozenset({DEV_USBKEY_OID}), file_oids=frozenset({DEV_FILE_OID}))

    def kind_of(self, cert: x509.Certificate) -> CredentialKind | None:
        """The certificate's kind from its certificatePolicies, or None if none maps.

        A certificate carrying policies of both kinds gets the more restricted
        one (file): an ambiguous credential must not gain USBKey rights.
        """
        oids = policy_oids(cert)
        if oids & self.file_oids:
            return CredentialKind.FILE
        if oids & self.usbkey_oids:
            return CredentialKind.USBKEY
        return None

    def daily_cap(
        self, kind: CredentialKind | None, operator_limit: Decimal | None
    ) -> Decimal | None:
        """The operator's cap for one day: the smaller of the kind's and the registry's.

        docs/protocol.md §6: a file certificate pays at most 200,000.00 a day per
        operator; USBKey operators are bound by their registry limit only.
        """
        caps = [c for c in (operator_limit,) if c is not None]
        if kind is CredentialKind.FILE:
            caps.append(self.file_daily_limit)
        return min(caps) if caps else None

    def check(
        self,
        kind: CredentialKind | None,
        trn_code: str,
        amounts: Sequence[Decimal],
        *,
        currencies: Collection[str] = (),
    ) -> None:
        """Raise 2006 unless ``kind`` may do ``trn_code`` for these amounts (docs/protocol.md
        §6) in these currencies: a file certificate sends CNY only (docs/foreign-currency.md
        §1), as the small-payment credential it is."""
        if kind is None:
            raise GatewayError(
                RetCode.NOT_PERMITTED, "certificate policy maps to no credential kind"
            )
        if kind is CredentialKind.USBKEY:
            return
        if trn_code not in self.file_allowed:
            raise GatewayError(
                RetCode.NOT_PERMITTED, f"TrnCode {trn_code} not allowed for a file certificate"
            )
        if any(ccy != FILE_CURRENCY for ccy in currencies):
            raise GatewayError(
                RetCode.NOT_PERMITTED,
                "foreign-currency payments not allowed for a file certificate",
            )
        for amount in amounts:
            if amount >= self.file_max_item:
                raise GatewayError(
                    RetCode.NOT_PERMITTED,
                    f"Amount must be below {self.file_max_item} for a file certificate",
                )
