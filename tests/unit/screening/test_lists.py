"""List files: strict parsing, versions and ages, the reload guard (docs/foreign-currency.md §5)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.screening.lists import HEADER, ListError, ListFile, ScreeningLists
from gateway.screening.settings import ScreeningSettings

HEAD = ",".join(HEADER)
PERSON = "DEMO,P1,individual,John Michael Smith,J. M. Smith;Smith John,GB"
FIRM = "DEMO,E1,entity,Orion Shipping Ltd,Orion Shipping Lines,CY"
BANK = "DEMO,B1,bic,ORIOCY2L,ORIOCY2LXXX,"
LAND = "DEMO,C1,country,KP,,"


def text(*rows: str) -> str:
    return "\n".join((HEAD, *rows)) + "\n"


def refused(body: str, name: str = "lists/demo.csv") -> ListError:
    with pytest.raises(ListError) as info:
        ListFile.parse(body, name)
    return info.value


def write(path: Path, n: int) -> Path:
    rows = [f"{path.stem.upper()},P{i},individual,Person Number{i} Tester,," for i in range(n)]
    path.write_text(text(*rows), encoding="utf-8")
    return path


# -- parsing ------------------------------------------------------------------------


def test_a_list_file_loads_with_its_version_and_age(tmp_path: Path) -> None:
    path = tmp_path / "sanctions.csv"
    path.write_text(text(PERSON, FIRM, BANK, LAND), encoding="utf-8")
    os.utime(path, (1_000_000, 1_000_000))
    file = ListFile.load(path)
    assert len(file) == 4
    assert file.stem == "sanctions"
    assert file.version == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file.age(1_000_060) == 60
    person = file.entries[0]
    assert (person.list, person.entry_id, person.type, person.country) == (
        "DEMO",
        "P1",
        "individual",
        "GB",
    )
    assert person.aliases == ("J. M. Smith", "Smith John")
    assert (person.source, person.line) == ("sanctions", 2)


def test_a_bom_blank_lines_and_quoted_cells_are_read() -> None:
    body = "\ufeff" + text('DEMO,E2,entity,"Acme, Trading",,', "", FIRM)
    file = ListFile.parse(body, "demo.csv")
    assert [e.name for e in file.entries] == ["Acme, Trading", "Orion Shipping Ltd"]
    assert file.entries[1].line == 4


@pytest.mark.parametrize(
    ("body", "line", "column", "problem"),
    [
        ("", 1, None, "empty file"),
        ("list,entry_id,type,name,aliases\n", 1, None, "header must be"),
        (text("DEMO,P1,individual,Smith,"), 2, None, "expected 6 columns"),
        (text(PERSON, "DEMO,P2,person,Smith,,"), 3, "3 (type)", "type must be one of"),
        (text(PERSON, "DEMO,,individual,Smith,,"), 3, "2 (entry_id)", "entry_id is empty"),
        (text(PERSON, ",P2,individual,Smith,,"), 3, "1 (list)", "list is empty"),
        (text(PERSON, "DEMO,P2,individual,,,"), 3, "4 (name)", "name is empty"),
        (text(PERSON, "DEMO,B2,bic,ORIO CY,,"), 3, "4 (name)", "not a BIC"),
        (text(PERSON, "DEMO,B2,bic,ORIOCY2L,oriocy2l,"), 3, "5 (aliases)", "not a BIC"),
        (text(PERSON, "DEMO,C2,country,KPR,,"), 3, "4 (name)", "ISO 3166"),
        (text(PERSON, "DEMO,P2,individual,Smith,,gbr"), 3, "6 (country)", "ISO 3166"),
        (text(PERSON, "DEMO,P2,individual,Sm\x07ith,,"), 3, "4 (name)", "control character"),
        (text(PERSON, "DEMO,P1,entity,Other Name,,"), 3, "2 (entry_id)", "duplicate entry DEMO/P1"),
        (text('DEMO,P2,individual,"Smith,,'), 2, None, "CSV syntax"),
        (text(), None, None, "no entries"),
    ],
)
def test_a_bad_file_is_refused_with_file_line_and_column(
    body: str, line: int | None, column: str | None, problem: str
) -> None:
    err = refused(body)
    assert err.source == "lists/demo.csv"
    assert (err.line, err.column) == (line, column)
    assert problem in err.problem
    assert str(err).startswith("lists/demo.csv")
    assert isinstance(err, ConfigError)


def test_the_same_entry_id_in_another_list_is_fine() -> None:
    file = ListFile.parse(text(PERSON, "OTHER,P1,individual,Jane Doe,,"), "demo.csv")
    assert len(file) == 2


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(text(PERSON).encode() + b"DEMO,P2,individual,M\xfcller,,\n")
    with pytest.raises(ListError) as info:
        ListFile.load(path)
    assert (info.value.line, info.value.problem) == (3, "not valid UTF-8")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ListError, match="cannot read"):
        ListFile.load(tmp_path / "nope.csv")


def test_a_name_that_normalises_to_nothing_is_refused_naming_line_and_column() -> None:
    file = ListFile.parse(text(PERSON, "DEMO,E2,entity,Orion,Co. Ltd.,"), "demo.csv")
    with pytest.raises(ListError) as info:
        ScreeningLists([file], ScreeningSettings())
    assert (info.value.line, info.value.column) == (3, "5 (aliases)")
    assert "empty once normalised" in info.value.problem


def test_an_entry_in_two_files_is_refused() -> None:
    a = ListFile.parse(text(PERSON), "a.csv")
    b = ListFile.parse(text(FIRM, PERSON), "b.csv")
    with pytest.raises(ListError, match=r"b\.csv, line 3: entry DEMO/P1 is also in a\.csv"):
        ScreeningLists([a, b], ScreeningSettings())


def test_two_files_with_one_stem_are_refused() -> None:
    a = ListFile.parse(text(PERSON), "x/demo.csv")
    b = ListFile.parse(text(FIRM), "y/demo.csv")
    with pytest.raises(ConfigError, match="same name"):
        ScreeningLists([a, b], ScreeningSettings())


# -- several files ------------------------------------------------------------------


def test_lists_give_versions_rows_and_ages(tmp_path: Path) -> None:
    a, b = write(tmp_path / "un.csv", 3), write(tmp_path / "local.csv", 5)
    os.utime(a, (2_000_000, 2_000_000))
    os.utime(b, (2_000_100, 2_000_100))
    lists = ScreeningLists.load(ScreeningSettings(lists=(a, b)))
    assert [(v.list, v.version) for v in lists.versions] == [
        ("un", hashlib.sha256(a.read_bytes()).hexdigest()),
        ("local", hashlib.sha256(b.read_bytes()).hexdigest()),
    ]
    assert lists.rows() == {"un": 3, "local": 5}
    assert lists.ages(2_000_200) == {"un": 200, "local": 100}


# -- the reload guard ------------------------------------------------------------------


def lists_of(tmp_path: Path, **rows: int) -> ScreeningLists:
    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    folder.mkdir()
    return ScreeningLists([ListFile.load(write(folder / f"{k}.csv", n)) for k, n in rows.items()],
                          ScreeningSettings())  # fmt: skip


def test_a_file_with_more_than_ten_percent_fewer_rows_is_refused(tmp_path: Path) -> None:
    old = lists_of(tmp_path, un=100, local=10)
    with pytest.raises(ListError, match=r"89 rows instead of 100 \(11\.0% fewer\)") as info:
        old.check_replacement(lists_of(tmp_path, un=89, local=10))
    assert info.value.source.endswith("un.csv")
    assert "--force" in str(info.value)


def test_ten_percent_fewer_rows_or_more_rows_are_accepted(tmp_path: Path) -> None:
    old = lists_of(tmp_path, un=100, local=10)
    old.check_replacement(lists_of(tmp_path, un=90, local=9))
    old.check_replacement(lists_of(tmp_path, un=300, local=10, extra=1))


def test_force_accepts_a_shrunk_or_missing_file(tmp_path: Path) -> None:
    old = lists_of(tmp_path, un=100, local=10)
    shrunk = lists_of(tmp_path, un=10)
    with pytest.raises(ListError, match="local"):
        old.check_replacement(lists_of(tmp_path, un=100))  # a file gone drops all its rows
    with pytest.raises(ListError):
        old.check_replacement(shrunk)
    old.check_replacement(shrunk, force=True)


def test_the_allowed_drop_can_be_changed(tmp_path: Path) -> None:
    old = lists_of(tmp_path, un=100)
    old.check_replacement(lists_of(tmp_path, un=70), max_drop=0.30)
    with pytest.raises(ListError, match="more than the allowed 5%"):
        old.check_replacement(lists_of(tmp_path, un=94), max_drop=0.05)


# -- settings ---------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = ScreeningSettings()
    assert (s.scope, s.threshold, s.review_alert, s.max_list_age) == ("fx", 0.88, 1800.0, 604800.0)
    assert s.lists == () and s.review_group is None
    assert "有限公司" in s.legal_forms


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"scope": "some"}, "screening.scope"),
        ({"threshold": 0.0}, "screening.threshold"),
        ({"threshold": 1.5}, "screening.threshold"),
        ({"review_alert": 0}, "screening.review_alert"),
        ({"legal_forms": ("Ltd", "...")}, "screening.legal_forms"),
        ({"lists": (Path("a/x.csv"), Path("b/x.csv"))}, "screening.lists"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ScreeningSettings(**kwargs)  # type: ignore[arg-type]
