"""Issue 4, revocation and key-file hygiene against the real daemon over real TLS.

A certificate revoked by a CRL import or by ``gatewayctl keys revoke`` is
refused with 2004 on the very next message, on a connection opened before the
revocation, without a restart (corplink.md §3); the deny list survives a
restart; a stale CRL fails closed unless configured open; the daemon refuses
to start on a world-readable or (in production) unencrypted private key.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import BusinessClock
from gateway.errors import ConfigError, RetCode
from gateway.keys.devpki import DevPki, rewrite_crl
from gateway.keys.files import load_crl
from gateway.keys.trust import fingerprint
from gateway.testing import Broker
from tests.integration.harness import Erp, gateway_config, recent_friday_10, running_gateway
from tests.integration.keys_support import (
    cert_of,
    copy_pki,
    crl_file,
    ctl_setup,
    gatewayctl_keys,
    pay,
    sample,
    scrape,
)

FRIDAY_10 = recent_friday_10()
CRL_GAUGE = 'gateway_crl_next_update_timestamp_seconds{issuer="CorpLink Dev Client CA"}'
# 2004 is refused at the credentials stage (gateway/desk.py), counted by reason word
REVOKED_REFUSALS = 'gateway_refusals_total{reason="cert_revoked",stage="credentials"}'
REVOKED = RetCode.CERT_REVOKED.text  # RetMsg = "<text>: <detail>" (gateway/desk.py Refusal)
REVOKED_MSG = REVOKED  # the detail equals the code's text, so it is not repeated


async def test_crl_import_bites_on_the_next_message_of_an_open_connection(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    _, op01 = pki.client("C100000001", "op01")
    # the CA's next CRL, as security staff receive it: DER, one serial, a later lastUpdate
    # (than the installed one's) that is not in the future of the business clock: a CRL
    # not yet valid leaves the status unknown (gateway/keys/revocation.py)
    new_crl = crl_file(
        pki, tmp_path / "next.crl", [op01], last_update=FRIDAY_10 - timedelta(hours=1)
    )
    async with running_gateway(cfg, clock) as gw:
        erp = Erp(gw, pki)
        c = await erp.client("C100000001", "op01")
        other = await erp.client("C100000002", "op01")
        assert (await c.pay("CRL-1", clock.now(), pay())).ret_code == "0000"

        assert await gatewayctl_keys(overlay, cfg, "import-crl", str(new_crl)) == 0

        r = await c.pay("CRL-2", clock.now(), pay())  # same connection, very next message
        assert (r.ret_code, r.ret_msg, r.gw_ref) == ("2004", REVOKED_MSG, None)
        assert (await c.pay("CRL-3", clock.now(), pay())).ret_code == "2004"  # still open
        r = await other.pay("CRL-4", clock.now(), pay("C100000002"))
        assert r.ret_code == "0000", r.ret_msg
        await c.close()
        await other.close()
    # installed under the configured name, in the installed file's encoding (PEM)
    assert pki.client_crl.read_bytes().startswith(b"-----BEGIN X509 CRL-----")


async def test_crl_import_refuses_an_older_or_foreign_crl_and_keeps_the_old_one(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    _, op01 = pki.client("C100000001", "op01")
    installed = pki.client_crl.read_bytes()
    installed_at = load_crl(pki.client_crl).last_update_utc
    older = crl_file(
        pki, tmp_path / "older.crl", [op01], last_update=installed_at - timedelta(days=1)
    )
    foreign_pki = replace(pki, dir=tmp_path / "foreign")  # a CRL of the bank CA instead
    foreign_pki.dir.mkdir()
    shutil.copy2(pki.server_ca, foreign_pki.client_ca)
    shutil.copy2(pki.server_ca_key, foreign_pki.client_ca_key)
    foreign = crl_file(
        foreign_pki, tmp_path / "foreign.crl", [op01], last_update=pki.now + timedelta(hours=1)
    )
    async with running_gateway(cfg, clock) as gw:
        c = await Erp(gw, pki).client("C100000001", "op01")
        assert await gatewayctl_keys(overlay, cfg, "import-crl", str(older)) == 1
        assert await gatewayctl_keys(overlay, cfg, "import-crl", str(foreign)) == 1
        assert pki.client_crl.read_bytes() == installed
        assert (await c.pay("OLD-1", clock.now(), pay())).ret_code == "0000"
        await c.close()


async def test_gatewayctl_revoke_bites_at_once_and_survives_a_restart(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    _, op01 = pki.client("C100000001", "op01")
    async with running_gateway(cfg, clock) as gw:
        erp = Erp(gw, pki)
        c = await erp.client("C100000001", "op01")
        assert (await c.pay("DENY-1", clock.now(), pay())).ret_code == "0000"

        rc = await gatewayctl_keys(overlay, cfg, "revoke", str(op01), "--reason", "USBKey lost")
        assert rc == 0

        r = await c.pay("DENY-2", clock.now(), pay())
        assert (r.ret_code, r.ret_msg) == (
            "2004",
            f"{REVOKED}: certificate on the gateway deny list",
        )
        # the same corporate's other operator is not affected
        op02 = await erp.client("C100000001", "op02")
        assert (await op02.pay("DENY-3", clock.now(), pay())).ret_code == "0000"
        # revoking again is idempotent: one line, still refused
        assert await gatewayctl_keys(overlay, cfg, "revoke", str(op01), "--reason", "again") == 0
        assert (await c.pay("DENY-4", clock.now(), pay())).ret_code == "2004"
        await c.close()
        await op02.close()
    fp = fingerprint(cert_of(op01))
    lines = [ln for ln in pki.deny_list.read_text().splitlines() if ln.startswith(fp)]
    assert len(lines) == 1
    assert "USBKey lost" in lines[0]

    async with running_gateway(cfg, clock) as gw:  # a restart: the deny list is on disk
        # the signature path (no client certificate in TLS) answers 2004 ...
        c = await Erp(gw, pki).client("C100000001", "op01", listener="tcp")
        assert (await c.pay("DENY-5", clock.now(), pay())).ret_code == "2004"
        await c.close()
        # ... and a TLS connection with that certificate is closed right after the
        # handshake (tests/integration/test_tls_revocation.py)
        c = await Erp(gw, pki).client("C100000001", "op01")
        with pytest.raises(ConnectionError):
            await c.pay("DENY-6", clock.now(), pay())
        await c.close()


async def test_stale_crl_fails_closed_by_default_and_open_by_policy(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki = copy_pki(dev_pki, tmp_path / "pki")
    clock = BusinessClock(FRIDAY_10)
    _, op02 = pki.client("C100000001", "op02")
    next_update = (FRIDAY_10 - timedelta(days=2)).replace(microsecond=0)
    # a CRL that lists op02 and is past its nextUpdate on the business clock; the
    # clients use the TCP listener: this is the signature path (the handshake judges
    # the CRL by the system clock: tests/integration/test_tls_revocation.py)
    rewrite_crl(
        pki,
        [cert_of(op02).serial_number],
        last_update=next_update - timedelta(days=7),
        next_update=next_update,
    )

    cfg = gateway_config(tmp_path / "closed", pki, broker.url)
    async with running_gateway(cfg, clock) as gw:
        before = sample(await scrape(gw), REVOKED_REFUSALS) or 0.0
        erp = Erp(gw, pki)
        c = await erp.client("C100000001", "op01", listener="tcp")
        r = await c.pay("STALE-1", clock.now(), pay())
        assert r.ret_code == "2004"
        assert r.ret_msg == f"{REVOKED}: revocation status unknown (stale CRL)"
        listed = await erp.client("C100000001", "op02", listener="tcp")
        r = await listed.pay("STALE-2", clock.now(), pay())
        assert (r.ret_code, r.ret_msg) == ("2004", REVOKED_MSG)
        text = await scrape(gw)
        assert sample(text, CRL_GAUGE) == next_update.timestamp()
        assert sample(text, REVOKED_REFUSALS) == before + 2
        await c.close()
        await listed.close()

    open_cfg = gateway_config(
        tmp_path / "open", pki, broker.url, {"keys": {"stale_crl_policy": "fail_open"}}
    )
    async with running_gateway(open_cfg, clock) as gw:
        erp = Erp(gw, pki)
        c = await erp.client("C100000001", "op01", listener="tcp")
        r = await c.pay("STALE-3", clock.now(), pay())
        assert r.ret_code == "0000", r.ret_msg
        # a listed serial is still refused
        listed = await erp.client("C100000001", "op02", listener="tcp")
        assert (await listed.pay("STALE-4", clock.now(), pay())).ret_code == "2004"
        assert sample(await scrape(gw), CRL_GAUGE) == next_update.timestamp()
        await c.close()
        await listed.close()


async def test_world_readable_private_key_refuses_start(tmp_path: Path, dev_pki: DevPki) -> None:
    pki = copy_pki(dev_pki, tmp_path / "pki")
    pki.response_key.chmod(0o644)
    cfg = gateway_config(tmp_path / "gw", pki, "mqtt://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"gateway-response\.key.*0644"):
        async with running_gateway(cfg):
            pass
    pki.response_key.chmod(0o600)  # and a group-readable TLS key the same
    pki.server_key.chmod(0o640)
    with pytest.raises(ConfigError, match=r"server\.key"):
        async with running_gateway(cfg):
            pass


async def test_production_refuses_an_unencrypted_key(tmp_path: Path, dev_pki: DevPki) -> None:
    pki = copy_pki(dev_pki, tmp_path / "pki")
    cfg = gateway_config(
        tmp_path / "gw",
        pki,
        "mqtt://127.0.0.1:9",
        {"environment": "production", "keys": {"dev_pki": False}},
    )
    with pytest.raises(ConfigError, match=r"gateway-(response|clearing)\.key|server\.key") as info:
        async with running_gateway(cfg):
            pass
    assert "encrypt" in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)  # names the file, never the key
