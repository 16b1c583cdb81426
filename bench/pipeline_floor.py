"""The FLOOR of bench_pipeline.py: every step one payment needs in gatewayd, in this one process.

The acceptance steps (``Desk.inspect``; router + ``SqliteStore.accept``, 64
concurrent, group commit; ``Desk.render``) and the clearing steps per item
for the engine mix: ``Desk.seal`` of the outbound message (one per INTRA or
HVPS item, a BEPS package's share per BEPS item), then the verify and apply
of its ``ccms.990`` (``Desk.open_inbound`` + ``apply_receipt``) and its
``ccms.900`` (``Desk.open_inbound`` + ``apply_tx_status``), 64 concurrent.
The clearing steps run on the journal the accept step filled, so each item
is routed by the real router and packaged as the BEPS engine would; the
clearing system's answers are built and signed beforehand (the clearing
system's work, not ours).  Every figure is CPU µs per payment (all threads:
the journal writer's commits included), median over rounds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.clearing.documents import (
    MSG_TP_RECEIPT,
    MSG_TP_STATUS,
    PACS003_NAME,
    PACS008_NAME,
    TxResult,
    build_envelope,
    build_pacs002,
    build_receipt,
    out_msg_id,
    serialize,
)
from gateway.clock import BusinessClock
from gateway.config import load_config
from gateway.desk import Desk, Inspection
from gateway.engines.runner import msg_tp_for
from gateway.journal.records import NewItem, NewOutbound, NewRequest, QueuedItem
from gateway.journal.sqlite import SqliteStore
from gateway.keys.devpki import DevPki
from gateway.keys.xmldsig import SigningKey, load_signing_key, sign_enveloped
from gateway.model import (
    BizType,
    Engine,
    Request,
    Response,
    Route,
    State,
    StatusView,
    Transfer,
    Transition,
)
from gateway.net.admission import Admission
from gateway.net.session import ConnInfo
from gateway.pipeline import Pipeline, PipelineSettings
from gateway.server import build_router, desk_setup
from gateway.workers import WorkerPool

HZ = os.sysconf("SC_CLK_TCK")
INSPECT = "inspect: parse, XSD, verify, credentials, decode"
ACCEPT = "route + journal accept ({conc} concurrent, group commit)"
RENDER = "render + sign response"
ACCEPTANCE = "acceptance steps (sum)"
SEAL = "seal: build + sign outbound (BEPS: package share)"
RECEIPT = "ccms.990: verify + apply_receipt"
STATUS = "ccms.900: verify + apply_tx_status"
CLEARING = "clearing steps (sum, per payment)"
FLOOR = "FLOOR: acceptance + clearing"
OUTBOX = "(info) journal outbound: create + mark_sent"
INLINE = "(info) Pipeline.handle inline, no sockets"
COLD_GAP_S = 0.012
COLD = f"(info) inspect, one every {COLD_GAP_S * 1000:.0f} ms (cold caches)"
COLD_N = 150
Triple = tuple[float, float, float]  # CPU, wall, main-thread CPU: µs per payment


def _thread_ticks() -> int:
    """This thread's CPU ticks (the main thread's share of a step)."""
    data = Path(f"/proc/self/task/{os.getpid()}/stat").read_text()
    f = data[data.rfind(")") + 2 :].split()
    return int(f[11]) + int(f[12])


class _Meter:
    """Accumulates CPU, wall and main-thread CPU over several timed sections."""

    def __init__(self) -> None:
        self.cpu = self.wall = self.main = 0.0

    def __enter__(self) -> _Meter:
        self._c, self._w, self._m = time.process_time(), time.perf_counter(), _thread_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._c
        self.wall += time.perf_counter() - self._w
        self.main += (_thread_ticks() - self._m) / HZ

    def per(self, n: int) -> Triple:
        return self.cpu / n * 1e6, self.wall / n * 1e6, self.main / n * 1e6


def timed(fn: Callable[[], object], n: int, rounds: int) -> Triple:
    """Median over ``rounds`` of µs per message: CPU (all threads), wall, main thread's CPU."""
    out: list[Triple] = []
    for _ in range(rounds):
        with (m := _Meter()):
            fn()
        out.append(m.per(n))
    return _median(out)


