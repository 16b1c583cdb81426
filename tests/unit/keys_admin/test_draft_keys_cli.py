"""``gatewayctl keys list`` and ``keys draft-rotate`` for the bank-draft Code keys
(docs/bank-drafts.md §5): real files in a tmp keys folder, a real admin socket."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.builders import build_calendar, build_schedules
from gateway.clock import SHANGHAI
from gateway.config import Config, load_config
from gateway.drafts import keystore
from gateway.drafts.code import DraftKey
from gateway.drafts.dates import last_expiry_under
from gateway.draftsvc.keyfile import store_path, write_store
from gateway.keys.devpki import DevPki
from gateway.model import Engine

from .test_cli import FakeDaemon, run

PASSPHRASE_ENV = "GATEWAY_TEST_DRAFT_CLI_PASSPHRASE"
PASSPHRASE = "draft keys of the unit tests only"
DAEMON_NOW = datetime(2026, 1, 5, 10, 0, tzinfo=SHANGHAI)  # FakeDaemon's business clock


@pytest.fixture
def cfg(pki: DevPki, tmp_path: Path) -> Config:
    return load_config(
        overrides={
            "environment": "test",
            "state_dir": str(tmp_path / "state"),
            "keys": {"dir": str(pki.dir), "dev_pki": False, "passphrase_env": PASSPHRASE_ENV},
            "admin": {"socket": str(tmp_path / "admin.sock")},
        }
    )


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    return PASSPHRASE.encode()


def first_version(cfg: Config, activate: datetime) -> keystore.SealedVersion:
    """A store file with one version, as gatewayd makes it at its first start."""
    version = keystore.seal(
        DraftKey("d-first", keystore.new_secret()), PASSPHRASE.encode(), activate
    )
    write_store(store_path(cfg.keys_dir), keystore.dumps((version,)))
    return version


def stored(cfg: Config) -> tuple[keystore.SealedVersion, ...]:
    path = store_path(cfg.keys_dir)
    return keystore.loads(path.read_bytes(), str(path))


def test_list_shows_each_draft_version_and_never_its_value(
    cfg: Config,
    passphrase: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(SHANGHAI)
    first_version(cfg, now - timedelta(days=1))
    later = (now + timedelta(days=1)).replace(microsecond=0)
    assert run(cfg, "draft-rotate", "--activate", later.isoformat()) == 0
    capsys.readouterr()
    raw = store_path(cfg.keys_dir).read_text()
    secrets = [v.value.decode() for v in stored(cfg)] + [
        line.split('"')[1] for line in raw.splitlines() if line.startswith("salt")
    ]

    monkeypatch.delenv(PASSPHRASE_ENV)  # listing needs no passphrase
    assert run(cfg, "list") == 0
    table = capsys.readouterr().out
    assert "draft keys in draft-keys.toml" in table and "KEPT UNTIL" in table
    assert "d-first" in table and "active" in table
    new_id = stored(cfg)[1].key_id
    assert new_id in table and "next" in table
    assert run(cfg, "list", "--json") == 0
    out = capsys.readouterr().out
    items = [i for i in json.loads(out)["items"] if i["kind"] == "draft"]
    assert [(i["name"], i["state"]) for i in items] == [("d-first", "active"), (new_id, "next")]
    assert items[0]["retain_until"] == str(stored(cfg)[0].retain_until)
    assert items[1]["activate"] == later.isoformat()
    assert set(items[0]) == {"kind", "name", "activate", "retain_until", "state"}
    for secret in secrets:
        assert secret not in table and secret not in out


def test_list_without_a_draft_key_file_says_who_makes_it(
    cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cfg, "list") == 0
    assert "no draft keys: gatewayd makes draft-keys.toml" in capsys.readouterr().out


def test_list_with_a_damaged_draft_key_file_still_lists_the_certificates_and_exits_1(
    cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path(cfg.keys_dir).write_text("format = 1\n[[draft]]\nid = 'x'\n")
    assert run(cfg, "list") == 1
    out = capsys.readouterr().out
    assert "gateway-response.pem" in out and "draft keys:" in out and "missing" in out
    assert run(cfg, "list", "--json") == 1
    assert "draft[0]" in json.loads(capsys.readouterr().out)["draft_keys_error"]


def test_draft_rotate_adds_a_sealed_version_and_keeps_the_predecessor_for_its_drafts(
    cfg: Config, passphrase: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(SHANGHAI)
    first = first_version(cfg, now - timedelta(days=3))
    activate = (now + timedelta(days=2)).replace(microsecond=0)
    assert run(cfg, "draft-rotate", "--activate", activate.isoformat(), "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["reload"]["ok"] is None  # no daemon: applies at its next start

    path = store_path(cfg.keys_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old, new = stored(cfg)
    expected = last_expiry_under(activate, build_schedules(cfg)[Engine.INTRA], build_calendar(cfg))
    assert old.key_id == first.key_id and old.retain_until == expected
    assert new.activate == activate and new.retain_until is None
    assert answer["previous_retain_until"] == expected.isoformat()
    assert answer["id"] == new.key_id
    ring = keystore.DraftKeyRing.open((old, new), passphrase)
    assert ring.current(activate).key_id == new.key_id
    assert [k.key_id for k in ring.kept(activate)] == [new.key_id, old.key_id]
    opened_new = ring.by_id(new.key_id)
    assert opened_new is not None and opened_new.secret not in path.read_bytes()
    with pytest.raises(keystore.DraftKeyError, match="wrong passphrase"):
        keystore.unseal(new, b"another passphrase")


def test_draft_rotate_with_a_running_daemon_activates_now_and_reloads_it(
    cfg: Config, passphrase: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    first_version(cfg, DAEMON_NOW - timedelta(days=40))
    with FakeDaemon(cfg.admin_socket, {"ok": True, "directory": "x", "codes": 1}) as daemon:
        assert run(cfg, "draft-rotate", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert daemon.ops == ["status", "reload"]
    assert answer["reload"]["ok"] is True
    assert answer["activate"] == DAEMON_NOW.isoformat()  # "now" is the daemon's clock
    assert stored(cfg)[1].activate == DAEMON_NOW


def test_a_refused_reload_after_draft_rotate_exits_1(
    cfg: Config, passphrase: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    first_version(cfg, DAEMON_NOW - timedelta(days=40))
    with FakeDaemon(cfg.admin_socket, {"ok": False, "reason": "draft-keys.toml: damaged"}):
        assert run(cfg, "draft-rotate") == 1
    assert "refused the reload: draft-keys.toml: damaged" in capsys.readouterr().out


def test_the_first_draft_rotate_makes_the_file(
    cfg: Config, passphrase: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    activate = (datetime.now(SHANGHAI) + timedelta(hours=1)).replace(microsecond=0)
    assert run(cfg, "draft-rotate", "--activate", activate.isoformat()) == 0
    assert "created draft-keys.toml" in capsys.readouterr().out
    (only,) = stored(cfg)
    keystore.unseal(only, passphrase)


def test_draft_rotate_without_a_passphrase_is_a_configuration_error(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    first_version(cfg, datetime.now(SHANGHAI) - timedelta(days=1))
    before = store_path(cfg.keys_dir).read_bytes()
    assert run(cfg, "draft-rotate") == 2
    err = capsys.readouterr().err
    assert "no keys passphrase" in err and PASSPHRASE_ENV in err
    assert store_path(cfg.keys_dir).read_bytes() == before


def test_draft_rotate_with_a_wrong_passphrase_is_refused_and_changes_nothing(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first_version(cfg, datetime.now(SHANGHAI) - timedelta(days=1))
    before = store_path(cfg.keys_dir).read_bytes()
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase the keys are sealed under")
    assert run(cfg, "draft-rotate") == 1
    err = capsys.readouterr().err
    assert "draft key d-first: wrong passphrase" in err
    assert PASSPHRASE not in err
    assert store_path(cfg.keys_dir).read_bytes() == before


@pytest.mark.parametrize(
    ("activate", "code", "says"),
    [
        ("next week", 2, "ISO 8601"),
        ("2030-01-01T00:00:00", 2, "UTC offset"),
        ("2001-01-01T00:00:00+08:00", 1, "before now"),
    ],
)
def test_draft_rotate_refuses_a_bad_activation(
    cfg: Config,
    passphrase: bytes,
    capsys: pytest.CaptureFixture[str],
    activate: str,
    code: int,
    says: str,
) -> None:
    first_version(cfg, datetime.now(SHANGHAI) - timedelta(days=1))
    before = store_path(cfg.keys_dir).read_bytes()
    assert run(cfg, "draft-rotate", "--activate", activate) == code
    assert says in capsys.readouterr().err
    assert store_path(cfg.keys_dir).read_bytes() == before


def test_draft_rotate_before_the_latest_version_is_refused(
    cfg: Config, passphrase: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = first_version(cfg, datetime.now(SHANGHAI) + timedelta(days=5))
    soon = (datetime.now(SHANGHAI) + timedelta(days=1)).isoformat()
    assert run(cfg, "draft-rotate", "--activate", soon) == 1
    assert f"later than {latest.key_id}'s" in capsys.readouterr().err
    assert len(stored(cfg)) == 1


def test_draft_rotate_on_a_damaged_file_is_refused(
    cfg: Config, passphrase: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path(cfg.keys_dir).write_text("not toml [")
    assert run(cfg, "draft-rotate") == 1
    assert "draft-keys.toml: not valid TOML" in capsys.readouterr().err
    assert store_path(cfg.keys_dir).read_text() == "not toml ["
