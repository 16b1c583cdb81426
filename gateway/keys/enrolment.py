"""The enrolment registry: who may sign for which corporate, from where (docs/protocol.md §6).

Per CorpId the registry lists the enrolled accounts, the allowed source
networks, the allowed TrnCodes and the operators with their certificate
fingerprints and limits.  Security staff maintain it as a TOML file (format
documented in ``keys/enrolment.example.toml``); it is validated completely
on load and swapped in whole, so a reload either applies every change or
none (docs/architecture.md §7, principle 6).  Unknown keys and bad values are ``ConfigError``
naming the key and the file (docs/architecture.md §8, habit 2).

Checks served (docs/protocol.md §3, §8): 2005 certificate not enrolled for this
CorpId/OperId, 2007 source address not allowed, 4006 payer account not
enrolled.  TrnCode and per-item limits (2006) are applied by
``gateway.keys.verifier`` with the objects returned here.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.model import TrnCode

# docs/protocol.md §2 / §4 field syntax
_CORP_ID_RE = re.compile(r"^[A-Z0-9]{1,20}$")
_OPER_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,20}$")
_ACCT_RE = re.compile(r"^[0-9A-Za-z]{1,32}$")
_AMOUNT_RE = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,2})?$")
_FP_RE = re.compile(r"^[0-9a-f]{64}$")

_CORP_KEYS = frozenset({"corp_id", "name", "accounts", "networks", "trn_codes", "operator"})
_CORP_REQUIRED = ("corp_id", "name", "accounts", "networks")
_OPER_KEYS = frozenset({"oper_id", "fingerprints", "max_item", "daily_limit"})
_OPER_REQUIRED = ("oper_id", "fingerprints")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Operator:
    """An enrolled operator: certificate fingerprints and limits (docs/protocol.md §6).

    ``max_item``: per-transaction limit (an amount above it → 2006).
    ``daily_limit``: loaded and validated; enforced where durable totals exist.
    """

    oper_id: str
    fingerprints: frozenset[str]
    max_item: Decimal | None = None
    daily_limit: Decimal | None = None


@dataclass(frozen=True)
class Corporate:
    """One enrolled corporate customer; ``trn_codes`` None means every TrnCode."""

    corp_id: str
    name: str
    accounts: frozenset[str]
    networks: tuple[IPNetwork, ...]
    operators: Mapping[str, Operator]
    trn_codes: frozenset[str] | None = None

    def allows_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


def _parse_ip(peer_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A peer address; IPv4-mapped IPv6 (``::ffff:a.b.c.d``) counts as the IPv4 address."""
    try:
        ip = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Registry:
    """The validated, immutable enrolment registry."""

    def __init__(self, corporates: Mapping[str, Corporate], source: Path | None = None) -> None:
        self._corps = dict(corporates)
        self.source = source

    @property
    def corporates(self) -> tuple[Corporate, ...]:
        return tuple(self._corps.values())

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Read and fully validate a registry file; ``ConfigError`` names key and file."""
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read enrolment registry ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls(_Loader(path).corporates(data), source=path)

    def corporate(self, corp_id: str) -> Corporate | None:
        return self._corps.get(corp_id)

    def check_signer(self, corp_id: str, oper_id: str, fingerprint: str) -> Operator:
        """2005 unless the certificate ``fingerprint`` is enrolled for CorpId/OperId."""
        corp = self._corps.get(corp_id)
        operator = corp.operators.get(oper_id) if corp is not None else None
        if operator is None or fingerprint not in operator.fingerprints:
            raise GatewayError(RetCode.CERT_NOT_ENROLLED, "certificate not enrolled for OperId")
        return operator

    def check_source(self, corp_id: str, peer_ip: str) -> None:
        """2007 unless ``peer_ip`` lies in one of the corporate's networks."""
        corp = self._corps.get(corp_id)
        ip = _parse_ip(peer_ip)
        if corp is None or ip is None or not corp.allows_ip(ip):
            raise GatewayError(RetCode.SOURCE_NOT_ALLOWED, "source address not allowed for CorpId")

    def check_account(self, corp_id: str, acct: str) -> None:
        """4006 unless ``acct`` is enrolled for the corporate."""
        corp = self._corps.get(corp_id)
        if corp is None or acct not in corp.accounts:
            raise GatewayError(RetCode.PAYER_NOT_ENROLLED, "PayerAcct not enrolled for CorpId")


