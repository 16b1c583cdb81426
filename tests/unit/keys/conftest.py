"""Fixtures: one dev PKI per key type for the whole session (tmp dirs only)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.keys.devpki import DevPki, generate_dev_pki
from gateway.keys.xmldsig import SigningKey, load_signing_key

XMLSEC1 = shutil.which("xmlsec1")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return generate_dev_pki(tmp_path_factory.mktemp("pki-ec"))


@pytest.fixture(scope="session")
def pki_rsa(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return generate_dev_pki(tmp_path_factory.mktemp("pki-rsa"), key_type="rsa")


@pytest.fixture
def fresh_pki(tmp_path: Path) -> DevPki:
    """A PKI a test may change (CRL, deny list, registry) without affecting others."""
    return generate_dev_pki(tmp_path / "pki")


@pytest.fixture(scope="session")
def op01(pki: DevPki) -> SigningKey:
    return load_signing_key(*pki.client("C100000001", "op01"))


@pytest.fixture(scope="session")
def op01_rsa(pki_rsa: DevPki) -> SigningKey:
    return load_signing_key(*pki_rsa.client("C100000001", "op01"))


@pytest.fixture
def xmlsec1(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run Debian's xmlsec1 with a list of arguments; skip if it is not installed."""
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 not installed")

    def run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [XMLSEC1, *map(str, args)], capture_output=True, timeout=30, check=False, cwd=tmp_path
        )

    return run
