"""Fixtures for the simulator tests: the two signing keys of the clearing link (clearing.md §3)."""

from __future__ import annotations

import pytest

from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, load_signing_key


@pytest.fixture(scope="module")
def gateway_key(dev_pki: DevPki) -> SigningKey:
    """The gateway's clearing key: the test plays the gateway with it."""
    return load_signing_key(dev_pki.clearing_key, dev_pki.clearing_cert)


@pytest.fixture(scope="module")
def system_key(dev_pki: DevPki) -> SigningKey:
    """The clearing systems' key: the simulator signs with it."""
    return load_signing_key(dev_pki.clearing_system_key, dev_pki.clearing_system_cert)
