"""Key-file hygiene (DESIGN.md Keys): permissions, passphrase sources, encrypted PKCS#8."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.errors import ConfigError
from gateway.keys.devpki import DevPki
from gateway.keys.files import (
    CREDENTIAL_NAME,
    atomic_write,
    check_private_key_file,
    load_encrypted_signing_key,
    read_passphrase,
    write_encrypted_pkcs8,
)
from gateway.keys.ring import KeyRing

from .conftest import PASSPHRASE

ENV = "TEST_GATEWAY_KEY_PASSPHRASE"


def _encrypt_in_place(path: Path, passphrase: bytes = PASSPHRASE) -> None:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    write_encrypted_pkcs8(key, path, passphrase)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o601])
def test_key_readable_or_writable_by_others_is_refused(pki: DevPki, mode: int) -> None:
    secret = pki.response_key.read_bytes()
    pki.response_key.chmod(mode)
    with pytest.raises(ConfigError) as info:
        check_private_key_file(pki.response_key)
    message = str(info.value)
    assert str(pki.response_key) in message
    assert f"{mode:04o}" in message
    assert secret.decode().splitlines()[1][:20] not in message  # never the content


def test_private_key_file_passes(pki: DevPki) -> None:
    check_private_key_file(pki.response_key)  # the dev PKI writes 0600


def test_not_a_regular_file_or_missing(tmp_path: Path) -> None:
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        check_private_key_file(tmp_path / "dir.key")
    with pytest.raises(ConfigError, match="does not exist"):
        check_private_key_file(tmp_path / "missing.key")


def test_symlink_to_a_private_key_is_judged_by_its_target(pki: DevPki, tmp_path: Path) -> None:
    link = tmp_path / "link.key"
    link.symlink_to(pki.response_key)
    check_private_key_file(link)
    pki.response_key.chmod(0o644)
    with pytest.raises(ConfigError, match="gives access to group or others"):
        check_private_key_file(link)


# ------------------------------------------------------------------ passphrase


def test_passphrase_from_the_credentials_directory_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / CREDENTIAL_NAME).write_bytes(b"from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv(ENV, "from-env")
    assert read_passphrase(ENV) == b"from-credential"


def test_passphrase_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))  # without our credential in it
    monkeypatch.setenv(ENV, "from-env")
    assert read_passphrase(ENV) == b"from-env"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert read_passphrase(ENV) == b"from-env"


def test_no_passphrase_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv(ENV, raising=False)
    assert read_passphrase(ENV) is None
    (tmp_path / CREDENTIAL_NAME).write_bytes(b"\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_passphrase(ENV) is None  # an empty credential is no passphrase


# ------------------------------------------------------------------ encryption


def test_unencrypted_key_refused_when_required(pki: DevPki) -> None:
    with pytest.raises(ConfigError, match=r"gateway-response\.key: private key is not encrypted"):
        load_encrypted_signing_key(
            pki.response_key, pki.response_cert, PASSPHRASE, require_encrypted=True
        )
    # dev: the plain key loads, even when a passphrase happens to be set
    load_encrypted_signing_key(pki.response_key, pki.response_cert, PASSPHRASE)


def test_encrypted_key_loads_with_its_passphrase_only(pki: DevPki) -> None:
    _encrypt_in_place(pki.response_key)
    key = load_encrypted_signing_key(
        pki.response_key, pki.response_cert, PASSPHRASE, require_encrypted=True
    )
    assert key.chain[0].subject.rfc4514_string().startswith("CN=CorpLink Dev Gateway Response")
    with pytest.raises(ConfigError, match="wrong/missing passphrase") as info:
        load_encrypted_signing_key(pki.response_key, pki.response_cert, b"wrong")
    assert "BEGIN" not in str(info.value)
    with pytest.raises(ConfigError, match="no passphrase was given"):
        load_encrypted_signing_key(pki.response_key, pki.response_cert, None)


def test_write_encrypted_pkcs8_is_private_and_encrypted(pki: DevPki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.clearing_key.read_bytes(), None)
    out = tmp_path / "new.key"
    write_encrypted_pkcs8(key, out, PASSPHRASE)  # type: ignore[arg-type]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    again = serialization.load_pem_private_key(out.read_bytes(), PASSPHRASE)
    assert again.public_key() == key.public_key()
    with pytest.raises(ValueError, match="empty passphrase"):
        write_encrypted_pkcs8(key, out, b"")  # type: ignore[arg-type]


def test_production_ring_refuses_plain_keys_and_loads_encrypted_ones(pki: DevPki) -> None:
    with pytest.raises(ConfigError, match="not encrypted"):
        KeyRing.load(pki.ring, pki.dir, PASSPHRASE, require_encrypted=True)
    for key in (pki.response_key, pki.clearing_key, pki.server_key):
        _encrypt_in_place(key)
    ring = KeyRing.load(pki.ring, pki.dir, PASSPHRASE, require_encrypted=True)
    assert (
        ring.signer("tls", pki.now).key.public_key()
        == ring.current("tls", pki.now).cert.public_key()
    )


def test_atomic_write_keeps_the_old_file_when_validation_fails(tmp_path: Path) -> None:
    target = tmp_path / "list.txt"
    target.write_text("old\n")

    def refuse(path: Path) -> None:
        assert path.read_text() == "new\n"  # the candidate is complete when validated
        raise ConfigError("bad")

    with pytest.raises(ConfigError):
        atomic_write(target, b"new\n", validate=refuse)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["list.txt"]  # no temp file left behind