def _spaced(fn: Callable[[Any], object], items: Sequence[Any], gap: float) -> Triple:
    """µs per call with ``gap`` seconds of sleep before each: what a step costs when the
    process wakes for one message at a time (a light load), caches gone cold meanwhile."""
    cpu = wall = 0.0
    for x in items:
        time.sleep(gap)
        c, w = time.thread_time(), time.perf_counter()
        fn(x)
        cpu, wall = cpu + time.thread_time() - c, wall + time.perf_counter() - w
    n = max(1, len(items))
    return cpu / n * 1e6, wall / n * 1e6, cpu / n * 1e6


def _median(xs: Sequence[Triple]) -> Triple:
    return (
        statistics.median(x[0] for x in xs),
        statistics.median(x[1] for x in xs),
        statistics.median(x[2] for x in xs),
    )


def new_request(r: Request, route: Route, now: datetime) -> NewRequest:
    """What ``Pipeline._pay`` journals for a one-item PAY."""
    b = r.body
    assert isinstance(b, Transfer)
    item = NewItem(
        *(None, b.payer_acct, b.payer_name, b.payee_acct, b.payee_name, b.payee_bank_code),
        *(b.amount, b.ccy, b.priority, b.biz_type, b.purpose, State.QUEUED),
        *(route.engine, route.receiver, route.work_date),
    )
    return NewRequest(r.head.corp_id, r.head.msg_id, r.head.oper_id, "PAY", r.digest, now, (item,))


@dataclass(frozen=True)
class FloorSpec:
    tmp: Path
    pki: DevPki
    bodies: list[bytes]
    rounds: int
    conc: int
    start: datetime
    admission: dict[str, float]
    beps_package: int


async def _gather_limited(conc: int, items: Sequence[Any], call: Callable[[Any], Any]) -> None:
    todo = iter(items)

    async def caller() -> None:
        for x in todo:
            await call(x)

    await asyncio.gather(*(caller() for _ in range(conc)))


