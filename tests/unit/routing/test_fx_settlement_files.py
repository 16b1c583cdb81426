"""The settlement-path files, correspondents.csv and rma.csv (docs/foreign-currency.md §3):
strict like the directory (a bad cell refuses the whole file, naming file, line and
column), versioned by SHA-256, and guarded against a shrunken replacement."""

from __future__ import annotations

import hashlib
from datetime import time
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.paths import data_root
from gateway.routing.currencies import CurrencyTable
from gateway.routing.directory import DirectoryError
from gateway.routing.settlement_paths import (
    Correspondent,
    Correspondents,
    RmaBank,
    RmaDirectory,
    SettlementFileError,
)

CURRENCIES = CurrencyTable()
HEAD = "ccy,bic,account,cutoff\n"
GOOD = (
    HEAD
    + "USD,HUDSUS33,36070012345001,16:00\n"
    + "EUR,MAINDEFF,DE89500400000532013000,16:30\n"
    + "HKD,VICTHKHHXXX,004-123-456789-001,15:00\n"
    + "GBP,THMSGB2L,GB29THMS60161331926819,16:30\n"
    + "JPY,SUMDJPJT,0123-456789,14:00\n"
)


def correspondents(text: str) -> Correspondents:
    return Correspondents.parse(text, "correspondents.csv", CURRENCIES)


def refused(text: str) -> SettlementFileError:
    with pytest.raises(SettlementFileError) as info:
        correspondents(text)
    return info.value


def rma(text: str) -> RmaDirectory:
    return RmaDirectory.parse(text, "rma.csv")


def rma_refused(text: str) -> SettlementFileError:
    with pytest.raises(SettlementFileError) as info:
        rma(text)
    return info.value


# -- correspondents.csv ---------------------------------------------------------------


def test_a_good_file() -> None:
    table = correspondents(GOOD)
    assert len(table) == 5
    assert table.get("USD") == Correspondent("USD", "HUDSUS33", "36070012345001", time(16))
    assert table.get("JPY") == Correspondent("JPY", "SUMDJPJT", "0123-456789", time(14))
    assert table.get("CHF") is None and table.get("CNY") is None


def test_the_shipped_files_load() -> None:
    folder = data_root() / "routing"
    table = Correspondents.load(folder / "correspondents.csv", CURRENCIES)
    assert {row.ccy for row in table} == {"USD", "EUR", "HKD", "GBP", "JPY"}
    banks = RmaDirectory.load(folder / "rma.csv")
    assert len(banks) >= 3 and banks.get("LIONFRPP") is not None


def test_cells_are_trimmed_and_blank_lines_skipped() -> None:
    table = correspondents(HEAD + "\n USD , HUDSUS33 , 12345 , 16:00 \n\n,,,\n")
    assert table.get("USD") == Correspondent("USD", "HUDSUS33", "12345", time(16))


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "correspondents.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert len(Correspondents.load(path, CURRENCIES)) == 5


def test_a_header_only_file_has_no_paths() -> None:
    assert len(correspondents(HEAD)) == 0


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        ("XAU,HUDSUS33,1,16:00", "1 (ccy)", "'XAU' is not in fx.currencies"),
        ("usd,HUDSUS33,1,16:00", "1 (ccy)", "is not in fx.currencies"),
        ("CNY,HUDSUS33,1,16:00", "1 (ccy)", "CNY clears at home"),
        (",HUDSUS33,1,16:00", "1 (ccy)", "is not in fx.currencies"),
        ("USD,HUDSUS3,1,16:00", "2 (bic)", "bic must be 8 or 11 characters"),
        ("USD,HUDSUS33XX,1,16:00", "2 (bic)", "bic must be 8 or 11 characters"),
        ("USD,hudsus33,1,16:00", "2 (bic)", "bic must be 8 or 11 characters"),
        ("USD,HUD1US33,1,16:00", "2 (bic)", "bic must be 8 or 11 characters"),
        ("USD,HUDSUS33,,16:00", "3 (account)", "account must be 1 to 34"),
        ("USD,HUDSUS33,3607 0012,16:00", "3 (account)", "account must be 1 to 34"),
        ("USD,HUDSUS33,=HYPERLINK(1),16:00", "3 (account)", "account must be 1 to 34"),
        ("USD,HUDSUS33," + "1" * 35 + ",16:00", "3 (account)", "account must be 1 to 34"),
        ("USD,HUDSUS33,1,4pm", "4 (cutoff)", "cutoff must be HH:MM"),
        ("USD,HUDSUS33,1,16:0", "4 (cutoff)", "cutoff must be HH:MM"),
        ("USD,HUDSUS33,1,24:00", "4 (cutoff)", "cutoff must be HH:MM"),
        ("USD,HUDSUS33,1,16:00:00", "4 (cutoff)", "cutoff must be HH:MM"),
        ("USD,HUDSUS33,1,", "4 (cutoff)", "cutoff must be HH:MM"),
        ("USD,HUDSUS33,1,09:00", "4 (cutoff)", "after the 09:00 opening"),
        ("USD,HUDSUS33,1,08:30", "4 (cutoff)", "after the 09:00 opening"),
        ("USD,HUDSUS33,1\x07,16:00", "3 (account)", "control character"),
    ],
)
def test_each_bad_cell_refuses_the_whole_file(row: str, column: str, problem: str) -> None:
    without_usd = GOOD.replace("USD,HUDSUS33,36070012345001,16:00\n", "")
    error = refused(without_usd + row + "\n")
    assert error.source == "correspondents.csv"
    assert error.line == 6
    assert error.column == column
    assert problem in error.problem
    assert str(error).startswith(f"correspondents.csv, line 6, column {column}: ")


