"""The one revocation policy, shared by the TLS handshake and the signature path.

A client certificate is checked for revocation twice: by OpenSSL in the
mutual-TLS handshake (``gateway.net.tls``) and by the trust store when a
request's XMLDSig signer is verified (docs/protocol.md §3, RetCode 2004).
Both ask this module, so a certificate cannot pass one and fail the other
for a policy reason (the operator's view: docs/operations.md, "TLS, client
certificates and revocation").

The policy:

- A serial listed on a valid CRL of its issuer is revoked: always refused.
- A certificate on the gateway's deny list is revoked: always refused (at the
  handshake right after it, before any frame is read; see
  ``gateway.net.listener``).
- The status is *unknown* when the issuing CA (the client CA or an
  intermediate) has no CRL configured, when its CRL is past nextUpdate
  (stale) or not yet valid (lastUpdate in the future), or when the only CRLs
  naming it do not carry its signature.  ``stale_crl_policy`` decides:
  ``fail_closed`` (default) refuses, ``fail_open`` accepts.  The default
  agrees with ``openssl verify -crl_check_all``.

Each path judges time by its own clock: OpenSSL's handshake by the system
clock, the signature path by the gateway's clock (the same in production;
a test business clock moves only the latter).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

STALE_POLICIES: Final = ("fail_closed", "fail_open")


class Unknown(enum.Enum):
    """Why a certificate's revocation status is unknown (the value is the log/detail text)."""

    NO_CRL = "no CRL"
    STALE = "stale CRL"
    NOT_YET_VALID = "CRL not yet valid"
    BAD_CRL = "CRL signature invalid"


#: OpenSSL verification errors (``X509_V_ERR_*``, x509_vfy.h) that mean "status
#: unknown" rather than "revoked" or "untrusted".  ``X509_V_ERR_CERT_REVOKED``
#: (23) is deliberately absent: a listed serial is never excused.
OPENSSL_UNKNOWN: Final[dict[int, Unknown]] = {
    3: Unknown.NO_CRL,  # UNABLE_TO_GET_CRL
    33: Unknown.NO_CRL,  # UNABLE_TO_GET_CRL_ISSUER
    5: Unknown.BAD_CRL,  # UNABLE_TO_DECRYPT_CRL_SIGNATURE
    8: Unknown.BAD_CRL,  # CRL_SIGNATURE_FAILURE
    11: Unknown.NOT_YET_VALID,  # CRL_NOT_YET_VALID
    12: Unknown.STALE,  # CRL_HAS_EXPIRED
    15: Unknown.BAD_CRL,  # ERROR_IN_CRL_LAST_UPDATE_FIELD
    16: Unknown.BAD_CRL,  # ERROR_IN_CRL_NEXT_UPDATE_FIELD
}

#: ``X509_V_ERR_CERT_REVOKED``: the serial is on a valid CRL.
OPENSSL_REVOKED: Final = 23


@dataclass(frozen=True)
class RevocationPolicy:
    """``keys.stale_crl_policy`` as a decision both verification paths call."""

    stale_crl_policy: str = "fail_closed"

    def __post_init__(self) -> None:
        if self.stale_crl_policy not in STALE_POLICIES:
            msg = f"stale_crl_policy must be one of {', '.join(STALE_POLICIES)}"
            raise ValueError(msg)

    @property
    def fail_open(self) -> bool:
        """True when an unknown status is accepted."""
        return self.stale_crl_policy == "fail_open"

    def accepts(self, why: Unknown) -> bool:
        """Whether a certificate whose status is unknown for ``why`` passes."""
        return self.fail_open

    def excuses_openssl_error(self, code: int) -> bool:
        """Whether OpenSSL's verification error ``code`` is overruled by this policy.

        Only "status unknown" errors can be, and only under ``fail_open``.
        """
        why = OPENSSL_UNKNOWN.get(code)
        return why is not None and self.accepts(why)

    @staticmethod
    def detail(why: Unknown) -> str:
        """The RetMsg detail of a 2004 for an unknown status."""
        return f"revocation status unknown ({why.value})"
