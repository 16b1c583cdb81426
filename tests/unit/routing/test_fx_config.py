"""Configuration of foreign-currency routing (bank.bics, fx.*, routing.correspondents and
routing.rma, engines.swift), and the settlement-path files as part of the router's
reload unit (docs/foreign-currency.md §2-§3, docs/routing-rules.md §2)."""

from __future__ import annotations

import pickle
import shutil
from datetime import time
from pathlib import Path

import pytest

from gateway import preflight
from gateway.builders import build_router
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.paths import data_root
from gateway.routing.directory import Directory
from gateway.routing.settlement_paths import SettlementFileError

SHIPPED = data_root() / "routing"


def overlay(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    path = overlay(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


def test_the_defaults() -> None:
    cfg = load_config()
    assert cfg.bank.bics == ("DEMOCNBJ", "DEMOHKHH")
    assert dict(cfg.fx.currencies) == {
        "CNY": 2,
        "USD": 2,
        "EUR": 2,
        "HKD": 2,
        "GBP": 2,
        "JPY": 0,
    }
    assert cfg.fx.default_cutoff == time(16)
    assert cfg.engines.swift.hold_policy == "hold"
    assert cfg.routing.correspondents == SHIPPED / "correspondents.csv"
    assert cfg.routing.rma == SHIPPED / "rma.csv"
    assert cfg.routing.correspondents.parent == cfg.routing.directory.parent


def test_an_overlay_adds_a_currency_and_replaces_the_bics(tmp_path: Path) -> None:
    cfg = load_config(
        overlay(tmp_path, '[bank]\nbics = ["ABCDCNSH"]\n[fx.currencies]\nCHF = 2\nKWD = 3\n')
    )
    assert cfg.bank.bics == ("ABCDCNSH",)
    assert cfg.fx.currencies["CHF"] == 2 and cfg.fx.currencies["USD"] == 2


def test_relative_file_paths_resolve_against_the_overlay(tmp_path: Path) -> None:
    cfg = load_config(
        overlay(tmp_path, '[routing]\ncorrespondents = "data/c.csv"\nrma = "data/r.csv"\n')
    )
    assert cfg.routing.correspondents == tmp_path / "data" / "c.csv"
    assert cfg.routing.rma == tmp_path / "data" / "r.csv"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[bank]\nbics = ["DEMOCNB"]\n', "bank.bics[0] must be a BIC of 8 or 11 characters"),
        ('[bank]\nbics = ["DEMOCNBJ", "democnsh"]\n', "bank.bics[1] must be a BIC"),
        ('[bank]\nbics = ["DEMOCNBJ", "DEMOCNBJXXX"]\n', "bank.bics[1]: DEMOCNBJ is listed twice"),
        ('[bank]\nbics = "DEMOCNBJ"\n', "bank.bics must be an array"),
        ("[fx.currencies]\nCNY = 3\n", "fx.currencies: currency CNY must be listed, with 2"),
        ("[fx.currencies]\nusd = 2\n", "fx.currencies: currency 'usd' must be an ISO 4217 code"),
        ("[fx.currencies]\nKWD = 5\n", "fx.currencies: currency KWD: minor units must be 0..4"),
        ('[fx.currencies]\nUSD = "2"\n', "fx.currencies.USD must be an integer"),
        ('[fx]\ncurrencies = "USD"\n', "[fx.currencies] must be a table"),
        ('[fx]\ndefault_cutoff = "09:00"\n', "fx.default_cutoff must be after the 09:00 opening"),
        ('[fx]\ndefault_cutoff = "4pm"\n', 'fx.default_cutoff must be a time like "16:00"'),
        ('[fx]\ncutoff = "16:00"\n', "unknown key 'fx.cutoff'"),
        ('[engines.swift]\nhold_policy = "queue"\n', "engines.swift.hold_policy must be one of"),
        ("[engines.swift]\nrate = 0\n", "engines.swift rates and max_inflight must be positive"),
        ("[routing]\ncorrespondents = 1\n", "routing.correspondents must be a path string"),
    ],
)
def test_bad_values_are_refused_at_load(tmp_path: Path, text: str, problem: str) -> None:
    assert problem in refused(tmp_path, text)


# -- the files at start and on reload ---------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of the shipped routing folder that a test may change."""
    folder = tmp_path / "routing"
    shutil.copytree(SHIPPED, folder)
    return folder


