"""The bank directory (行名行号簿): which bank codes exist, through whom they clear.

docs/routing-rules.md §2: a CSV file (UTF-8, header row) that operations replace when
the central bank publishes a new directory.  The gateway reloads it without
restart, atomically: a new file is parsed and validated *completely* into a
new ``Directory`` object before anyone sees it, and a message is routed
against one whole version (``Router.with_directory`` swaps the reference).
That is why parsing is strict: a bad row refuses the whole file, with the
file, line and column named, and the old version stays in force.

The 12-digit code's check digit is never computed (docs/routing-rules.md §1; no public
algorithm exists): the directory is the only authority on which codes exist.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HEADER: tuple[str, ...] = (
    "code",
    "name",
    "kind",
    "participant",
    "city",
    "status",
    "valid_from",
    "valid_to",
    "internal",
)
"""The columns, in order (docs/routing-rules.md §2)."""

BIC_HEADER: tuple[str, ...] = (*HEADER, "bic")
"""docs/routing-rules.md §2's columns plus an optional trailing ``bic``: docs/protocol.md §4 lets an
MT101 (57A) or a pain.001 (BICFI) name the payee bank by a BIC "that the directory
maps", and the nine columns have no place for one.  A file with the nine columns
is read as before; one with this header maps each listed BIC to its row."""

_BIC = re.compile(r"\A[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?\Z")


def bic11(bic: str) -> str:
    """A BIC in its 11-character form (a BIC8 is the head office: ``XXX``)."""
    return bic if len(bic) == 11 else bic + "XXX"


KINDS = frozenset({"cnaps", "internal"})
STATUSES = frozenset({"active", "suspended", "closed"})
CODE_LENGTH: dict[str, int] = {"cnaps": 12, "internal": 6}
"""docs/routing-rules.md §1: a CNAPS code has 12 digits, an internal (网内往来) code 6."""

DEFAULT_MAX_DROP = 0.10
"""docs/routing-rules.md §2: refuse a reload that drops more than this share of the codes."""

VERSION_HEX = 16
"""Hex digits of the SHA-256 kept as the directory version (logs, /healthz)."""

_ISO_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_digits(text: str, length: int) -> bool:
    """True when ``text`` is exactly ``length`` ASCII digits (no Unicode digits, no sign)."""
    return len(text) == length and text.isascii() and text.isdigit()


class DirectoryError(ValueError):
    """A directory file was refused; the message names the file, line and column.

    Operator-facing only (logs, ``gatewayctl reload``): never sent to a client.
    """

    def __init__(
        self, source: str, problem: str, *, line: int | None = None, column: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.problem = problem
        where = source
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One row of the directory (docs/routing-rules.md §2)."""

    code: str
    name: str
    kind: str  # "cnaps" | "internal"
    participant: str  # 12-digit direct participant this bank clears through
    city: str
    status: str  # "active" | "suspended" | "closed"
    valid_from: date | None
    valid_to: date | None
    internal: str | None  # our own branches' 12-digit codes: their 6-digit internal code
    bic: str | None = None  # optional BIC column: this row's BIC (11-character form)

    def usable_on(self, d: date) -> bool:
        """docs/routing-rules.md §2: active and ``valid_from ≤ d ≤ valid_to`` (empty =
        open-ended)."""
        if self.status != "active":
            return False
        if self.valid_from is not None and d < self.valid_from:
            return False
        return self.valid_to is None or d <= self.valid_to


