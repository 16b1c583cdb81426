"""Screening list files: strict parsing, versions, the reload guard.

docs/foreign-currency.md §5: CSV files, UTF-8, header
``list,entry_id,type,name,aliases,country``; ``type`` is ``individual``,
``entity``, ``bic`` or ``country``; ``aliases`` are separated by ``;``; in
``bic`` and ``country`` rows ``name`` holds the BIC or the country code.  A
list's version is its file's SHA-256, its age the file's modification time.

Reloads follow the bank directory's rules (docs/routing-rules.md §2): a new
set of files is parsed, validated and indexed *completely* into a new
``ScreeningLists`` before anyone sees it, so a payment is screened against
one whole version; a file that fails to parse is refused with its file and
line named, and one with more than 10 % fewer rows than the version it
replaces is refused unless forced (``check_replacement``).  The old version
stays in force either way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.screening.index import Listed, ListIndex
from gateway.screening.matching import Name
from gateway.screening.normalise import Normaliser
from gateway.screening.settings import ScreeningSettings

HEADER: tuple[str, ...] = ("list", "entry_id", "type", "name", "aliases", "country")
"""The columns, in order (docs/foreign-currency.md §5)."""

NAME_TYPES = frozenset({"individual", "entity"})
TYPES = NAME_TYPES | {"bic", "country"}

DEFAULT_MAX_DROP = 0.10
"""docs/foreign-currency.md §5: refuse a file with more than this share fewer rows."""

BIC = re.compile(r"\A[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\Z")
COUNTRY = re.compile(r"\A[A-Z]{2}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ListError(ConfigError):
    """A list file was refused; the message names the file, line and column.

    Operator-facing only (logs, ``gatewayctl reload``), never sent to a client.
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
class ListEntry:
    """One row of a list file."""

    list: str
    entry_id: str
    type: str
    name: str  # for bic rows the BIC, for country rows the code
    aliases: tuple[str, ...]
    country: str  # the listed party's country, may be empty
    source: str  # the file's stem
    line: int


@dataclass(frozen=True, slots=True)
class ListVersion:
    """Which version of which file cleared or flagged a payment (journaled with it)."""

    list: str  # the file's stem
    version: str  # SHA-256 of the file, hex


class ListFile:
    """One validated version of one list file."""

    __slots__ = ("entries", "mtime", "source", "stem", "version")

    def __init__(
        self,
        entries: Sequence[ListEntry],
        *,
        source: str,
        stem: str,
        version: str,
        mtime: float | None,
    ) -> None:
        self.entries = tuple(entries)
        self.source = source
        self.stem = stem
        self.version = version
        self.mtime = mtime

    @classmethod
    def load(cls, path: Path) -> ListFile:
        """Read and validate a list file; version = SHA-256 of its bytes, age = its mtime."""
        source = str(path)
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
        except OSError as exc:
            raise ListError(source, f"cannot read: {exc.strerror or exc}") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise ListError(source, "not valid UTF-8", line=line) from exc
        return cls._parse(text, source, path.stem, hashlib.sha256(data).hexdigest(), mtime)

    @classmethod
    def parse(cls, text: str, source: str, *, mtime: float | None = None) -> ListFile:
        """Validate list text; ``source`` names it in errors, its stem names the list."""
        version = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls._parse(text, source, Path(source).stem, version, mtime)

    @classmethod
    def _parse(
        cls, text: str, source: str, stem: str, version: str, mtime: float | None
    ) -> ListFile:
        text = text.removeprefix("\ufeff")  # spreadsheet tools write a BOM
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        entries: list[ListEntry] = []
        first_line: dict[tuple[str, str], int] = {}
        try:
            header = next(reader, None)
            if header is None:
                raise ListError(source, "empty file", line=1)
            if tuple(cell.strip() for cell in header) != HEADER:
                raise ListError(source, f"header must be {','.join(HEADER)}", line=1)
            end = reader.line_num
            for row in reader:
                line, end = end + 1, reader.line_num  # a quoted cell may span lines
                if not row or all(not cell.strip() for cell in row):
                    continue
                entry = _entry(row, source, stem, line)
                key = (entry.list, entry.entry_id)
                if key in first_line:
                    raise ListError(
                        source,
                        f"duplicate entry {entry.list}/{entry.entry_id} "
                        f"(first on line {first_line[key]})",
                        line=line,
                        column="2 (entry_id)",
                    )
                first_line[key] = line
                entries.append(entry)
        except csv.Error as exc:
            raise ListError(source, f"CSV syntax: {exc}", line=reader.line_num) from exc
        if not entries:
            raise ListError(source, "no entries")
        return cls(entries, source=source, stem=stem, version=version, mtime=mtime)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<ListFile {self.stem} {self.version[:16]} {len(self)} rows>"

    def age(self, now: float) -> float | None:
        """Seconds since the file was modified (``now`` = wall-clock epoch seconds)."""
        return None if self.mtime is None else max(0.0, now - self.mtime)


