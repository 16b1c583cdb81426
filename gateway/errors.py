"""The one table of CorpLink return codes and the one exception hierarchy.

docs/protocol.md §8 is the source of every code here; ``tests/unit/core/test_errors.py``
checks this table against the spec text.  Internal failures become a
``GatewayError`` carrying a ``RetCode`` and are turned into a signed response
at exactly one boundary (``gateway.pipeline``): nothing internal (exception
names, paths, key material) ever reaches a client.
"""

from __future__ import annotations

from enum import Enum


class RetCode(str, Enum):
    """CorpLink return codes, docs/protocol.md §8.  Value = the 4-digit wire code."""

    OK = "0000"
    BAD_FRAME = "1001"
    MALFORMED_XML = "1002"
    SCHEMA = "1003"
    UNKNOWN_TRNCODE = "1004"
    SIGNATURE_INVALID = "2001"
    CERT_UNTRUSTED = "2002"
    CERT_EXPIRED = "2003"
    CERT_REVOKED = "2004"
    CERT_NOT_ENROLLED = "2005"
    NOT_PERMITTED = "2006"
    SOURCE_NOT_ALLOWED = "2007"
    DUPLICATE_MSGID = "3001"
    STALE_SENDTIME = "3002"
    BANK_CODE_UNKNOWN = "4001"
    BANK_CODE_MALFORMED = "4002"
    BANK_NOT_ACTIVE = "4003"
    AMOUNT_INVALID = "4004"
    ENGINE_CLOSED = "4005"
    PAYER_NOT_ENROLLED = "4006"
    RATE_LIMITED = "5001"
    OVERLOADED = "5002"
    CORE_TIMEOUT = "6001"
    INTERNAL = "9999"

    @property
    def text(self) -> str:
        """The short English meaning sent as ``RetMsg`` when no detail is given."""
        return RET_TEXT[self]

    @property
    def reason(self) -> str:
        """A bounded metric label / log word for this code (never per-message data)."""
        return self.name.lower()


RET_TEXT: dict[RetCode, str] = {
    RetCode.OK: "accepted",
    RetCode.BAD_FRAME: "bad frame",
    RetCode.MALFORMED_XML: "body is not well-formed UTF-8 XML or uses DTDs/entities",
    RetCode.SCHEMA: "schema violation",
    RetCode.UNKNOWN_TRNCODE: "unknown TrnCode or unsupported payload",
    RetCode.SIGNATURE_INVALID: "signature invalid or outside the profile",
    RetCode.CERT_UNTRUSTED: "certificate not issued by a trusted client CA or wrong key usage",
    RetCode.CERT_EXPIRED: "certificate expired or not yet valid",
    RetCode.CERT_REVOKED: "certificate revoked",
    RetCode.CERT_NOT_ENROLLED: "certificate not enrolled for this CorpId/OperId",
    RetCode.NOT_PERMITTED: "operation or amount not permitted for this certificate",
    RetCode.SOURCE_NOT_ALLOWED: "source address not allowed for this CorpId",
    RetCode.DUPLICATE_MSGID: "MsgId already used with different content",
    RetCode.STALE_SENDTIME: "SendTime outside the allowed window",
    RetCode.BANK_CODE_UNKNOWN: "payee bank code not in the directory",
    RetCode.BANK_CODE_MALFORMED: "payee bank code malformed",
    RetCode.BANK_NOT_ACTIVE: "payee bank not active on this date",
    RetCode.AMOUNT_INVALID: "amount or currency invalid",
    RetCode.ENGINE_CLOSED: "engine closed and the hold policy is reject",
    RetCode.PAYER_NOT_ENROLLED: "payer account not enrolled for this CorpId",
    RetCode.RATE_LIMITED: "rate limit for this client or address",
    RetCode.OVERLOADED: "gateway overloaded, try later; nothing was journaled",
    RetCode.CORE_TIMEOUT: "core banking system did not answer in time",
    RetCode.INTERNAL: "internal error; nothing was journaled",
}


class GatewayError(Exception):
    """A refusal with a CorpLink RetCode.

    ``detail`` is safe to send to the client (it names an element or field,
    never a path, exception class or key).  ``retry_after_ms`` is set for 5001.
    """

    def __init__(
        self, code: RetCode, detail: str | None = None, *, retry_after_ms: int | None = None
    ) -> None:
        self.code = code
        self.detail = detail
        self.retry_after_ms = retry_after_ms
        super().__init__(f"{code.value} {detail or code.text}")

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses process boundaries (worker pool): rebuild from code and detail.
        return (_rebuild, (type(self), self.code, self.detail, self.retry_after_ms))

    @property
    def ret_msg(self) -> str:
        """The RetMsg to put on the wire."""
        if not self.detail or self.detail == self.code.text:
            return self.code.text
        return f"{self.code.text}: {self.detail}"


def _rebuild(
    cls: type[GatewayError], code: RetCode, detail: str | None, retry_after_ms: int | None
) -> GatewayError:
    err = GatewayError.__new__(cls)
    GatewayError.__init__(err, code, detail, retry_after_ms=retry_after_ms)
    return err


class ConfigError(Exception):
    """Configuration is invalid; the message names the key and the file."""


class Unavailable(Exception):
    """A resource the daemon needs is down for now (a database, a port in use).

    Unlike ``ConfigError`` this may heal by itself, so ``gatewayd`` exits with
    EX_TEMPFAIL (75) and systemd starts it again (docs/operations.md).  The
    message names the key and the resource.
    """


class ChildStartFailed(Exception):
    """A child process (a front) could not start; it already chose the exit status
    and wrote the one line, which ``gatewayd`` prints as its own."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