def floor(spec: FloorSpec) -> dict[str, Triple]:
    """Every step, each a ``timed`` triple per payment; the sums and the FLOOR too."""
    keys = {"dev_pki": False, "dir": str(spec.pki.dir)}
    over = {"environment": "test", "state_dir": str(spec.tmp), "keys": keys}
    cfg = load_config(None, over | {"admission": spec.admission})
    desk, router = Desk(desk_setup(cfg)), build_router(cfg)
    now, bodies, conc = spec.start + timedelta(seconds=1), spec.bodies, spec.conc
    ins: list[Inspection] = []
    out: dict[str, Triple] = {}
    out[INSPECT] = timed(
        lambda: ins.extend(desk.inspect(b, "127.0.0.1", now) for b in bodies),
        len(bodies),
        spec.rounds,
    )
    reqs = [i.request for i in ins[: len(bodies)] if i.request is not None]
    assert len(reqs) == len(bodies), "every floor request must pass inspect"
    done: list[tuple[Request, Route, str]] = []
    stores = iter(range(10_000))

    def concurrently(call: Callable[[SqliteStore, Any], Any], items: Sequence[Any]) -> None:
        async def go() -> None:
            store = SqliteStore(spec.tmp / f"floor{next(stores)}.sqlite3")
            await store.start()
            await _gather_limited(conc, items, lambda x: call(store, x))
            await store.close()

        done.clear()
        asyncio.run(go())

    async def accept(store: SqliteStore, r: Request) -> None:
        assert isinstance(r.body, Transfer)
        route = router.route(r.body, now)
        rec = (await store.accept(new_request(r, route, now))).record
        done.append((r, route, rec.gw_ref or "" if rec else ""))

    out[ACCEPT.format(conc=conc)] = timed(
        lambda: concurrently(accept, reqs), len(reqs), spec.rounds
    )
    history = (Transition(State.ACCEPTED, now), Transition(State.QUEUED, now))
    rsps = [
        Response(
            *("PAY", r.head.corp_id, r.head.msg_id, now, "0000", "accepted", ref),
            status=StatusView(State.QUEUED, rt.engine, rt.work_date, history=history),
        )
        for r, rt, ref in done
    ]
    out[RENDER] = timed(lambda: [desk.render(r) for r in rsps], len(rsps), spec.rounds)
    out[ACCEPTANCE] = tuple(sum(v[i] for v in out.values()) for i in range(3))  # type: ignore[assignment]
    system_key = load_signing_key(spec.pki.clearing_system_key, spec.pki.clearing_system_cert)
    rounds = [
        asyncio.run(_clearing_round(spec, cfg, desk, router, reqs, now, system_key, n))
        for n in range(spec.rounds)
    ]
    for name in (SEAL, RECEIPT, STATUS, OUTBOX):
        out[name] = _median([r[name] for r in rounds])
    out[CLEARING] = tuple(sum(out[k][i] for k in (SEAL, RECEIPT, STATUS)) for i in range(3))  # type: ignore[assignment]
    out[FLOOR] = tuple(out[ACCEPTANCE][i] + out[CLEARING][i] for i in range(3))  # type: ignore[assignment]
    out[INLINE] = _inline(spec, cfg, router, concurrently)
    out[COLD] = _spaced(lambda b: desk.inspect(b, "127.0.0.1", now), bodies[:COLD_N], COLD_GAP_S)
    return out


def _inline(
    spec: FloorSpec,
    cfg: Any,
    router: Any,
    concurrently: Callable[[Callable[[SqliteStore, Any], Any], Sequence[Any]], None],
) -> Triple:
    """``Pipeline.handle`` with the desk inline (workers 0), no sockets, 64 concurrent."""
    pool = WorkerPool(desk_setup(cfg), 0)
    asyncio.run(pool.start())
    conn = ConnInfo("bench", 1, "127.0.0.1", 1, True, "TLSv1.3", None)
    clock, gate = BusinessClock(spec.start), Admission(cfg.admission)
    pipelines: dict[SqliteStore, Pipeline] = {}

    async def handle(store: SqliteStore, body: bytes) -> None:
        def nop(e: object) -> None:
            return None

        if (p := pipelines.get(store)) is None:
            p = Pipeline(clock, lambda: pool, store, lambda: router, nop, PipelineSettings(), gate)
            pipelines[store] = p
        await p.handle(body, conn)

    return timed(lambda: concurrently(handle, spec.bodies), len(spec.bodies), spec.rounds)


