"""Expiry gauges: what Prometheus sees for certificates and CRLs (issue 4 metrics)."""

from __future__ import annotations

from datetime import timedelta

from gateway.keys import admin
from gateway.keys.devpki import DevPki
from gateway.keys.expiry import collect, expiry_report, publish
from gateway.keys.files import load_crl
from gateway.keys.ring import KeyRing
from gateway.ops.metrics import REGISTRY

from .conftest import load_cert

CERT = "gateway_certificate_expiry_timestamp_seconds"
CRL = "gateway_crl_next_update_timestamp_seconds"


def sample(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_publish_exports_not_after_and_next_update(pki: DevPki) -> None:
    ring = KeyRing.load(pki.ring, pki.dir, None, with_keys=False)
    publish(collect(ring, [pki.client_ca], [pki.client_crl], now=pki.now))
    response = load_cert(pki.response_cert).not_valid_after_utc.timestamp()
    assert sample(CERT, kind="response", name="gateway-response.pem") == response
    assert sample(CERT, kind="tls", name="server.pem") is not None
    assert sample(CERT, kind="clearing_peer", name="clearing-system.pem") is not None
    ca = load_cert(pki.client_ca).not_valid_after_utc.timestamp()
    assert sample(CERT, kind="client_ca", name="client-ca.pem") == ca
    nxt = load_crl(pki.client_crl).next_update_utc
    assert nxt is not None
    assert sample(CRL, issuer="CorpLink Dev Client CA") == nxt.timestamp()


def test_retired_versions_disappear_from_the_gauges(pki: DevPki) -> None:
    t1 = (pki.now + timedelta(days=1)).replace(microsecond=0)
    version = admin.rotate(
        pki.dir, "ring.toml", "clearing", activate=t1, overlap_days=1, now=pki.now
    )
    ring = KeyRing.load(pki.ring, pki.dir, None, with_keys=False)
    publish(expiry_report(ring, now=t1))
    assert sample(CERT, kind="clearing", name="gateway-clearing.pem") is not None
    assert sample(CERT, kind="clearing", name=version.cert_path.name) is not None
    publish(expiry_report(ring, now=t1 + timedelta(days=1)))
    assert sample(CERT, kind="clearing", name="gateway-clearing.pem") is None
    assert sample(CERT, kind="clearing", name=version.cert_path.name) is not None
    assert sample(CRL, issuer="CorpLink Dev Client CA") is None  # not in this report


def test_labels_are_kinds_and_file_names_only(pki: DevPki) -> None:
    ring = KeyRing.load(pki.ring, pki.dir, None, with_keys=False)
    items = collect(ring, [pki.client_ca], [pki.client_crl], now=pki.now)
    assert {i.kind for i in items} <= {
        "response",
        "clearing",
        "tls",
        "client_ca",
        "clearing_peer",
        "swift_peer",
        "crl",
    }
    assert all("C1000" not in i.name and "/" not in i.name for i in items)
