"""MQTT client cost: CPU per QoS 1 message of the project's client against gmqtt.

A profile of the gateway's core process showed paho (under aiomqtt) taking
about a third of its event loop.  Before swapping the client this measures,
in one invocation and against one local mosquitto:

- publish: ``--count`` QoS 1 publishes of a ~3 KB payload with two MQTT 5
  user properties, at most ``--window`` unacknowledged at once, every PUBACK
  awaited: CPU µs per message of the publishing process and messages/s;
- receive: the same messages queued beforehand in the measured client's
  persistent session (published by another connection while it was away),
  then delivered on connect; CPU µs per message of the receiving process
  until all arrived, each message's user properties read and its PUBACK sent.

Each measurement runs in a child process of its own (this script again,
``--child``), so one client's imports, buffers and garbage do not weigh on
another's figures.  Clients: ``paho`` is :class:`PubackClient` used the way
the clearing link uses it (``publish_qos1`` with a paho ``Properties``;
``client.messages`` with manual acknowledgement after the message is read);
``gmqtt`` (only if importable: ``pip install gmqtt``) in two inbound modes,
PUBACK sent before the callback (its default) and after an async callback
returns (what the link needs: acknowledge once handled); and ``raw``, a bare
asyncio protocol (:mod:`mqtt_raw`) that only encodes, parses and matches
PUBACKs, as the floor any client could approach.

    python bench/bench_mqtt_clients.py [--count 20000] [--window 100] [--rounds 3]

A script to run on purpose: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt
from mqtt_raw import RawClient  # beside this script
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clearing.mqtt_client import PubackClient
from gateway.testing import start_broker

PAYLOAD = bytes(range(256)) * 12  # 3,072 bytes
TOPIC = "mqttbench/in"
SESSION_EXPIRY = 3600
RECEIVE_MAXIMUM = 100  # the link's default
CLIENTS = ("paho", "gmqtt", "gmqtt-ack-after", "raw")


def _gmqtt_available() -> bool:
    try:
        import gmqtt  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def _user_props(i: int) -> list[tuple[str, str]]:
    return [("MsgTp", "beps.121.001.01"), ("MsgId", f"B{i:016d}")]


def _paho_props(packet_type: int) -> Properties:
    props: Properties = Properties(packet_type)  # type: ignore[no-untyped-call]
    return props


# -- the project's client ------------------------------------------------------


def _paho_client(port: int, client_id: str, clean: bool) -> PubackClient:
    props = _paho_props(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return PubackClient(
        "127.0.0.1",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=clean,
        properties=props,
        max_inflight_messages=1000,
        max_queued_outgoing_messages=10_000,
    )


async def _paho_publish(port: int, count: int, window: int, client_id: str) -> float:
    """Publish ``count`` messages as the link does; returns the CPU seconds spent."""
    sem = asyncio.Semaphore(window)
    async with _paho_client(port, client_id, clean=True) as client:

        async def one(i: int) -> None:
            async with sem:
                props = _paho_props(PacketTypes.PUBLISH)
                props.UserProperty = _user_props(i)
                code = await client.publish_qos1(TOPIC, PAYLOAD, props, 30.0)
                if code is not None and code.value >= 0x80:
                    raise RuntimeError(f"PUBACK {code}")

        started = time.process_time()
        await asyncio.gather(*(one(i) for i in range(count)))
        return time.process_time() - started


async def _paho_subscribe(port: int, client_id: str) -> None:
    """Leave a persistent session subscribed to TOPIC (messages queue while away)."""
    async with _paho_client(port, client_id, clean=True) as client:
        await client.subscribe(TOPIC, qos=1)


async def _paho_receive(port: int, count: int, client_id: str) -> float:
    """Drain ``count`` queued messages as the link does; returns the CPU seconds spent."""
    started = time.process_time()
    client = _paho_client(port, client_id, clean=False)
    client._client.manual_ack_set(True)
    seen = 0
    async with client:
        async for message in client.messages:
            props = message.properties
            user = dict(getattr(props, "UserProperty", None) or ())
            if "MsgId" not in user:
                raise RuntimeError("user properties missing")
            client._client.ack(message.mid, message.qos)
            seen += 1
            if seen == count:
                break
    return time.process_time() - started


async def _leftover(port: int, client_id: str) -> int:
    """Messages the broker still holds for ``client_id`` (unacknowledged ones come back)."""
    client = _paho_client(port, client_id, clean=False)
    n = 0
    async with client:
        try:
            async with asyncio.timeout(1.0):
                async for _ in client.messages:
                    n += 1
        except TimeoutError:
            pass
    # end the session so the broker forgets it
    async with _paho_client(port, client_id, clean=True):
        pass
    return n


# -- gmqtt -----------------------------------------------------------------------


def _gmqtt_client_class() -> Any:
    import gmqtt  # type: ignore[import-untyped,import-not-found,unused-ignore]

    class AckedClient(gmqtt.Client):  # type: ignore[misc]
        """gmqtt's client plus a future per publish, resolved on its PUBACK.

        gmqtt's ``publish`` returns nothing and it reports a PUBACK only by
        dropping the stored packet; it does not read the PUBACK's reason code.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.acks: dict[int, asyncio.Future[None]] = {}

        def _remove_message_from_queue(self, mid: int) -> None:
            super()._remove_message_from_queue(mid)
            fut = self.acks.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

        async def publish_qos1(self, topic: str, payload: bytes, props: Any) -> None:
            message = gmqtt.Message(topic, payload, qos=1, user_property=props)
            mid, package = self._connection.publish(message)
            self._persistent_storage.push_message(mid, package)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.acks[mid] = fut
            await fut

    return AckedClient


