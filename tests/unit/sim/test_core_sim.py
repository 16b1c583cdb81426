"""The core banking simulator (clearing.md §5): accounts file, CLI, and what it answers.

Answers are read by the gateway's own ``CoreLink`` against a real mosquitto;
requests it must refuse are published by a plain MQTT 5 client.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.core import CoreConfig, CoreLink, CoreTimeout, build_bal_qry
from gateway.cli.sim import main as sim_main
from gateway.errors import ConfigError
from gateway.keys.devpki import DEMO_CORPORATES
from gateway.sim.core import (
    CoreAccount,
    CoreSimConfig,
    CoreSimulator,
    core_sim_config,
    demo_accounts,
    load_accounts,
    run_core_sim,
)
from gateway.testing import Broker, running_simulator
from tests.unit.clearing_link.helpers import eventually, running_core_link

WAIT = 10.0

ACCOUNTS_TOML = """
[accounts."6222000000000001"]
name = "Demo Trading Co."
balance = "1000.00"
available = "900.00"

[accounts."6222000000000005"]
name = "美元户"
balance = "-12.34"
available = "0.00"
ccy = "USD"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text, encoding="utf-8")
    return path


def link_to(url: str, timeout: float = 3.0) -> contextlib.AbstractAsyncContextManager[CoreLink]:
    config = CoreConfig(broker_url=url, client_id="gw-test", node="t", timeout=timeout)
    return running_core_link(config, WAIT)


def sim_running(config: CoreSimConfig) -> contextlib.AbstractAsyncContextManager[CoreSimulator]:
    return running_simulator(CoreSimulator(config), timeout=WAIT)


# ------------------------------------------------------------------------- accounts


def test_demo_accounts_cover_every_enrolled_demo_account() -> None:
    accounts = demo_accounts()
    for corp in DEMO_CORPORATES:
        for acct in corp.accounts:
            assert accounts[acct].name == corp.name
            assert accounts[acct].ccy == "CNY"
    assert any(a.balance < 0 for a in accounts.values())  # one overdraft to show


def test_accounts_file_is_read_exactly(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, ACCOUNTS_TOML))
    assert accounts == {
        "6222000000000001": CoreAccount("Demo Trading Co.", Decimal("1000.00"), Decimal("900.00")),
        "6222000000000005": CoreAccount("美元户", Decimal("-12.34"), Decimal("0.00"), "USD"),
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[accounts."1"]\nname="a"\nbalance="1.00"\navailable="1.00"\nlimit="1"\n', "'limit'"),
        ('[accounts."1"]\nname="a"\nbalance="1.00"\n', "'available'"),
        ('[accounts."1"]\nname="a"\nbalance=1.0\navailable="1.00"\n', "balance"),
        ('[accounts."1"]\nname="a"\nbalance="1.5"\navailable="1.00"\n', "balance"),
        ('[accounts."1"]\nname="a"\nbalance="1.00"\navailable="1.005"\n', "available"),
        ('[accounts."1-2"]\nname="a"\nbalance="1.00"\navailable="1.00"\n', "account number"),
        ('[accounts."1"]\nname=" "\nbalance="1.00"\navailable="1.00"\n', "name"),
        ('[accounts."1"]\nname="a"\nbalance="1.00"\navailable="1.00"\nccy="cny"\n', "ccy"),
        ('[acounts."1"]\nname="a"\n', "'acounts'"),
        ("accounts = [", "not valid TOML"),
    ],
)
def test_accounts_file_errors_name_the_key_and_file(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as caught:
        load_accounts(path)
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------------------- CLI


def test_cli_options_become_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, ACCOUNTS_TOML)
    cfg = core_sim_config(
        [
            "--broker", "mqtt://127.0.0.1:1884",
            "--accounts", str(path),
            "--delay", "0.25",
            "--silent", "6222000000000001",
            "--silent", "6222000000000002",
            "--request-topic", "bank/core/req",
        ]
    )  # fmt: skip
    assert cfg.broker_url == "mqtt://127.0.0.1:1884"
    assert set(cfg.accounts) == {"6222000000000001", "6222000000000005"}
    assert cfg.delay == 0.25
    assert cfg.silent_accounts == frozenset({"6222000000000001", "6222000000000002"})
    assert cfg.request_topic == "bank/core/req"