async def _clearing_round(
    spec: FloorSpec,
    cfg: Any,
    desk: Desk,
    router: Any,
    reqs: list[Request],
    now: datetime,
    system_key: SigningKey,
    n: int,
) -> dict[str, Triple]:
    """One round of the clearing steps on a fresh journal holding ``reqs`` QUEUED."""
    store = SqliteStore(spec.tmp / f"clearing{n}.sqlite3")
    await store.start()
    try:
        for r in reqs:  # setup: not timed
            assert isinstance(r.body, Transfer)
            await store.accept(new_request(r, router.route(r.body, now), now))
        participant, seq = cfg.bank.participant, iter(range(1, 10**9))
        messages: list[tuple[Engine, str, list[QueuedItem]]] = []
        everything = 10**9  # claim_queued only reads: items stay QUEUED until linked
        for engine in (Engine.INTRA, Engine.HVPS):
            for it in await store.claim_queued(engine, everything):
                messages.append((engine, msg_tp_for(engine, it.biz_type), [it]))
        for g in await store.pending_groups(Engine.BEPS):
            items = await store.claim_queued(
                Engine.BEPS,
                everything,
                receiver=g.receiver,
                biz_type=g.biz_type,
                work_date=g.work_date,
            )
            msg_tp, size = msg_tp_for(Engine.BEPS, g.biz_type), spec.beps_package
            for k in range(0, len(items), size):
                messages.append((Engine.BEPS, msg_tp, items[k : k + size]))
        assert sum(len(m[2]) for m in messages) == len(reqs), "every item in one message"
        outs: list[NewOutbound] = []
        with (seal := _Meter()):
            for engine, msg_tp, items in messages:
                msg_id = out_msg_id(participant, now.date(), next(seq))
                payload = desk.seal(
                    msg_tp, msg_id, participant, items[0].receiver, now, items[0].work_date, items
                )
                outs.append(
                    NewOutbound(
                        msg_id=msg_id,
                        engine=engine,
                        msg_tp=msg_tp,
                        topic=f"clearing/{engine.value.lower()}/out",
                        receiver=items[0].receiver,
                        work_date=items[0].work_date,
                        payload=payload,
                        item_ids=tuple(it.item_id for it in items),
                        created_at=now,
                    )
                )
        with (outbox := _Meter()):
            await store.create_outbound(outs)
            await store.mark_sent_many([o.msg_id for o in outs], now)
        receipts, statuses = _answers(outs, messages, system_key, now, participant)
        with (rcpt := _Meter()):
            await _gather_limited(
                spec.conc,
                receipts,
                lambda p: _apply(store, desk, p, now),
            )
        with (stat := _Meter()):
            await _gather_limited(spec.conc, statuses, lambda p: _apply(store, desk, p, now))
    finally:
        await store.close()
    k = len(reqs)
    return {SEAL: seal.per(k), OUTBOX: outbox.per(k), RECEIPT: rcpt.per(k), STATUS: stat.per(k)}


async def _apply(store: SqliteStore, desk: Desk, payload: bytes, now: datetime) -> None:
    """What the daemon's receipt handler does with one inbound message (verify, then journal)."""
    msg = desk.open_inbound(payload, now)
    assert msg.orgnl_msg_id
    if msg.msg_tp == "ccms.990":
        assert await store.apply_receipt(msg.orgnl_msg_id, now)
    else:
        await store.apply_tx_status(msg.orgnl_msg_id, msg.results, now)


def _answers(
    outs: list[NewOutbound],
    messages: list[tuple[Engine, str, list[QueuedItem]]],
    key: SigningKey,
    now: datetime,
    participant: str,
) -> tuple[list[bytes], list[bytes]]:
    """The clearing system's signed ccms.990 and ccms.900 (ACSC) for each outbound message."""
    receipts: list[bytes] = []
    statuses: list[bytes] = []
    sim = "000000000000"
    for i, (o, (_, _, items)) in enumerate(zip(outs, messages, strict=True)):
        name = PACS003_NAME if items[0].biz_type is BizType.DEBIT else PACS008_NAME
        for msg_tp, doc_id, doc in (
            (MSG_TP_RECEIPT, 2 * i + 1, build_receipt(o.msg_id, now)),
            (
                MSG_TP_STATUS,
                2 * i + 2,
                build_pacs002(
                    out_msg_id(sim, now.date(), 2 * i + 2),
                    now,
                    o.msg_id,
                    name,
                    [TxResult(it.tx_id, it.end_to_end_id, "ACSC") for it in items],
                ),
            ),
        ):
            root = build_envelope(
                msg_tp, out_msg_id(sim, now.date(), doc_id), sim, participant, now, o.work_date, doc
            )
            sign_enveloped(root, key)
            (receipts if msg_tp == MSG_TP_RECEIPT else statuses).append(serialize(root))
    return receipts, statuses
