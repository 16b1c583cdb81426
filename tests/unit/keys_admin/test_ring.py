"""The key ring: which version signs and which certificates verify, at the exact instants."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.config import KeysConfig
from gateway.errors import ConfigError
from gateway.keys import admin
from gateway.keys.devpki import DevPki
from gateway.keys.ring import KeyRing, ring_from_config

from .conftest import load_cert

US = timedelta(microseconds=1)


@pytest.fixture
def rotated(pki: DevPki) -> tuple[DevPki, datetime]:
    """The dev ring plus a second response version active at T1, overlap 2 days."""
    t1 = (pki.now + timedelta(days=10)).replace(microsecond=0)
    admin.rotate(pki.dir, "ring.toml", "response", activate=t1, overlap_days=2, now=pki.now)
    return pki, t1


def test_dev_pki_ring_has_one_version_per_role(pki: DevPki) -> None:
    ring = KeyRing.load(pki.ring, pki.dir, None)
    assert ring.roles == ("response", "clearing", "tls", "clearing_peer", "swift_peer")
    assert ring.signer("response", pki.now).chain[0] == load_cert(pki.response_cert)
    assert ring.verifying_certs("clearing_peer", pki.now) == (load_cert(pki.clearing_system_cert),)
    assert ring.current("tls", pki.now).key_path == pki.server_key
    assert ring.next_change(pki.now) is None


def test_signer_switches_at_the_activation_instant(rotated: tuple[DevPki, datetime]) -> None:
    pki, t1 = rotated
    ring = KeyRing.load(pki.ring, pki.dir, None)
    old, new = ring.versions("response")
    assert ring.signer("response", t1 - US) is old.signing_key
    assert ring.signer("response", t1) is new.signing_key
    assert ring.signer("response", t1 + timedelta(days=400)) is new.signing_key


def test_before_the_first_activation_the_first_version_signs(
    rotated: tuple[DevPki, datetime],
) -> None:
    pki, _t1 = rotated
    ring = KeyRing.load(pki.ring, pki.dir, None)
    first = ring.versions("response")[0]
    long_ago = first.activate - timedelta(days=3650)
    assert ring.signer("response", long_ago) is first.signing_key
    assert ring.verifying_certs("response", long_ago) == (first.cert,)


def test_old_certificate_verifies_until_the_overlap_ends(rotated: tuple[DevPki, datetime]) -> None:
    pki, t1 = rotated
    ring = KeyRing.load(pki.ring, pki.dir, None)
    old, new = ring.versions("response")
    end = t1 + timedelta(days=2)
    assert ring.verifying_certs("response", t1 - US) == (old.cert,)  # the next never verifies early
    assert ring.verifying_certs("response", t1) == (new.cert, old.cert)
    assert ring.verifying_certs("response", end - US) == (new.cert, old.cert)
    assert ring.verifying_certs("response", end) == (new.cert,)


def test_states_and_next_change(rotated: tuple[DevPki, datetime]) -> None:
    pki, t1 = rotated
    ring = KeyRing.load(pki.ring, pki.dir, None)
    end = t1 + timedelta(days=2)
    assert [ring.state("response", i, t1 - US) for i in (0, 1)] == ["active", "next"]
    assert [ring.state("response", i, t1) for i in (0, 1)] == ["overlap", "active"]
    assert [ring.state("response", i, end) for i in (0, 1)] == ["retired", "active"]
    assert ring.next_change(t1 - US) == t1
    assert ring.next_change(t1) == end
    assert ring.next_change(end) is None


def test_overlap_defaults_per_role_table(pki: DevPki) -> None:
    text = pki.ring.read_text().replace("overlap_days = 7\n", "", 1)
    pki.ring.write_text(text + "\n[overlap_days]\ndefault = 1\ntls = 0\n")
    t1 = (pki.now + timedelta(days=5)).replace(microsecond=0)
    admin.rotate(pki.dir, "ring.toml", "tls", activate=t1, now=pki.now)
    admin.rotate(pki.dir, "ring.toml", "clearing", activate=t1, now=pki.now)
    ring = KeyRing.load(pki.ring, pki.dir, None)
    assert ring.versions("tls")[1].overlap == timedelta(0)
    assert ring.versions("clearing")[1].overlap == timedelta(days=1)
    assert ring.verifying_certs("tls", t1) == (ring.versions("tls")[1].cert,)


# --------------------------------------------------------------- load errors


def _second_response(pki: DevPki, **fields: str) -> str:
    entry = {"key": '"gateway-response.key"', "cert": '"gateway-response.pem"'}
    entry["activate"] = (pki.now + timedelta(days=1)).replace(microsecond=0).isoformat()
    entry.update(fields)
    body = "\n".join(f"{k} = {v}" for k, v in entry.items() if v)
    return pki.ring.read_text() + f"\n[[response]]\n{body}\n"


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        ({"colour": '"blue"'}, "response[1].colour", "unknown key"),
        ({"cert": '"nope.pem"'}, "response[1].cert", "does not exist"),
        ({"key": ""}, "response[1].key", "missing"),
        ({"activate": "2027-01-01T00:00:00"}, "response[1].activate", "UTC offset"),
        ({"activate": '"tomorrow"'}, "response[1].activate", "UTC offset"),
        ({"overlap_days": "-1"}, "response[1].overlap_days", ">= 0"),
        ({"activate": "2000-01-01T00:00:00Z"}, "response[1].activate", "later than the previous"),
    ],
)
def test_load_errors_name_the_file_and_the_entry(
    pki: DevPki, change: dict[str, str], where: str, problem: str
) -> None:
    pki.ring.write_text(_second_response(pki, **change))
    with pytest.raises(ConfigError) as info:
        KeyRing.load(pki.ring, pki.dir, None)
    assert str(pki.ring) in str(info.value)
    assert where in str(info.value)
    assert problem in str(info.value)


def test_two_versions_at_the_same_instant_are_refused(pki: DevPki) -> None:
    first = KeyRing.load(pki.ring, pki.dir, None).versions("response")[0].activate
    pki.ring.write_text(_second_response(pki, activate=first.isoformat()))
    with pytest.raises(
        ConfigError, match=r"response\[1\]\.activate: .*two cannot activate at once"
    ):
        KeyRing.load(pki.ring, pki.dir, None)


def test_key_that_does_not_match_its_certificate(pki: DevPki) -> None:
    pki.ring.write_text(_second_response(pki, cert='"gateway-clearing.pem"'))
    with pytest.raises(
        ConfigError, match=r"gateway-clearing\.pem: first certificate does not match"
    ):
        KeyRing.load(pki.ring, pki.dir, None)


def test_peer_version_with_a_key_and_unknown_role(pki: DevPki) -> None:
    text = pki.ring.read_text().replace(
        'cert = "clearing-system.pem"', 'key = "clearing-system.key"\ncert = "clearing-system.pem"'
    )
    pki.ring.write_text(text)
    with pytest.raises(ConfigError, match=r"clearing_peer\[0\]\.key: a clearing_peer version"):
        KeyRing.load(pki.ring, pki.dir, None)
    pki.ring.write_text("[[signing]]\ncert = 'x.pem'\n")
    with pytest.raises(ConfigError, match="signing: unknown key"):
        KeyRing.load(pki.ring, pki.dir, None)


def test_certificate_not_valid_at_a_later_activation(pki: DevPki) -> None:
    far = (pki.now + timedelta(days=5000)).replace(microsecond=0).isoformat()
    pki.ring.write_text(_second_response(pki, activate=far))
    with pytest.raises(ConfigError, match=r"response\[1\]\.activate: the certificate is not valid"):
        KeyRing.load(pki.ring, pki.dir, None)


def test_world_readable_key_in_the_ring_is_refused(pki: DevPki) -> None:
    pki.clearing_key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"gateway-clearing\.key: key file mode 0644"):
        KeyRing.load(pki.ring, pki.dir, None, with_keys=False)


# ----------------------------------------------------- configs without a ring


def test_config_without_a_ring_uses_the_single_files(pki: DevPki, tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    shutil.copytree(pki.dir, keys_dir)
    (keys_dir / "ring.toml").unlink()
    ring = ring_from_config(KeysConfig(), keys_dir, None)
    assert ring.roles == ("response", "clearing", "tls", "clearing_peer", "swift_peer")
    far = pki.now + timedelta(days=3000)
    assert ring.signer("clearing", far).chain[0] == load_cert(pki.clearing_cert)
    assert ring.verifying_certs("clearing_peer", far) == (load_cert(pki.clearing_system_cert),)
    assert ring.next_change(pki.now) is None


def test_ring_roles_win_and_missing_roles_come_from_single_files(pki: DevPki) -> None:
    pki.ring.write_text(
        "[[response]]\nkey = 'gateway-response.key'\ncert = 'gateway-response.pem'\n"
        "activate = 2020-01-01T00:00:00+08:00\n"
    )
    ring = ring_from_config(KeysConfig(), pki.dir, None)
    assert ring.versions("response")[0].activate.year == 2020
    assert ring.versions("tls")[0].activate.year == 1970  # from keys.tls_key / keys.tls_cert


def test_single_ring_from_material(pki: DevPki) -> None:
    certs = [load_cert(pki.clearing_system_cert)]
    ring = KeyRing.single("clearing_peer", certs, cert_path=pki.clearing_system_cert)
    assert ring.verifying_certs("clearing_peer", pki.now) == tuple(certs)
    with pytest.raises(ValueError, match="no private key"):
        ring.signer("clearing_peer", pki.now)