def _gmqtt_new(client_id: str, clean: bool, *, ack_after: bool = False) -> Any:
    cls = _gmqtt_client_class()
    return cls(
        client_id,
        clean_session=clean,
        optimistic_acknowledgement=not ack_after,
        session_expiry_interval=SESSION_EXPIRY,
        receive_maximum=RECEIVE_MAXIMUM,
    )


async def _gmqtt_publish(port: int, count: int, window: int, client_id: str) -> float:
    client = _gmqtt_new(client_id, clean=True)
    await client.connect("127.0.0.1", port)
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with sem:
            await client.publish_qos1(TOPIC, PAYLOAD, _user_props(i))

    started = time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    used = time.process_time() - started
    await client.disconnect()
    return used


async def _gmqtt_receive(port: int, count: int, client_id: str, ack_after: bool) -> float:
    """Drain ``count`` queued messages; PUBACK before or after the callback."""
    done = asyncio.Event()
    seen = 0

    def read(properties: dict[str, Any]) -> None:
        nonlocal seen
        user = dict(properties.get("user_property", ()))
        if "MsgId" not in user:
            raise RuntimeError("user properties missing")
        seen += 1
        if seen == count:
            done.set()

    def on_message(_client: Any, _topic: str, _payload: bytes, _qos: int, props: Any) -> None:
        read(props)

    async def on_message_async(
        _client: Any, _topic: str, _payload: bytes, _qos: int, props: Any
    ) -> int:
        read(props)
        return 0  # the PUBACK reason code gmqtt sends once this returns

    started = time.process_time()
    client = _gmqtt_new(client_id, clean=False, ack_after=ack_after)
    client.on_message = on_message_async if ack_after else on_message
    await client.connect("127.0.0.1", port)
    await done.wait()
    await asyncio.sleep(0)  # let the last callback's PUBACK be written
    await client.disconnect()
    return time.process_time() - started


# -- the floor: a bare protocol -------------------------------------------------------


async def _raw_publish(port: int, count: int, window: int, client_id: str) -> float:
    client = await RawClient.connect(
        port, client_id, clean=True, session_expiry=0, receive_max=RECEIVE_MAXIMUM
    )
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with sem:
            code = await client.publish_qos1(TOPIC, PAYLOAD, _user_props(i))
            if code >= 0x80:
                raise RuntimeError(f"PUBACK 0x{code:02x}")

    started = time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    used = time.process_time() - started
    client.disconnect()
    return used


async def _raw_receive(port: int, count: int, client_id: str) -> float:
    done = asyncio.Event()
    seen = 0

    def on_message(_topic: bytes, _payload: bytes, props: list[tuple[str, str]]) -> None:
        nonlocal seen
        if "MsgId" not in dict(props):
            raise RuntimeError("user properties missing")
        seen += 1
        if seen == count:
            done.set()

    started = time.process_time()
    client = await RawClient.connect(
        port,
        client_id,
        clean=False,
        session_expiry=SESSION_EXPIRY,
        receive_max=RECEIVE_MAXIMUM,
        on_message=on_message,
    )
    await done.wait()
    client.disconnect()
    await asyncio.sleep(0)
    return time.process_time() - started


