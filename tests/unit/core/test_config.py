"""Configuration: embedded defaults, overlays, unknown keys named with their file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.gatewayd import main as gatewayd_main
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.paths import default_config_path


def test_embedded_defaults_load_and_document_every_key() -> None:
    cfg = load_config()
    assert cfg.routing.directory.name == "directory.csv" and cfg.routing.directory.exists()
    assert [ln.name for ln in cfg.listeners] == ["tls", "tcp"]
    assert cfg.engines.beps.cutoff.hour == 16
    text = default_config_path().read_text()
    for key in ("send_time_window", "receipt_timeout", "max_items", "stale_crl_policy"):
        assert key in text


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('[clearing]\nurll = "mqtt://x"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(f)
    assert "clearing.urll" in str(ei.value) and str(f) in str(ei.value)


def test_unknown_key_inside_a_listener(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('[[listeners]]\nname = "x"\nportt = 1\n')
    with pytest.raises(ConfigError, match=r"listeners\[0\]\.portt"):
        load_config(f)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('[engines.beps]\nmax_items = "many"\n')
    with pytest.raises(ConfigError, match=r"engines\.beps\.max_items must be an integer"):
        load_config(f)


def test_overlay_merges_tables_and_replaces_arrays(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text(
        '[clearing]\nurl = "mqtt://broker:1883"\n[[listeners]]\nname = "vpn"\n'
        'bind = "10.8.0.1"\nport = 7100\ntls = false\nclient_cert = "none"\n'
    )
    cfg = load_config(f)
    assert cfg.clearing.url == "mqtt://broker:1883"
    assert cfg.clearing.topic_prefix == "clearing"
    assert [ln.name for ln in cfg.listeners] == ["vpn"]


def test_business_clock_needs_test_environment(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('[clock]\nstart = "2026-11-27T08:59:50+08:00"\n')
    with pytest.raises(ConfigError, match="environment"):
        load_config(f)
    f.write_text('environment = "test"\n[clock]\nstart = "2026-11-27T08:59:50+08:00"\n')
    assert load_config(f).clock.start


def test_dev_pki_refused_in_production(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('environment = "production"\n')
    with pytest.raises(ConfigError, match="dev_pki"):
        load_config(f)
    f.write_text('environment = "production"\n[keys]\ndev_pki = false\ndir = "/etc/gateway/keys"\n')
    assert load_config(f).keys_dir == Path("/etc/gateway/keys")


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "gw.toml"
    f.write_text('[routing]\ndirectory = "banks.csv"\n[journal]\npath = "j/journal.db"\n')
    cfg = load_config(f)
    assert cfg.routing.directory == tmp_path / "d" / "banks.csv"
    assert cfg.journal_path == tmp_path / "d" / "j" / "journal.db"


def test_check_config_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))  # as under systemd
    assert gatewayd_main(["--check-config"]) == 0
    assert "configuration OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[bank]\nclass_code = "1030"\n')
    assert gatewayd_main(["--config", str(bad), "--check-config"]) == 78  # EX_CONFIG
    assert "bank.class_code" in capsys.readouterr().err
