"""Settlement paths for SWIFT payments (自动寻找汇款路径): the two files and the choice.

docs/foreign-currency.md §3.  Two CSV files beside the bank directory:

* ``routing/correspondents.csv`` (``ccy,bic,account,cutoff``): for each foreign
  currency, our correspondent (nostro) bank, our account with it and the
  local cutoff of the currency's SWIFT window;
* ``routing/rma.csv`` (``bic,name``): the banks we exchange SWIFT messages
  with directly.

They follow the directory's rules (docs/routing-rules.md §2) because they are
reloaded with it: parsed and validated completely before anyone sees them, a
bad cell refuses the whole file naming file, line and column
(:class:`SettlementFileError`), a version is the SHA-256
of the bytes, and a new file that drops more than ``routing.max_drop_ratio``
of the rows in force is refused as probably truncated.

:func:`choose_path` turns them into a :class:`SettlementPath`, a value with
every agent the outgoing pacs.008 needs, so the message builder copies fields
and decides nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Final

from gateway.errors import ConfigError, GatewayError, RetCode
from gateway.routing.currencies import HOME_CURRENCY, CurrencyTable
from gateway.routing.directory import DEFAULT_MAX_DROP, VERSION_HEX, DirectoryError

CORRESPONDENTS_HEADER: Final = ("ccy", "bic", "account", "cutoff")
RMA_HEADER: Final = ("bic", "name")

SWIFT_OPENING: Final = time(9, 0)
"""The SWIFT window opens at 09:00 on working days (docs/foreign-currency.md §2)."""

_BIC: Final = re.compile(r"\A[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\Z")
_HHMM: Final = re.compile(r"\A(?:[01][0-9]|2[0-3]):[0-5][0-9]\Z")
_ACCOUNT: Final = re.compile(r"\A[A-Za-z0-9/-]{1,34}\Z")
"""ISO 20022 ``SttlmAcct/Id/Othr/Id`` is Max34Text; we keep to what account
numbers are made of, so a stray space or a formula pasted by a spreadsheet
is refused rather than sent."""
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def is_bic(text: str) -> bool:
    """8 or 11 characters ``[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?`` (docs/foreign-currency.md §3)."""
    return _BIC.match(text) is not None


def bic8(bic: str) -> str:
    """The institution part of a BIC: matching against our BICs and ``rma.csv`` uses it."""
    return bic[:8]


# -- the files --------------------------------------------------------------------------


class SettlementFileError(DirectoryError, ConfigError):
    """A settlement-path file was refused; the message names the file, line and column.

    A ``DirectoryError`` because it is refused like the directory, and a
    ``ConfigError`` because at start it is a file error of the configuration
    (exit 78 with one line, like a bad directory), while a reload that meets
    it keeps the old version.
    """


@dataclass(frozen=True, slots=True)
class Correspondent:
    """One row of ``correspondents.csv``: where a currency settles."""

    ccy: str
    bic: str
    account: str  # our account with the correspondent (SttlmAcct)
    cutoff: time  # end of the currency's SWIFT window, Asia/Shanghai wall clock


@dataclass(frozen=True, slots=True)
class RmaBank:
    """One row of ``rma.csv``: a bank we exchange with directly."""

    bic: str
    name: str


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:VERSION_HEX]


def _read(path: Path) -> tuple[str, str]:
    """The file's text and version; unreadable or non-UTF-8 files are refused."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettlementFileError(source, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SettlementFileError(source, "not valid UTF-8", line=line) from exc
    return text, _version(data)


class _Row:
    """One data row's cells, with a ``fail`` that names the line and the column."""

    __slots__ = ("cells", "header", "line", "source")

    def __init__(self, cells: list[str], header: Sequence[str], line: int, source: str) -> None:
        self.cells = cells
        self.header = header
        self.line = line
        self.source = source

    def fail(self, index: int, problem: str) -> SettlementFileError:
        column = f"{index + 1} ({self.header[index]})"
        return SettlementFileError(self.source, problem, line=self.line, column=column)


def _rows(text: str, source: str, header: Sequence[str]) -> Iterator[_Row]:
    """Data rows of a strict CSV file: exact header, trimmed cells, no control characters."""
    text = text.removeprefix("\ufeff")  # spreadsheet tools write a byte-order mark
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        first = next(reader, None)
        if first is None:
            raise SettlementFileError(source, "empty file", line=1)
        if tuple(cell.strip() for cell in first) != tuple(header):
            raise SettlementFileError(source, f"header must be {','.join(header)}", line=1)
        end = reader.line_num
        for raw in reader:
            line, end = end + 1, reader.line_num
            if not raw or all(not cell.strip() for cell in raw):
                continue
            if len(raw) != len(header):
                raise SettlementFileError(
                    source, f"expected {len(header)} columns, found {len(raw)}", line=line
                )
            row = _Row([cell.strip() for cell in raw], header, line, source)
            for index, cell in enumerate(row.cells):
                if _CONTROL.search(cell):
                    raise row.fail(index, "control character")
            yield row
    except csv.Error as exc:
        raise SettlementFileError(source, f"CSV syntax: {exc}", line=reader.line_num) from exc


def _check_bic(row: _Row, index: int) -> str:
    bic = row.cells[index]
    if not is_bic(bic):
        raise row.fail(index, "bic must be 8 or 11 characters: 6 letters, then 2 and 3 more")
    return bic


def _drop_check(
    source: str, old: Sequence[str], new: frozenset[str], what: str, limit: float
) -> None:
    """docs/routing-rules.md §2's guard: refuse a file that drops more than ``limit`` of ``old``."""
    if not old:
        return
    missing = sum(1 for key in old if key not in new)
    ratio = missing / len(old)
    if ratio > limit:
        raise SettlementFileError(
            source,
            f"would drop {missing} of {len(old)} {what} ({ratio:.1%}), "
            f"more than the allowed {limit:.1%}",
        )


class Correspondents:
    """One validated version of ``correspondents.csv``: at most one row per currency."""

    __slots__ = ("_by_ccy", "source", "version")

    def __init__(self, rows: Sequence[Correspondent], *, version: str, source: str) -> None:
        self._by_ccy = {row.ccy: row for row in rows}
        if len(self._by_ccy) != len(rows):
            raise SettlementFileError(source, "a currency is listed twice")
        self.version = version
        self.source = source

    @classmethod
    def load(cls, path: Path, currencies: CurrencyTable) -> Correspondents:
        """Read and validate the file; ``currencies`` is ``fx.currencies``."""
        text, version = _read(path)
        return cls._parse(text, str(path), version, currencies)

    @classmethod
    def parse(cls, text: str, source: str, currencies: CurrencyTable) -> Correspondents:
        """Validate file text; ``source`` names it in errors."""
        return cls._parse(text, source, _version(text.encode("utf-8")), currencies)

    @classmethod
    def _parse(
        cls, text: str, source: str, version: str, currencies: CurrencyTable
    ) -> Correspondents:
        rows: list[Correspondent] = []
        first_line: dict[str, int] = {}
        for row in _rows(text, source, CORRESPONDENTS_HEADER):
            ccy, _bic, account, cutoff = row.cells
            if ccy == HOME_CURRENCY:
                raise row.fail(0, f"{HOME_CURRENCY} clears at home, not through a correspondent")
            if ccy not in currencies:
                raise row.fail(0, f"currency {ccy!r} is not in fx.currencies")
            if ccy in first_line:
                raise row.fail(0, f"{ccy} already has a correspondent on line {first_line[ccy]}")
            bic = _check_bic(row, 1)
            if not _ACCOUNT.match(account):
                raise row.fail(2, "account must be 1 to 34 letters, digits, '/' or '-'")
            if not _HHMM.match(cutoff):
                raise row.fail(3, "cutoff must be HH:MM (Asia/Shanghai)")
            at = time.fromisoformat(cutoff)
            if at <= SWIFT_OPENING:
                raise row.fail(3, "cutoff must be after the 09:00 opening")
            first_line[ccy] = row.line
            rows.append(Correspondent(ccy, bic, account, at))
        return cls(rows, version=version, source=source)

    def get(self, ccy: str) -> Correspondent | None:
        """The currency's correspondent, if it has one."""
        return self._by_ccy.get(ccy)

    def check_replacement(self, new: Correspondents, *, max_drop: float = DEFAULT_MAX_DROP) -> None:
        """Refuse ``new`` if it drops more than ``max_drop`` of the currencies in force."""
        _drop_check(new.source, list(self._by_ccy), frozenset(new._by_ccy), "currencies", max_drop)

    def __iter__(self) -> Iterator[Correspondent]:
        return iter(self._by_ccy.values())

    def __len__(self) -> int:
        return len(self._by_ccy)

    def __repr__(self) -> str:
        return f"<Correspondents {self.version} {sorted(self._by_ccy)} from {self.source}>"


class RmaDirectory:
    """One validated version of ``rma.csv``: the banks we send to directly."""

    __slots__ = ("_banks", "_by_bic8", "source", "version")

    def __init__(self, banks: Sequence[RmaBank], *, version: str, source: str) -> None:
        self._banks = {bank.bic: bank for bank in banks}
        if len(self._banks) != len(banks):
            raise SettlementFileError(source, "a BIC is listed twice")
        self._by_bic8 = {bic8(bank.bic): bank for bank in banks}
        self.version = version
        self.source = source

    @classmethod
    def load(cls, path: Path) -> RmaDirectory:
        text, version = _read(path)
        return cls._parse(text, str(path), version)

    @classmethod
    def parse(cls, text: str, source: str) -> RmaDirectory:
        return cls._parse(text, source, _version(text.encode("utf-8")))

    @classmethod
    def _parse(cls, text: str, source: str, version: str) -> RmaDirectory:
        banks: list[RmaBank] = []
        first_line: dict[str, int] = {}
        for row in _rows(text, source, RMA_HEADER):
            bic = _check_bic(row, 0)
            if bic in first_line:
                raise row.fail(0, f"{bic} already listed on line {first_line[bic]}")
            if not row.cells[1]:
                raise row.fail(1, "name is empty")
            first_line[bic] = row.line
            banks.append(RmaBank(bic, row.cells[1]))
        return cls(banks, version=version, source=source)

    def get(self, bic: str) -> RmaBank | None:
        """The direct relation for a payee BIC, matched on its first 8 characters."""
        return self._by_bic8.get(bic8(bic))

    def check_replacement(self, new: RmaDirectory, *, max_drop: float = DEFAULT_MAX_DROP) -> None:
        """Refuse ``new`` if it drops more than ``max_drop`` of the banks in force."""
        _drop_check(new.source, list(self._banks), frozenset(new._banks), "banks", max_drop)

    def __iter__(self) -> Iterator[RmaBank]:
        return iter(self._banks.values())

    def __len__(self) -> int:
        return len(self._banks)

    def __repr__(self) -> str:
        return f"<RmaDirectory {self.version} {len(self)} banks from {self.source}>"


# -- the choice -------------------------------------------------------------------------


class SettlementMethod(StrEnum):
    """pacs.008 ``GrpHdr/SttlmInf/SttlmMtd`` (docs/foreign-currency.md §3)."""

    INGA = "INGA"  # direct: the instructed agent settles with us itself
    INDA = "INDA"  # through our account with the correspondent


@dataclass(frozen=True, slots=True)
class SettlementPath:
    """Every agent of the outgoing pacs.008, decided once (docs/foreign-currency.md §3).

    ``instructing_agent`` is also ``DbtrAgt``; ``intermediary_agent`` is
    ``IntrmyAgt1``; ``settlement_account`` is ``SttlmAcct`` (INDA only).
    """

    method: SettlementMethod
    instructing_agent: str  # InstgAgt = DbtrAgt: our first BIC
    instructed_agent: str  # InstdAgt, also the SWIFT Rcvr
    creditor_agent: str  # CdtrAgt: the payee's BIC
    intermediary_agent: str | None  # IntrmyAgt1: the correspondent (INDA)
    settlement_account: str | None  # SttlmAcct: our account with it (INDA)

    @property
    def direct(self) -> bool:
        return self.method is SettlementMethod.INGA


def choose_path(
    ccy: str,
    payee_bic: str,
    our_bic: str,
    correspondents: Correspondents,
    rma: RmaDirectory,
) -> SettlementPath:
    """Direct when the payee bank is in ``rma.csv``, else through the currency's correspondent.

    No relation and no correspondent → 4001 ("no settlement path for USD").
    """
    if rma.get(payee_bic) is not None:
        return SettlementPath(
            method=SettlementMethod.INGA,
            instructing_agent=our_bic,
            instructed_agent=payee_bic,
            creditor_agent=payee_bic,
            intermediary_agent=None,
            settlement_account=None,
        )
    correspondent = correspondents.get(ccy)
    if correspondent is None:
        raise GatewayError(RetCode.BANK_CODE_UNKNOWN, f"no settlement path for {ccy}")
    return SettlementPath(
        method=SettlementMethod.INDA,
        instructing_agent=our_bic,
        instructed_agent=correspondent.bic,
        creditor_agent=payee_bic,
        intermediary_agent=correspondent.bic,
        settlement_account=correspondent.account,
    )
