"""Issue 4, rotation without a restart, against the real daemon over real TLS.

``gatewayctl keys rotate`` adds a version to the key ring with an activation a
few seconds ahead on the daemon's business clock (keys/README.md "The key
ring"): responses are signed by the old key before it and by the new one from
it, on a connection that never drops; new TLS handshakes get the new server
certificate while open connections continue; a broken new key pair is refused
by the reload and handshakes go on; the clearing systems' certificate rotates
with an overlap in which both keys are accepted (clearing.md §3).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs

from gateway.clock import BusinessClock, FrozenClock
from gateway.keys.devpki import DevPki
from gateway.keys.files import write_private_key
from gateway.ops.admin import call
from gateway.sim.erp import ErpClient
from gateway.testing import Broker
from tests.integration.harness import (
    Erp,
    recent_friday_10,
    running_gateway,
    wait_for_state,
)
from tests.integration.keys_support import (
    cert_of,
    clearing_sim,
    ctl_setup,
    der,
    eventually,
    fresh_client_pays,
    gatewayctl_keys,
    newest,
    overlap_days,
    pay,
    pem,
    renewed_for_400_days,
    sample,
    scrape,
    server_cert_der,
    sleep_until,
    verifies_with,
)

FRIDAY_10 = recent_friday_10()
#: Activation lead on the business clock: room for gatewayctl (key generation,
#: the daemon's reload) and one request before the new version takes over.
LEAD = timedelta(seconds=3)
#: Intra-bank (routing.md §3): sent at once; BEPS would wait for max_wait on the frozen clock.
INTRA = "103290000018"
EXPIRY = "gateway_certificate_expiry_timestamp_seconds"
DROPPED_SIGNATURE = 'gateway_inbound_dropped_total{reason="signature"}'


async def test_response_key_rotation_while_a_client_stays_connected(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    old = cert_of(pki.response_cert)
    async with running_gateway(cfg, clock) as gw:
        c = await Erp(gw, pki).client()  # pins the old response certificate
        assert (await c.pay("ROT-0", clock.now(), pay())).ret_code == "0000"

        activate = (clock.now() + LEAD).replace(microsecond=0)
        args = ["rotate", "response", "--activate", activate.isoformat(), "--overlap-days", "1"]
        assert await gatewayctl_keys(overlay, cfg, *args) == 0
        version = newest(pki, "response")
        new = version.cert
        assert new != old
        c.gateway_certs = (old, new)  # the ERP learns the published new certificate

        before = await c.pay("ROT-1", clock.now(), pay())
        assert clock.now() < activate, "too slow: the reply came after the activation"
        assert before.ret_code == "0000"
        assert verifies_with(before.raw, old)
        assert not verifies_with(before.raw, new)

        await sleep_until(clock.now, activate)
        after = await c.pay("ROT-2", clock.now(), pay())
        status = await c.status("ROT-Q", clock.now(), "ROT-0")
        for r in (after, status):
            assert r.ret_code == "0000"
            assert verifies_with(r.raw, new)
            assert not verifies_with(r.raw, old)
        # refusals are signed by the new key too (every response is signed, corplink.md §8)
        dup = await c.pay("ROT-2", clock.now(), pay(amount="11.00"))
        assert dup.ret_code != "0000"
        assert verifies_with(dup.raw, new)
        assert status.state is not None  # the connection opened before the rotation still works
        gauge = f'{EXPIRY}{{kind="response",name="{version.cert_path.name}"}}'
        assert sample(await scrape(gw), gauge) == new.not_valid_after_utc.timestamp()
        await c.close()


async def test_tls_certificate_swap_with_a_live_connection(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """At the activation, with no reload, new handshakes get the new certificate; the
    connection opened before keeps working."""
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    old_der = der(cert_of(pki.server_cert))
    async with running_gateway(cfg, clock) as gw:
        live = await Erp(gw, pki).client()
        assert await server_cert_der(gw, pki) == old_der

        activate = (clock.now() + LEAD).replace(microsecond=0)
        args = ["rotate", "tls", "--activate", activate.isoformat(), "--overlap-days", "1"]
        assert await gatewayctl_keys(overlay, cfg, *args) == 0
        new_der = der(newest(pki, "tls").cert)
        assert await server_cert_der(gw, pki) == old_der  # not before its activation

        await sleep_until(clock.now, activate)

        async def swapped() -> bool:
            return await server_cert_der(gw, pki) == new_der

        # the daemon's key schedule swaps at the activation (woken by the reload
        # gatewayctl asked for); a short poll absorbs the event loop's scheduling
        assert await eventually(swapped, timeout=3.0)
        # the live connection, opened on the old certificate, keeps working
        assert (await live.pay("TLS-1", clock.now(), pay())).ret_code == "0000"
        fresh = await Erp(gw, pki).client("C100000002", "op01")  # a full mutual-TLS client
        assert (await fresh.pay("TLS-2", clock.now(), pay("C100000002"))).ret_code == "0000"
        # a reload after the activation keeps the new certificate
        assert (await call(cfg.admin_socket, {"op": "reload"}))["ok"] is True
        assert await server_cert_der(gw, pki) == new_der
        assert (await live.pay("TLS-3", clock.now(), pay())).ret_code == "0000"
        await fresh.close()
        await live.close()


async def test_a_bad_new_tls_key_pair_leaves_handshakes_working(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = BusinessClock(FRIDAY_10)
    old_der = der(cert_of(pki.server_cert))
    ring_before = pki.ring.read_text()
    # a new TLS version, active at once, whose key is not its certificate's
    _, cert = renewed_for_400_days(pki, cert_of(pki.server_cert))
    (pki.dir / "server-bad.pem").write_bytes(pem(cert))
    write_private_key(ec.generate_private_key(ec.SECP256R1()), pki.dir / "server-bad.key", None)
    async with running_gateway(cfg, clock) as gw:
        live = await Erp(gw, pki).client()
        activate = (clock.now() - timedelta(minutes=1)).replace(microsecond=0)
        pki.ring.write_text(
            ring_before + f'\n[[tls]]\nkey = "server-bad.key"\ncert = "server-bad.pem"\n'
            f"activate = {activate.isoformat()}\n"
        )
        answer = await call(cfg.admin_socket, {"op": "reload"})
        assert answer["ok"] is False
        assert "server-bad" in answer["reason"]
        assert "BEGIN" not in answer["reason"]  # names the file, never key material
        assert await server_cert_der(gw, pki) == old_der
        assert (await live.pay("BAD-1", clock.now(), pay())).ret_code == "0000"

        # the same with a key file that is not a key at all
        (pki.dir / "server-bad.key").write_bytes(b"not a key\n")
        answer = await call(cfg.admin_socket, {"op": "reload"})
        assert answer["ok"] is False
        assert await server_cert_der(gw, pki) == old_der
        assert await fresh_client_pays(gw, pki, "BAD-2", clock.now()) == "0000"
        assert (await live.pay("BAD-3", clock.now(), pay())).ret_code == "0000"

        # a rotation accepted by the reload whose key file breaks before its
        # activation: the swap at the activation fails and the old certificate stays
        pki.ring.write_text(ring_before)
        assert (await call(cfg.admin_socket, {"op": "reload"}))["ok"] is True
        activate = (clock.now() + LEAD).replace(microsecond=0)
        assert (
            await gatewayctl_keys(overlay, cfg, "rotate", "tls", "--activate", activate.isoformat())
            == 0
        )
        key_path = newest(pki, "tls").key_path
        assert key_path is not None
        key_path.write_bytes(b"not a key\n")
        with capture_logs() as logs:
            await sleep_until(clock.now, activate)

            async def swap_failed() -> bool:
                return any(e["event"] == "tls_swap_failed" for e in logs)

            assert await eventually(swap_failed, timeout=3.0)
        assert await server_cert_der(gw, pki) == old_der
        assert (await live.pay("BAD-4", clock.now(), pay())).ret_code == "0000"
        assert await fresh_client_pays(gw, pki, "BAD-5", clock.now()) == "0000"
        await live.close()


async def test_clearing_side_rotation_accepts_both_keys_during_the_overlap_only(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """A frozen clock: the overlap's end is reached by setting it, not by waiting."""
    pki, cfg, overlay = ctl_setup(tmp_path, dev_pki, broker.url)
    clock = FrozenClock(FRIDAY_10)
    old_key, old_cert = pki.clearing_system_key, pki.clearing_system_cert
    # the clearing system's new self-signed certificate and key (kept on its side)
    new_key, new_cert = tmp_path / "cs-new.key", tmp_path / "cs-new.pem"
    key, cert = renewed_for_400_days(pki, cert_of(old_cert))
    write_private_key(key, new_key, None)
    new_cert.write_bytes(pem(cert))
    record = tmp_path / "rec.jsonl"

    async def settles(erp: ErpClient, msg_id: str, key_cert: tuple[Path, Path]) -> None:
        """A PAY reaches SETTLED with the clearing system signing with ``key_cert``."""
        async with clearing_sim(pki, broker.url, *key_cert, record):
            assert (await erp.pay(msg_id, clock.now(), pay(code=INTRA))).ret_code == "0000"
            assert await wait_for_state(erp, clock.now(), msg_id, ["SETTLED"]) == "SETTLED"

    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, pki).client()
        await settles(erp, "CS-0", (old_key, old_cert))

        activate = clock.now() + timedelta(minutes=1)
        overlap = timedelta(hours=1)
        args = ["rotate", "clearing_peer", "--cert", str(new_cert)]
        args += ["--activate", activate.isoformat(), "--overlap-days", overlap_days(overlap)]
        assert await gatewayctl_keys(overlay, cfg, *args) == 0

        clock.set(activate + timedelta(minutes=1))  # inside the overlap: both keys verify
        await settles(erp, "CS-1", (new_key, new_cert))
        await settles(erp, "CS-2", (old_key, old_cert))

        clock.set(activate + overlap + timedelta(seconds=1))  # the overlap is over
        dropped = sample(await scrape(gw), DROPPED_SIGNATURE) or 0.0
        async with clearing_sim(pki, broker.url, old_key, old_cert, record):
            assert (await erp.pay("CS-3", clock.now(), pay(code=INTRA))).ret_code == "0000"

            async def both_dropped() -> bool:  # its ccms.990 and its ccms.900
                return (sample(await scrape(gw), DROPPED_SIGNATURE) or 0.0) >= dropped + 2

            assert await eventually(both_dropped)
            st = await erp.status("CS-Q3", clock.now(), "CS-3")
            assert st.state == "SENT"  # nothing signed by the old key was acted on
        # the new key settles it: re-sent under its MsgId once the receipt is overdue
        async with clearing_sim(pki, broker.url, new_key, new_cert, record):
            clock.set(clock.now() + timedelta(seconds=cfg.clearing.receipt_timeout + 1))
            assert await wait_for_state(erp, clock.now(), "CS-3", ["SETTLED"]) == "SETTLED"
        await erp.close()