def test_one_row_per_currency() -> None:
    error = refused(GOOD + "USD,CHASUS33,999,17:00\n")
    assert (error.line, error.column) == (7, "1 (ccy)")
    assert "USD already has a correspondent on line 2" in str(error)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "empty file"),
        ("ccy,bic,account\nUSD,HUDSUS33,1\n", 1, "header must be ccy,bic,account,cutoff"),
        ("currency,bic,account,cutoff\n", 1, "header must be"),
        (HEAD + "USD,HUDSUS33,1\n", 2, "expected 4 columns, found 3"),
        (HEAD + "USD,HUDSUS33,1,16:00,x\n", 2, "expected 4 columns, found 5"),
        (HEAD + 'USD,"HUDSUS33"x,1,16:00\n', 2, "CSV syntax"),
    ],
)
def test_file_level_problems(text: str, line: int, problem: str) -> None:
    error = refused(text)
    assert error.line == line and problem in error.problem


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(SettlementFileError, match="cannot read"):
        Correspondents.load(tmp_path / "missing.csv", CURRENCIES)
    path = tmp_path / "correspondents.csv"
    path.write_bytes(GOOD.encode() + b"EUR,MAINDEFF,\xff,16:00\n")
    with pytest.raises(SettlementFileError, match="line 7: not valid UTF-8"):
        Correspondents.load(path, CURRENCIES)


def test_the_refusal_is_both_a_directory_and_a_configuration_error() -> None:
    # refused like the directory on reload; a file error of the configuration at start
    error = refused(HEAD + "XAU,HUDSUS33,1,16:00\n")
    assert isinstance(error, DirectoryError) and isinstance(error, ConfigError)


def test_the_version_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "correspondents.csv"
    path.write_bytes(GOOD.encode())
    first = Correspondents.load(path, CURRENCIES)
    assert first.version == hashlib.sha256(GOOD.encode()).hexdigest()[:16]
    path.write_bytes(GOOD.replace("16:30", "16:45").encode())
    assert Correspondents.load(path, CURRENCIES).version != first.version


def test_the_shrink_guard() -> None:
    old = correspondents(GOOD)
    old.check_replacement(correspondents(GOOD))  # same currencies
    fewer = correspondents(GOOD.replace("JPY,SUMDJPJT,0123-456789,14:00\n", ""))
    with pytest.raises(SettlementFileError, match=r"would drop 1 of 5 currencies \(20.0%\)"):
        old.check_replacement(fewer)
    old.check_replacement(fewer, max_drop=0.25)
    # a new currency or a changed row is not a drop
    fewer.check_replacement(old)
    with pytest.raises(SettlementFileError, match="would drop 5 of 5"):
        old.check_replacement(correspondents(HEAD))


# -- rma.csv ------------------------------------------------------------------------------

RMA = (
    "bic,name\n"
    + "".join(f"BANK{c}{c}33,Bank {c}\n" for c in "ABCDEFGHI")
    + 'LIONFRPP,"Banque du Lion, Paris"\n'
)


def test_rma_matches_on_the_first_eight_characters() -> None:
    banks = rma(RMA)
    assert len(banks) == 10
    assert banks.get("LIONFRPP") == RmaBank("LIONFRPP", "Banque du Lion, Paris")
    assert banks.get("LIONFRPPXXX") is not None
    assert banks.get("LIONFRPP123") is not None
    assert banks.get("LIONFRPX") is None
    listed_as_bic11 = rma("bic,name\nALPSCHZZXXX,Alpenbank Zürich\n")
    assert listed_as_bic11.get("ALPSCHZZ") is not None
    assert listed_as_bic11.get("ALPSCHZZ200") is not None


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        ("LIONFRP,x", "1 (bic)", "bic must be 8 or 11 characters"),
        ("lionfrpp,x", "1 (bic)", "bic must be 8 or 11 characters"),
        (",x", "1 (bic)", "bic must be 8 or 11 characters"),
        ("ALPSCHZZ,", "2 (name)", "name is empty"),
        ("ALPSCHZZ,Alpen\x1bbank", "2 (name)", "control character"),
        ("LIONFRPP,Again", "1 (bic)", "LIONFRPP already listed on line 11"),
    ],
)
def test_each_bad_rma_cell_refuses_the_file(row: str, column: str, problem: str) -> None:
    error = rma_refused(RMA + row + "\n")
    assert (error.line, error.column) == (12, column)
    assert problem in error.problem
    assert str(error).startswith("rma.csv, line 12, ")


def test_rma_header_and_bom() -> None:
    assert "header must be bic,name" in str(rma_refused("bic,bank\nLIONFRPP,x\n"))
    assert len(rma("\ufeff" + RMA)) == 10


def test_rma_shrink_guard() -> None:
    old = rma(RMA)
    one_fewer = rma(RMA.replace("BANKAA33,Bank A\n", ""))
    old.check_replacement(one_fewer)  # 10 %: allowed
    two_fewer = rma(RMA.replace("BANKAA33,Bank A\n", "").replace("BANKBB33,Bank B\n", ""))
    with pytest.raises(SettlementFileError, match=r"rma.csv: would drop 2 of 10 banks"):
        old.check_replacement(two_fewer)