# -- one measurement per child process ------------------------------------------------


async def _child(args: argparse.Namespace) -> dict[str, float]:
    port, count, client_id = args.port, args.count, f"bench-{args.client}-{args.child}"
    if args.child == "publish":
        t0 = time.perf_counter()
        if args.client == "paho":
            cpu = await _paho_publish(port, count, args.window, client_id)
        elif args.client == "raw":
            cpu = await _raw_publish(port, count, args.window, client_id)
        else:
            cpu = await _gmqtt_publish(port, count, args.window, client_id)
        return {"cpu": cpu, "wall": time.perf_counter() - t0}
    # receive: subscribe a persistent session, fill it from another connection, drain it
    await _paho_subscribe(port, client_id)
    await _paho_publish_to_session(port, count, args.window)
    if args.client == "paho":
        cpu = await _paho_receive(port, count, client_id)
    elif args.client == "raw":
        cpu = await _raw_receive(port, count, client_id)
    else:
        cpu = await _gmqtt_receive(port, count, client_id, args.client == "gmqtt-ack-after")
    return {"cpu": cpu, "left": await _leftover(port, client_id)}


async def _paho_publish_to_session(port: int, count: int, window: int) -> None:
    """Queue ``count`` messages on TOPIC; the broker's PUBACK means it holds them."""
    await _paho_publish(port, count, window, "bench-filler")


def _run_child(client: str, phase: str, port: int, count: int, window: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", phase, "--client", client, "--port", str(port),
         "--count", str(count), "--window", str(window)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _fmt_ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per measurement")
    parser.add_argument("--window", type=int, default=100, help="publishes unacknowledged at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--child", choices=("publish", "receive"), help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args))))
        return 0

    clients = ["paho"]
    if _gmqtt_available():
        clients += ["gmqtt", "gmqtt-ack-after"]
    else:
        print("gmqtt not installed: pip install gmqtt to compare")
    clients.append("raw")
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp) / "broker")
        try:
            samples: dict[str, dict[str, list[float]]] = {
                c: {"pub_cpu": [], "pub_rate": [], "recv_cpu": []} for c in clients
            }
            for r in range(args.rounds):
                for c in clients:  # interleaved, so a noisy moment hits every client
                    if c != "gmqtt-ack-after":  # publishing is the same in both gmqtt modes
                        pub = _run_child(c, "publish", broker.port, args.count, args.window)
                        samples[c]["pub_cpu"].append(pub["cpu"] / args.count * 1e6)
                        samples[c]["pub_rate"].append(args.count / pub["wall"])
                    rec = _run_child(c, "receive", broker.port, args.count, args.window)
                    if rec["left"]:
                        print(f"warning: {c} left {rec['left']:.0f} messages unacknowledged")
                    samples[c]["recv_cpu"].append(rec["cpu"] / args.count * 1e6)
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
            for c, s in samples.items():
                rows[c] = {k: statistics.median(v) if v else 0.0 for k, v in s.items()}
        finally:
            broker.stop()

    base = rows["paho"]
    print(
        f"\n{args.count} QoS 1 messages of {len(PAYLOAD)} B + 2 user properties, "
        f"window {args.window}; median of {args.rounds} rounds\n"
    )
    print(
        "| client | publish µs/msg CPU | publish msgs/s | receive µs/msg CPU "
        "| publish CPU vs paho | receive CPU vs paho |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for c, row in rows.items():
        pub_cpu = f"{row['pub_cpu']:.0f}" if row["pub_cpu"] else "(as gmqtt)"
        pub_rate = f"{row['pub_rate']:,.0f}" if row["pub_rate"] else "(as gmqtt)"
        pub_ratio = _fmt_ratio(row["pub_cpu"], base["pub_cpu"]) if row["pub_cpu"] else "-"
        print(
            f"| {c} | {pub_cpu} | {pub_rate} | {row['recv_cpu']:.0f} | {pub_ratio} "
            f"| {_fmt_ratio(row['recv_cpu'], base['recv_cpu'])} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