class Directory:
    """One validated, immutable version of the bank directory.

    Build it with :meth:`load` or :meth:`parse`; both validate every row and
    raise :class:`DirectoryError` on the first problem.
    """

    __slots__ = ("_by_bic", "_by_code", "_by_internal", "source", "version")

    def __init__(self, entries: Iterable[BankEntry], *, version: str, source: str) -> None:
        self._by_code: dict[str, BankEntry] = {}
        self._by_internal: dict[str, BankEntry] = {}
        self._by_bic: dict[str, BankEntry] = {}
        for entry in entries:
            if entry.bic is not None:
                if entry.bic in self._by_bic:
                    raise DirectoryError(source, f"duplicate BIC {entry.bic}")
                self._by_bic[entry.bic] = entry
            if entry.code in self._by_code:
                raise DirectoryError(source, f"duplicate code {entry.code}")
            self._by_code[entry.code] = entry
            if entry.internal is not None:
                if entry.internal in self._by_internal:
                    raise DirectoryError(source, f"duplicate internal code {entry.internal}")
                self._by_internal[entry.internal] = entry
        self.version = version
        self.source = source

    # -- construction -------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Read and validate a directory file; ``version`` = SHA-256 of its bytes."""
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DirectoryError(source, f"cannot read: {exc.strerror or exc}") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise DirectoryError(source, "not valid UTF-8", line=line) from exc
        return cls._parse(text, source, _version(data))

    @classmethod
    def parse(cls, text: str, source: str) -> Directory:
        """Validate directory text; ``source`` names it in errors (a path or "<test>")."""
        return cls._parse(text, source, _version(text.encode("utf-8")))

    @classmethod
    def _parse(cls, text: str, source: str, version: str) -> Directory:
        # A UTF-8 byte-order mark is what spreadsheet tools put on Chinese CSVs.
        text = text.removeprefix("\ufeff")
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DirectoryError(source, "empty file", line=1)
            names = tuple(cell.strip() for cell in header)
            if names not in (HEADER, BIC_HEADER):
                raise DirectoryError(
                    source,
                    f"header must be {','.join(HEADER)} (optionally followed by ,bic)",
                    line=reader.line_num,
                )
            columns = len(names)
            entries: list[BankEntry] = []
            first_line: dict[str, int] = {}
            internal_line: dict[str, int] = {}
            end = reader.line_num
            for row in reader:
                # A quoted cell may span lines: name the line the row starts on.
                line, end = end + 1, reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines (e.g. a trailing one) carry nothing
                entry = _entry(row, source, line, columns)
                if entry.code in first_line:
                    raise DirectoryError(
                        source,
                        f"duplicate code {entry.code} (first on line {first_line[entry.code]})",
                        line=line,
                        column="1 (code)",
                    )
                first_line[entry.code] = line
                if entry.internal is not None:
                    if entry.internal in internal_line:
                        raise DirectoryError(
                            source,
                            f"internal code {entry.internal} already mapped on line "
                            f"{internal_line[entry.internal]}",
                            line=line,
                            column="9 (internal)",
                        )
                    internal_line[entry.internal] = line
                entries.append(entry)
        except csv.Error as exc:
            raise DirectoryError(source, f"CSV syntax: {exc}", line=reader.line_num) from exc
        if not entries:
            raise DirectoryError(source, "no entries")
        return cls(entries, version=version, source=source)

    # -- lookups --------------------------------------------------------------

    def get(self, code: str) -> BankEntry | None:
        """The row whose ``code`` is exactly ``code`` (12- or 6-digit), if any."""
        return self._by_code.get(code)

    def by_bic(self, bic: str) -> BankEntry | None:
        """The row a BIC maps to: the exact BIC, else its head office (``XXX``) row."""
        if not _BIC.match(bic):
            return None
        full = bic11(bic)
        return self._by_bic.get(full) or self._by_bic.get(full[:8] + "XXX")

    def by_internal(self, internal_code: str) -> BankEntry | None:
        """The 12-digit (cnaps) row whose ``internal`` column is ``internal_code``."""
        return self._by_internal.get(internal_code)

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[BankEntry]:
        return iter(self._by_code.values())

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __repr__(self) -> str:
        return f"<Directory {self.version} {len(self)} codes from {self.source}>"

    # -- reload guard -----------------------------------------------------------

    def drop_ratio(self, new: Directory) -> float:
        """Share (0..1) of this directory's codes that are missing in ``new``."""
        if not self._by_code:
            return 0.0
        missing = sum(1 for code in self._by_code if code not in new._by_code)
        return missing / len(self._by_code)

    def check_replacement(self, new: Directory, *, max_drop: float = DEFAULT_MAX_DROP) -> None:
        """Refuse ``new`` if it drops more than ``max_drop`` of our codes (docs/routing-rules.md
        §2).

        A truncated or wrong file is far likelier than the central bank
        retiring a tenth of all codes at once; the old version stays in force.
        """
        ratio = self.drop_ratio(new)
        if ratio > max_drop:
            dropped = round(ratio * len(self))
            raise DirectoryError(
                new.source,
                f"would drop {dropped} of {len(self)} codes ({ratio:.1%}), "
                f"more than the allowed {max_drop:.1%}",
            )


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:VERSION_HEX]


def _entry(row: list[str], source: str, line: int, columns: int = len(HEADER)) -> BankEntry:
    """Validate one data row; every refusal names its column (1-based and by name)."""
    if len(row) != columns:
        raise DirectoryError(source, f"expected {columns} columns, found {len(row)}", line=line)
    cells = [cell.strip() for cell in row]

    def fail(index: int, problem: str) -> DirectoryError:
        return DirectoryError(
            source, problem, line=line, column=f"{index + 1} ({BIC_HEADER[index]})"
        )

    for index, cell in enumerate(cells):
        if _CONTROL.search(cell):
            raise fail(index, "control character")
    bic = cells.pop() if columns == len(BIC_HEADER) else ""
    if bic and not _BIC.match(bic):
        raise fail(9, "bic must be 8 or 11 characters: 4 letters, 2 letters, 2 and 3 more")
    code, name, kind, participant, city, status, valid_from, valid_to, internal = cells
    if kind not in KINDS:
        raise fail(2, f"kind must be one of {', '.join(sorted(KINDS))}")
    if not is_digits(code, CODE_LENGTH[kind]):
        raise fail(0, f"a {kind} code must be {CODE_LENGTH[kind]} digits")
    if not name:
        raise fail(1, "name is empty")
    if not is_digits(participant, 12):
        raise fail(3, "participant must be 12 digits")
    if status not in STATUSES:
        raise fail(5, f"status must be one of {', '.join(sorted(STATUSES))}")
    start = _date(valid_from, lambda p: fail(6, p))
    end = _date(valid_to, lambda p: fail(7, p))
    if start is not None and end is not None and end < start:
        raise fail(7, "valid_to is before valid_from")
    if internal and kind == "internal":
        raise fail(8, "only cnaps rows map to an internal code")
    if internal and not is_digits(internal, CODE_LENGTH["internal"]):
        raise fail(8, "internal must be 6 digits")
    return BankEntry(
        code=code,
        name=name,
        kind=kind,
        participant=participant,
        city=city,
        status=status,
        valid_from=start,
        valid_to=end,
        internal=internal or None,
        bic=bic11(bic) if bic else None,
    )


def _date(text: str, fail: Callable[[str], DirectoryError]) -> date | None:
    if not text:
        return None
    if not _ISO_DATE.match(text):
        raise fail("date must be YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail("not a calendar date") from None