def test_cli_defaults_to_the_demo_accounts() -> None:
    cfg = core_sim_config([])
    assert cfg.accounts == demo_accounts()
    assert (cfg.delay, cfg.silent_accounts, cfg.request_topic) == (0.0, frozenset(), "core/req")


@pytest.mark.parametrize(
    "argv",
    [["--broker", "http://127.0.0.1:1"], ["--delay", "-1"], ["--accounts", "missing.toml"]],
)
def test_cli_refuses_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_core_sim(argv) == 2
    assert capsys.readouterr().err.startswith("gateway-sim core: ")


def test_gateway_sim_dispatches_core(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["core", "--accounts", "missing.toml"]) == 2
    assert "missing.toml" in capsys.readouterr().err


async def test_cli_process_answers_then_stops_on_sigterm(broker: Broker, tmp_path: Path) -> None:
    path = write(tmp_path, ACCOUNTS_TOML)
    log = (tmp_path / "sim.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gateway.cli.sim", "core",
            "--broker", broker.url, "--accounts", str(path), "--silent", "6222000000000005",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with link_to(broker.url, timeout=1.0) as link:
            # the process subscribes on its own schedule: ask until it answers
            async with asyncio.timeout(WAIT * 2):
                while True:
                    with contextlib.suppress(CoreTimeout):
                        answer = await link.balance("6222000000000001")
                        break
            assert (answer.result, answer.balance) == ("OK", Decimal("1000.00"))
            with pytest.raises(CoreTimeout):
                await link.balance("6222000000000005")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


# -------------------------------------------------------------------------- requests


async def test_unreadable_requests_are_counted_not_answered(broker: Broker) -> None:
    config = CoreSimConfig(broker.url, demo_accounts())
    async with sim_running(config) as sim:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = "core/rsp/t"
        props.CorrelationData = b"c1"
        no_reply_to = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        no_reply_to.CorrelationData = b"c2"
        async with aiomqtt.Client(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe("core/rsp/t", qos=1)
            await client.publish("core/req", b"<x/>", qos=1, properties=props)
            await client.publish(
                "core/req", b"<BalQry xmlns='urn:core:1'/>", qos=1, properties=props
            )
            await client.publish(
                "core/req", build_bal_qry("6222000000000001"), qos=1, properties=no_reply_to
            )
            await eventually(lambda: sim.stats["malformed"] == 3)
            # a good request after them is answered, with its own correlation data
            await client.publish(
                "core/req", build_bal_qry("6222000000000001"), qos=1, properties=props
            )
            async with asyncio.timeout(WAIT):
                message = await anext(aiter(client.messages))
            await eventually(lambda: sim.stats["answered"] == 1)  # counted on its PUBACK
    assert message.properties.CorrelationData == b"c1"
    assert b"<Result>OK</Result>" in bytes(message.payload)  # type: ignore[arg-type]
    assert sim.stats == {
        "requests": 4,
        "answered": 1,
        "silent": 0,
        "malformed": 3,
        "unanswered": 0,
    }


async def test_delay_holds_each_answer(broker: Broker) -> None:
    config = CoreSimConfig(broker.url, demo_accounts(), delay=0.3)
    async with sim_running(config) as sim, link_to(broker.url) as link:
        started = asyncio.get_running_loop().time()
        answer = await link.balance("6222000000000201")
        elapsed = asyncio.get_running_loop().time() - started
        await eventually(lambda: sim.stats["answered"] == 1)  # counted on its PUBACK
    assert answer.balance == Decimal("-1250.00")
    assert elapsed >= 0.3