class _Loader:
    """Validates the parsed TOML; every error names the dotted key and the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def corporates(self, data: dict[str, Any]) -> dict[str, Corporate]:
        for key in data:
            if key != "corporate":
                raise self.error(key, "unknown key")
        entries = data.get("corporate", [])
        if not isinstance(entries, list):
            raise self.error("corporate", "must be an array of tables ([[corporate]])")
        out: dict[str, Corporate] = {}
        for i, entry in enumerate(entries):
            corp = self.corporate(f"corporate[{i}]", entry)
            if corp.corp_id in out:
                raise self.error(f"corporate[{i}].corp_id", f"duplicate CorpId {corp.corp_id}")
            out[corp.corp_id] = corp
        return out

    def table(
        self, where: str, entry: object, allowed: frozenset[str], required: tuple[str, ...]
    ) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise self.error(where, "must be a table")
        for key in entry:
            if key not in allowed:
                raise self.error(f"{where}.{key}", "unknown key")
        for key in required:
            if key not in entry:
                raise self.error(f"{where}.{key}", "missing")
        return entry

    def string(self, key: str, value: object, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise self.error(key, f"invalid value {value!r}")
        return value

    def strings(self, key: str, value: object, *, allow_empty: bool = False) -> list[str]:
        if not isinstance(value, list) or (not value and not allow_empty):
            raise self.error(key, "must be a non-empty array of strings")
        return [self.string(f"{key}[{i}]", v) for i, v in enumerate(value)]

    def amount(self, key: str, value: object) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.error(key, 'must be a decimal string such as "1000000.00"')
        text = str(value)
        if not _AMOUNT_RE.match(text):
            raise self.error(key, f"invalid amount {text!r}")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise self.error(key, f"invalid amount {text!r}") from None
        if amount <= 0:
            raise self.error(key, "must be positive")
        return amount

    def corporate(self, where: str, entry: object) -> Corporate:
        t = self.table(where, entry, _CORP_KEYS, _CORP_REQUIRED)
        corp_id = self.string(f"{where}.corp_id", t["corp_id"], _CORP_ID_RE)
        name = self.string(f"{where}.name", t["name"])
        accounts = self.strings(f"{where}.accounts", t["accounts"])
        for i, acct in enumerate(accounts):
            self.string(f"{where}.accounts[{i}]", acct, _ACCT_RE)
        networks: list[IPNetwork] = []
        for i, text in enumerate(self.strings(f"{where}.networks", t["networks"])):
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError:
                raise self.error(f"{where}.networks[{i}]", f"invalid network {text!r}") from None
        trn_codes: frozenset[str] | None = None
        if "trn_codes" in t:
            codes = self.strings(f"{where}.trn_codes", t["trn_codes"])
            known = {c.value for c in TrnCode}
            for i, code in enumerate(codes):
                if code not in known:
                    raise self.error(f"{where}.trn_codes[{i}]", f"unknown TrnCode {code!r}")
            trn_codes = frozenset(codes)
        operators: dict[str, Operator] = {}
        raw_ops = t.get("operator", [])
        if not isinstance(raw_ops, list):
            raise self.error(f"{where}.operator", "must be an array of tables")
        for j, raw in enumerate(raw_ops):
            op = self.operator(f"{where}.operator[{j}]", raw)
            if op.oper_id in operators:
                raise self.error(f"{where}.operator[{j}].oper_id", f"duplicate {op.oper_id}")
            operators[op.oper_id] = op
        return Corporate(
            corp_id=corp_id,
            name=name,
            accounts=frozenset(accounts),
            networks=tuple(networks),
            operators=operators,
            trn_codes=trn_codes,
        )

    def operator(self, where: str, entry: object) -> Operator:
        t = self.table(where, entry, _OPER_KEYS, _OPER_REQUIRED)
        oper_id = self.string(f"{where}.oper_id", t["oper_id"], _OPER_ID_RE)
        fps: set[str] = set()
        for i, raw in enumerate(self.strings(f"{where}.fingerprints", t["fingerprints"])):
            fp = raw.replace(":", "").lower()
            if not _FP_RE.match(fp):
                raise self.error(f"{where}.fingerprints[{i}]", "not a SHA-256 hex fingerprint")
            fps.add(fp)
        return Operator(
            oper_id=oper_id,
            fingerprints=frozenset(fps),
            max_item=self.amount(f"{where}.max_item", t.get("max_item")),
            daily_limit=self.amount(f"{where}.daily_limit", t.get("daily_limit")),
        )
