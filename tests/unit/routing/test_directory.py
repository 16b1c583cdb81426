"""The bank directory file: strict parsing, lookups, reload guard (routing.md §1, §2)."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from gateway.paths import data_root
from gateway.routing.directory import HEADER, Directory, DirectoryError

DEMO = data_root() / "routing" / "directory.csv"
HEAD = ",".join(HEADER)

ICBC = "102100099996,中国工商银行股份有限公司总行清算中心,cnaps,102100099996,1000,active,,,"
OURS = "103290000018,示范银行上海分行营业部,cnaps,103100000019,2900,active,,,100018"
BRANCH = "100018,示范银行上海分行营业部,internal,103100000019,2900,active,,,"


# "102100099996" in full-width digits: str.isdigit() says True, the spec does not.
FULLWIDTH = "".join(chr(0xFF10 + int(c)) for c in "102100099996")


def text(*rows: str) -> str:
    return "\n".join((HEAD, *rows)) + "\n"


def refused(body: str) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        Directory.parse(body, "dir.csv")
    return info.value


# -- the demo file -----------------------------------------------------------------


def test_demo_directory_loads_with_the_documented_rows() -> None:
    d = Directory.load(DEMO)
    assert 30 <= len(d) <= 60
    assert d.version == hashlib.sha256(DEMO.read_bytes()).hexdigest()[:16]
    head_office = d.get("103100000019")
    assert head_office is not None
    assert head_office.participant == "103100000019"
    assert head_office.internal == "100019"
    icbc_branch = d.get("102290000011")
    assert icbc_branch is not None
    assert icbc_branch.participant == "102100099996"
    assert d.get("103290000018") == d.by_internal("100018")
    statuses = {e.status for e in d}
    assert statuses == {"active", "suspended", "closed"}
    assert any(e.valid_from is not None and e.valid_from > date(2030, 1, 1) for e in d)


@pytest.mark.parametrize(
    ("code", "on", "usable"),
    [
        ("102100099996", date(2026, 11, 27), True),
        ("102651020123", date(2026, 11, 27), False),  # suspended
        ("305584000021", date(2024, 6, 1), False),  # closed
        ("104110000029", date(2025, 3, 31), True),  # last valid day
        ("104110000029", date(2025, 4, 1), False),  # expired
        ("308651000016", date(2030, 12, 31), False),  # not yet valid
        ("308651000016", date(2031, 1, 1), True),
        ("102902", date(2026, 11, 27), False),  # our suspended sub-branch
    ],
)
def test_usable_on_follows_status_and_validity(code: str, on: date, usable: bool) -> None:
    entry = Directory.load(DEMO).get(code)
    assert entry is not None
    assert entry.usable_on(on) is usable


# -- parsing ---------------------------------------------------------------------


def test_parse_and_load_agree_and_version_is_the_file_hash(tmp_path: Path) -> None:
    body = text(ICBC, OURS, BRANCH)
    path = tmp_path / "d.csv"
    path.write_bytes(body.encode("utf-8"))
    loaded = Directory.load(path)
    parsed = Directory.parse(body, "<test>")
    assert loaded.version == parsed.version == hashlib.sha256(body.encode()).hexdigest()[:16]
    assert [e.code for e in loaded] == [e.code for e in parsed]
    assert len(loaded) == 3
    assert "102100099996" in loaded
    assert loaded.get("999999999999") is None
    assert loaded.by_internal("100019") is None


def test_a_changed_file_has_a_new_version() -> None:
    a = Directory.parse(text(ICBC), "a")
    b = Directory.parse(text(ICBC, OURS), "b")
    assert a.version != b.version


def test_byte_order_mark_blank_lines_spaces_and_quoted_commas_are_accepted(tmp_path: Path) -> None:
    body = (
        "\ufeffcode, name, kind, participant, city, status, valid_from, valid_to, internal\r\n"
        "\r\n"
        '104100000004,"Bank of China, Head Office",cnaps,104100000004,1000,active,'
        "2001-01-01,2099-12-31,\r\n"
        f" {OURS} \r\n"
        "\r\n"
    )
    path = tmp_path / "d.csv"
    path.write_bytes(body.encode("utf-8"))
    d = Directory.load(path)
    boc = d.get("104100000004")
    assert boc is not None
    assert boc.name == "Bank of China, Head Office"
    assert boc.valid_from == date(2001, 1, 1)
    assert boc.valid_to == date(2099, 12, 31)
    ours = d.get("103290000018")
    assert ours is not None
    assert ours.internal == "100018"


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("102100099996,X,bank,102100099996,1000,active,,,", "3 (kind)", "kind"),
        ("10210009999,X,cnaps,102100099996,1000,active,,,", "1 (code)", "12 digits"),
        ("1021000999960,X,cnaps,102100099996,1000,active,,,", "1 (code)", "12 digits"),
        ("102100099996,X,internal,102100099996,1000,active,,,", "1 (code)", "6 digits"),
        (f"{FULLWIDTH},X,cnaps,102100099996,1000,active,,,", "1 (code)", "digits"),
        ("10210009999A,X,cnaps,102100099996,1000,active,,,", "1 (code)", "digits"),
        ("102100099996,,cnaps,102100099996,1000,active,,,", "2 (name)", "empty"),
        ("102100099996,X,cnaps,10210009999,1000,active,,,", "4 (participant)", "12 digits"),
        ("102100099996,X,cnaps,102100099996,1000,open,,,", "6 (status)", "status"),
        ("102100099996,X,cnaps,102100099996,1000,active,2024/01/01,,", "7 (valid_from)", "YYYY"),
        ("102100099996,X,cnaps,102100099996,1000,active,20240101,,", "7 (valid_from)", "YYYY"),
        ("102100099996,X,cnaps,102100099996,1000,active,,2024-02-30,", "8 (valid_to)", "calendar"),
        (
            "102100099996,X,cnaps,102100099996,1000,active,2024-02-01,2024-01-31,",
            "8 (valid_to)",
            "before",
        ),
        ("102100099996,X,cnaps,102100099996,1000,active,,,10001", "9 (internal)", "6 digits"),
        ("100018,X,internal,103100000019,2900,active,,,100018", "9 (internal)", "cnaps rows"),
        ("102100099996,X\x00,cnaps,102100099996,1000,active,,,", "2 (name)", "control"),
    ],
)
def test_a_bad_cell_refuses_the_file_naming_line_and_column(
    row: str, column: str, words: str
) -> None:
    err = refused(text(ICBC.replace("102100099996", "102100000030", 1), row))
    assert err.source == "dir.csv"
    assert err.line == 3
    assert err.column == column
    assert words in err.problem
    assert str(err).startswith(f"dir.csv, line 3, column {column}: ")


def test_wrong_column_count_names_the_line() -> None:
    err = refused(text(ICBC, "103100000019,X,cnaps,103100000019,1000,active,,"))
    assert (err.line, err.column) == (3, None)
    assert "expected 9 columns, found 8" in err.problem


def test_duplicate_code_names_both_lines() -> None:
    err = refused(text(ICBC, OURS, ICBC))
    assert (err.line, err.column) == (4, "1 (code)")
    assert "first on line 2" in err.problem


def test_duplicate_internal_mapping_is_refused() -> None:
    err = refused(text(OURS, OURS.replace("103290000018", "103290000026")))
    assert (err.line, err.column) == (3, "9 (internal)")


def test_line_numbers_count_physical_lines_and_name_where_a_row_starts() -> None:
    multi = f'"{ICBC[:12]}","multi\nline"' + ICBC[ICBC.index(",cnaps") :]
    err = refused(f"{HEAD}\n\n{multi}\n")
    assert (err.line, err.column) == (3, "2 (name)")
    assert "control" in err.problem
    err = refused(f"{HEAD}\n\n{ICBC}\n\nbad\n")
    assert err.line == 5


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "empty file"),
        (HEAD + "\n", "no entries"),
        ("code,name,kind,participant,city,status,valid_from,valid_to\n" + ICBC, "header"),
        ("code,name,kind,participant,city,status,valid_to,valid_from,internal\n", "header"),
        (text(ICBC) + '"102100000030,unterminated\n', "CSV syntax"),
    ],
)
def test_structural_problems_are_refused(body: str, problem: str) -> None:
    assert problem in refused(body).problem


def test_load_refuses_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEAD + "\n" + ICBC + "\n").encode("utf-8") + OURS.encode("gbk") + b"\n")
    with pytest.raises(DirectoryError) as info:
        Directory.load(path)
    assert info.value.line == 3
    assert str(path) in str(info.value)
    assert "UTF-8" in info.value.problem


def test_load_of_a_missing_file_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="cannot read"):
        Directory.load(tmp_path / "nope.csv")


# -- reload guard ------------------------------------------------------------------


def _numbered(n: int) -> Directory:
    rows = [f"3131000{i:05d},Bank {i},cnaps,313100000013,1000,active,,," for i in range(n)]
    return Directory.parse(text(*rows), f"<{n}>")


def test_drop_ratio_counts_codes_missing_in_the_new_version() -> None:
    old = _numbered(20)
    assert old.drop_ratio(_numbered(20)) == 0.0
    assert old.drop_ratio(_numbered(18)) == pytest.approx(0.10)
    assert old.drop_ratio(_numbered(17)) == pytest.approx(0.15)
    assert old.drop_ratio(_numbered(40)) == 0.0  # additions never count
    assert _numbered(18).drop_ratio(old) == 0.0


def test_check_replacement_refuses_more_than_the_allowed_share() -> None:
    old = _numbered(20)
    old.check_replacement(_numbered(18))  # exactly 10 %: allowed
    with pytest.raises(DirectoryError, match=r"would drop 3 of 20 codes \(15.0%\)") as info:
        old.check_replacement(_numbered(17))
    assert info.value.source == "<17>"
    old.check_replacement(_numbered(17), max_drop=0.2)
    with pytest.raises(DirectoryError):
        old.check_replacement(_numbered(19), max_drop=0.0)


# -- the optional bic column (corplink.md §4: "a BIC that the directory maps") ----------

BIC_HEAD = HEAD + ",bic"


def with_bic(*rows: str) -> Directory:
    return Directory.parse("\n".join((BIC_HEAD, *rows)) + "\n", "dir.csv")


def test_a_bic_column_maps_bic8_and_bic11_to_their_rows() -> None:
    d = with_bic(ICBC + ",ICBKCNBJ", OURS + ",DEMOCNSHXXX", BRANCH + ",")
    icbc = d.by_bic("ICBKCNBJ")
    assert icbc is not None and icbc.code == "102100099996"
    assert d.by_bic("ICBKCNBJXXX") is icbc
    assert d.by_bic("ICBKCNBJ400") is icbc  # an unlisted branch: its head office row
    shanghai = d.by_bic("DEMOCNSH")
    assert shanghai is not None and shanghai.code == "103290000018"
    assert d.by_bic("BKCHCNBJ") is None
    assert d.by_bic("not a bic") is None
    branch = d.get("100018")
    assert branch is not None and branch.bic is None


def test_a_file_without_the_bic_column_maps_no_bic() -> None:
    d = Directory.parse(text(ICBC), "dir.csv")
    assert d.by_bic("ICBKCNBJ") is None


def test_a_malformed_or_repeated_bic_refuses_the_file() -> None:
    with pytest.raises(DirectoryError, match=r"10 \(bic\)"):
        with_bic(ICBC + ",icbkcnbj")
    with pytest.raises(DirectoryError, match="duplicate BIC ICBKCNBJXXX"):
        with_bic(ICBC + ",ICBKCNBJ", OURS + ",ICBKCNBJXXX")
    with pytest.raises(DirectoryError, match="expected 10 columns"):
        with_bic(ICBC)