def _entry(row: list[str], source: str, stem: str, line: int) -> ListEntry:
    """Validate one data row; every refusal names its column."""
    if len(row) != len(HEADER):
        raise ListError(source, f"expected {len(HEADER)} columns, found {len(row)}", line=line)
    cells = [cell.strip() for cell in row]

    def fail(index: int, problem: str) -> ListError:
        return ListError(source, problem, line=line, column=f"{index + 1} ({HEADER[index]})")

    for index, cell in enumerate(cells):
        if _CONTROL.search(cell):
            raise fail(index, "control character")
    listed, entry_id, kind, name, aliases_cell, country = cells
    if not listed:
        raise fail(0, "list is empty")
    if not entry_id:
        raise fail(1, "entry_id is empty")
    if kind not in TYPES:
        raise fail(2, f"type must be one of {', '.join(sorted(TYPES))}")
    if not name:
        raise fail(3, "name is empty")
    aliases = tuple(a.strip() for a in aliases_cell.split(";") if a.strip())
    if kind == "bic":
        for index, value in ((3, name), *((4, a) for a in aliases)):
            if not BIC.match(value):
                raise fail(index, f"{value!r} is not a BIC (8 or 11 characters, upper case)")
    elif kind == "country":
        for index, value in ((3, name), *((4, a) for a in aliases)):
            if not COUNTRY.match(value):
                raise fail(index, f"{value!r} is not an ISO 3166 alpha-2 code")
    if country and not COUNTRY.match(country):
        raise fail(5, f"{country!r} is not an ISO 3166 alpha-2 code")
    # the same few lists, types and countries on every row: one string each
    return ListEntry(
        sys.intern(listed),
        entry_id,
        sys.intern(kind),
        name,
        aliases,
        sys.intern(country),
        stem,
        line,
    )


class ScreeningLists:
    """One version of all configured list files, indexed for screening.

    Immutable: a reload builds a new one (``load``), checks it against the
    old (``check_replacement``) and swaps the reference.
    """

    __slots__ = ("files", "index", "normaliser", "settings", "versions")

    def __init__(self, files: Iterable[ListFile], settings: ScreeningSettings) -> None:
        self.files = tuple(files)
        self.settings = settings
        stems = [f.stem for f in self.files]
        if len(set(stems)) != len(stems):
            raise ConfigError("screening.lists: two files with the same name (stem)")
        self.normaliser = normaliser = settings.normaliser()
        listed: list[Listed] = []
        seen: dict[tuple[str, str], str] = {}
        words: dict[str, str] = {}  # one string per distinct token (_listed)
        for file in self.files:
            for entry in file.entries:
                key = (entry.list, entry.entry_id)
                if key in seen:
                    raise ListError(
                        file.source,
                        f"entry {entry.list}/{entry.entry_id} is also in {seen[key]}",
                        line=entry.line,
                    )
                seen[key] = file.source
                listed.extend(_listed(entry, file.source, normaliser, words))
        self.index = ListIndex(listed, settings.threshold)
        self.versions = tuple(ListVersion(f.stem, f.version) for f in self.files)
        """Every file's version, in configuration order (recorded on every decision)."""

    @classmethod
    def load(
        cls, settings: ScreeningSettings, paths: Sequence[Path] | None = None
    ) -> ScreeningLists:
        """Load and index the files of ``screening.lists`` (or ``paths``)."""
        return cls(
            (ListFile.load(p) for p in (settings.lists if paths is None else paths)), settings
        )

    def rows(self) -> dict[str, int]:
        """Rows per list (file stem): ``gateway_screening_list_entries{list}``."""
        return {f.stem: len(f) for f in self.files}

    def ages(self, now: float) -> dict[str, float | None]:
        """Seconds since each file's modification: ``gateway_screening_list_age_seconds``."""
        return {f.stem: f.age(now) for f in self.files}

    def check_replacement(
        self, new: ScreeningLists, *, max_drop: float = DEFAULT_MAX_DROP, force: bool = False
    ) -> None:
        """Refuse ``new`` if a file has more than ``max_drop`` fewer rows than now
        (docs/foreign-currency.md §5), unless ``force`` (``gatewayctl reload --force``).

        A file that disappears from the configuration drops all its rows.  A
        truncated download is far likelier than a list losing a tenth of its
        entries at once; the old version stays in force.
        """
        if force:
            return
        after = new.rows()
        for file in self.files:
            rows = after.get(file.stem, 0)
            if rows < len(file) and (len(file) - rows) / len(file) > max_drop:
                source = next((f.source for f in new.files if f.stem == file.stem), file.source)
                raise ListError(
                    source,
                    f"would have {rows} rows instead of {len(file)} "
                    f"({(len(file) - rows) / len(file):.1%} fewer), more than the allowed "
                    f"{max_drop:.0%}; reload with --force to accept it",
                )

    def __repr__(self) -> str:
        return f"<ScreeningLists {', '.join(repr(f) for f in self.files)}>"


def _listed(
    entry: ListEntry, source: str, normaliser: Normaliser, words: dict[str, str]
) -> list[Listed]:
    """The names (or codes) an entry is matched by.

    A token is kept as the first string seen with its text (``words``): a
    common given name or "trading" is then one string rather than one per
    name holding it, some 10 MiB of 20,000 entries with their aliases.
    """
    values = (entry.name, *entry.aliases)
    if entry.type not in NAME_TYPES:
        return [Listed(entry.list, entry.entry_id, entry.type, v, None) for v in values]
    out = []
    for column, value in zip(
        ("3 (name)", *["5 (aliases)"] * len(entry.aliases)), values, strict=True
    ):
        name = Name.of(tuple(words.setdefault(t, t) for t in normaliser.tokens(value)))
        if not name:
            raise ListError(
                source, f"{value!r} is empty once normalised", line=entry.line, column=column
            )
        out.append(Listed(entry.list, entry.entry_id, entry.type, value, name))
    return out