def config_for(data: Path, tmp_path: Path, extra: str = "") -> Path:
    return overlay(
        tmp_path,
        f'[routing]\ndirectory = "{data / "directory.csv"}"\n'
        f'calendars = "{data / "calendar"}"\n'
        f'correspondents = "{data / "correspondents.csv"}"\n'
        f'rma = "{data / "rma.csv"}"\n' + extra,
    )


def test_a_bad_file_stops_the_start_with_one_line(data: Path, tmp_path: Path) -> None:
    (data / "correspondents.csv").write_text("ccy,bic,account,cutoff\nUSD,HUDSUS33,1,25:00\n")
    cfg = load_config(config_for(data, tmp_path))
    with pytest.raises(ConfigError) as err:
        preflight.load_router_data(cfg, build_router)
    status, line = preflight.describe(err.value)
    assert status == 78
    assert line == (
        f"configuration error: {data / 'correspondents.csv'}, line 2, column 4 (cutoff): "
        "cutoff must be HH:MM (Asia/Shanghai)"
    )


def test_a_correspondent_in_a_currency_we_do_not_take(data: Path, tmp_path: Path) -> None:
    cfg = load_config(config_for(data, tmp_path, "[fx.currencies]\nCHF = 2\n"))
    (data / "correspondents.csv").write_text("ccy,bic,account,cutoff\nCHF,ALPSCHZZ,1,16:00\n")
    assert build_router(cfg).fx is not None
    (data / "correspondents.csv").write_text("ccy,bic,account,cutoff\nSEK,ALPSCHZZ,1,16:00\n")
    with pytest.raises(SettlementFileError, match=r"'SEK' is not in fx\.currencies"):
        build_router(cfg)


def test_a_missing_file_is_refused(data: Path, tmp_path: Path) -> None:
    cfg = load_config(config_for(data, tmp_path))
    (data / "rma.csv").unlink()
    with pytest.raises(SettlementFileError, match=r"rma\.csv: cannot read"):
        build_router(cfg)


def test_no_bics_no_files_needed(data: Path, tmp_path: Path) -> None:
    cfg = load_config(config_for(data, tmp_path, "[bank]\nbics = []\n"))
    (data / "rma.csv").unlink()
    assert build_router(cfg).fx is None


def test_the_files_reload_with_the_directory(data: Path, tmp_path: Path) -> None:
    """What the daemon's reload does: build a whole new router, check it against the
    old one, swap.  A bad or shrunken file refuses the new router; the old stays."""
    cfg = load_config(config_for(data, tmp_path))
    old = build_router(cfg)
    assert old.fx is not None
    path = data / "correspondents.csv"
    path.write_text(path.read_text().replace("16:30", "16:45"))
    new = build_router(cfg)
    old.check_replacement(new, max_drop=cfg.routing.max_drop_ratio)
    assert new.fx is not None and new.fx.correspondents.version != old.fx.correspondents.version
    assert new.fx.cutoff("EUR") == time(16, 45) and old.fx.cutoff("EUR") == time(16, 30)

    # one currency of five dropped (20 %): refused as probably truncated
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.startswith("JPY")))
    with pytest.raises(SettlementFileError, match="would drop 1 of 5 currencies"):
        old.check_replacement(build_router(cfg), max_drop=cfg.routing.max_drop_ratio)

    # rma.csv: dropping most banks is refused the same way
    path.write_text("".join(lines))
    (data / "rma.csv").write_text("bic,name\nLIONFRPP,Banque du Lion Paris\n")
    with pytest.raises(SettlementFileError, match=r"rma.csv: would drop \d+ of \d+ banks"):
        old.check_replacement(build_router(cfg))


def test_directory_and_calendar_swaps_keep_the_files() -> None:
    router = build_router(load_config())
    directory = Directory.load(SHIPPED / "directory.csv")
    assert router.with_directory(directory).fx is router.fx
    assert router.with_calendar(router.calendar).fx is router.fx
    assert router.fx is not None
    assert router.with_fx(router.fx).fx is router.fx


def test_the_currency_table_travels_to_the_fronts_and_stays_read_only(tmp_path: Path) -> None:
    # the front processes receive the configuration by pickle (docs/architecture.md §1)
    cfg = load_config(overlay(tmp_path, "[fx.currencies]\nCHF = 2\n"))
    copy = pickle.loads(pickle.dumps(cfg))  # noqa: S301 - our own object
    assert copy == cfg and hash(copy) == hash(cfg)
    assert copy.fx.currencies["CHF"] == 2
    with pytest.raises(TypeError, match="read-only"):
        cfg.fx.currencies["XAU"] = 0  # type: ignore[index]
