"""The calendar and operating-window edges through the real daemon (routing.md §4, §5).

Each test starts ``Gateway`` on its own business clock (``clock.start`` a second
before the edge, ``clock.rate`` 1.0, ``environment = "test"``), sends signed PAYs
over TLS, lets the edge pass and reads what the ERP can see: RetCode, State,
Engine, WorkDate, ReleaseAt, RspTime and History, plus what reaches the clearing
system (the simulator's record and a tap on the broker).  Dates come from the
shipped calendar files (``calendar_support``); nothing asserts elapsed time.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import FrozenClock
from gateway.keys.devpki import DevPki
from gateway.sim.erp import ErpClient
from gateway.testing import Broker
from tests.integration.calendar_support import (
    BEPS_AMOUNT,
    BEPS_CODE,
    CAL,
    HVPS_AMOUNT,
    HVPS_CODE,
    INTRA_CODE,
    LEAD,
    Answer,
    answer,
    clearing_tap,
    clocked_config,
    clocked_gateway,
    is_weekday_holiday,
    latest_day,
    shanghai,
    until,
)
from tests.integration.harness import (
    Erp,
    gateway_config,
    payment,
    running_clearing_sim,
    running_gateway,
    wait_for_state,
)

ONE_DAY = timedelta(days=1)


async def pay(erp: ErpClient, clock_now: datetime, msg_id: str, code: str, amount: str) -> Answer:
    return answer(await erp.pay(msg_id, clock_now, payment(code, amount)))


async def status(erp: ErpClient, clock_now: datetime, orig: str) -> Answer:
    return answer(await erp.status(f"Q-{orig}", clock_now, orig))


def before(a: Answer, edge: datetime) -> Answer:
    """``a`` was answered before ``edge`` on the business clock (else the test set-up is off)."""
    assert a.rsp_time < edge, f"answered at {a.rsp_time}, meant before {edge}"
    return a


def recorded(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


# -- 1. the default HVPS window opens at 09:00 ------------------------------------------


async def test_hvps_at_085959_is_held_until_0900_then_settles(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    day = latest_day(CAL.is_working_day, "working day")
    nine = shanghai(day, 9)
    async with clocked_gateway(tmp_path, dev_pki, broker, nine - LEAD) as (gw, erp):
        held = before(await pay(erp, gw.clock.now(), "H-0859", HVPS_CODE, HVPS_AMOUNT), nine)
        assert (held.ret_code, held.state, held.engine) == ("0000", "HELD", "HVPS")
        assert (held.release_at, held.work_date) == (nine, day)
        assert held.release_at is not None and held.release_at.utcoffset() == timedelta(hours=8)
        assert await wait_for_state(erp, gw.clock.now(), "H-0859", ["SETTLED"]) == "SETTLED"
        done = await status(erp, gw.clock.now(), "H-0859")
        assert done.work_date == day
        assert done.stepped("QUEUED") >= nine  # released at the opening, not before


# -- 2. the 2018 HVPS profile: 20:30 the evening before a working day -> 17:15 ----------


HVPS_2018 = {"windows": {"hvps": {"profile": "hvps-2018"}}}


@pytest.mark.parametrize("eve", ["working-eve", "day-off-eve"])
async def test_hvps_2018_opens_at_2030_the_evening_before_a_working_day(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, eve: str
) -> None:
    # the evening before is a working day (closed since 17:15) or a day off (a
    # Sunday or the last day of a holiday: the session starts on a non-working day)
    eve_works = eve == "working-eve"
    day = latest_day(
        lambda d: CAL.is_working_day(d) and CAL.is_working_day(d - ONE_DAY) is eve_works,
        f"working day after a {'working day' if eve_works else 'day off'}",
    )
    opening = shanghai(day - ONE_DAY, 20, 30)
    async with clocked_gateway(tmp_path, dev_pki, broker, opening - LEAD, HVPS_2018) as (gw, erp):
        held = before(await pay(erp, gw.clock.now(), "E-2029", HVPS_CODE, HVPS_AMOUNT), opening)
        assert (held.ret_code, held.state, held.engine) == ("0000", "HELD", "HVPS")
        assert (held.release_at, held.work_date) == (opening, day)
        await until(gw.clock, opening)
        late = await pay(erp, gw.clock.now(), "E-2030", HVPS_CODE, HVPS_AMOUNT)
        assert late.rsp_time >= opening
        assert (late.ret_code, late.engine, late.release_at) == ("0000", "HVPS", None)
        assert late.state != "HELD"
        assert late.work_date == day  # the evening belongs to the next working day
        for msg_id in ("E-2029", "E-2030"):
            assert await wait_for_state(erp, gw.clock.now(), msg_id, ["SETTLED"]) == "SETTLED"
        assert (await status(erp, gw.clock.now(), "E-2029")).work_date == day


@pytest.mark.parametrize("morrow", ["working-morrow", "day-off-morrow"])
async def test_hvps_2018_cutoff_at_1715_holds_until_2030_before_the_next_working_day(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, morrow: str
) -> None:
    # the next day works (reopens at 20:30 that evening) or is a day off (reopens at
    # 20:30 on the evening before the next working day, e.g. Sunday for a Friday)
    morrow_works = morrow == "working-morrow"
    day = latest_day(
        lambda d: CAL.is_working_day(d) and CAL.is_working_day(d + ONE_DAY) is morrow_works,
        f"working day before a {'working day' if morrow_works else 'day off'}",
    )
    nxt = CAL.next_working_day(day)
    assert (nxt == day + ONE_DAY) is morrow_works
    cutoff = shanghai(day, 17, 15)
    async with clocked_gateway(tmp_path, dev_pki, broker, cutoff - LEAD, HVPS_2018) as (gw, erp):
        last = before(await pay(erp, gw.clock.now(), "C-1714", HVPS_CODE, HVPS_AMOUNT), cutoff)
        assert (last.ret_code, last.engine, last.release_at, last.work_date) == (
            "0000",
            "HVPS",
            None,
            day,
        )
        assert last.state != "HELD"
        await until(gw.clock, cutoff)
        held = await pay(erp, gw.clock.now(), "C-1715", HVPS_CODE, HVPS_AMOUNT)
        assert held.rsp_time >= cutoff
        assert (held.ret_code, held.state, held.engine) == ("0000", "HELD", "HVPS")
        assert held.release_at == shanghai(nxt - ONE_DAY, 20, 30)
        assert held.work_date == nxt
        assert await wait_for_state(erp, gw.clock.now(), "C-1714", ["SETTLED"]) == "SETTLED"
        assert (await status(erp, gw.clock.now(), "C-1715")).state == "HELD"


# -- 3 and 7. a public holiday: INTRA and HVPS closed, BEPS runs ------------------------


def last_holiday_before_a_working_day() -> date:
    return latest_day(
        lambda d: is_weekday_holiday(d) and CAL.is_working_day(d + ONE_DAY),
        "holiday (Mon-Fri) followed by a working day",
    )


async def test_holiday_holds_intra_and_hvps_while_beps_runs(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    holiday = last_holiday_before_a_working_day()
    nxt = holiday + ONE_DAY
    midnight = shanghai(nxt, 0)
    async with clocked_gateway(tmp_path, dev_pki, broker, midnight - LEAD) as (gw, erp):
        now = gw.clock.now()
        intra, hvps, beps = await asyncio.gather(
            pay(erp, now, "HOL-INTRA", INTRA_CODE, "1234.56"),
            pay(erp, now, "HOL-HVPS", HVPS_CODE, HVPS_AMOUNT),
            pay(erp, now, "HOL-BEPS", BEPS_CODE, BEPS_AMOUNT),
        )
        for a in (intra, hvps, beps):
            before(a, midnight)
            assert a.ret_code == "0000"
        # INTRA: working days, all day → the next working day's midnight
        assert (intra.state, intra.engine) == ("HELD", "INTRA")
        assert (intra.release_at, intra.work_date) == (midnight, nxt)
        # HVPS: working days 09:00-17:00 → 09:00 of the next working day
        assert (hvps.state, hvps.engine) == ("HELD", "HVPS")
        assert (hvps.release_at, hvps.work_date) == (shanghai(nxt, 9), nxt)
        # BEPS: every day, 24 h; at 23:59:59 (≥ 16:00) the work date is D + 1
        assert (beps.engine, beps.release_at, beps.work_date) == ("BEPS", None, nxt)
        assert beps.state != "HELD"
        # the INTRA opening passes: released and settled; HVPS still waits for 09:00
        assert await wait_for_state(erp, gw.clock.now(), "HOL-INTRA", ["SETTLED"]) == "SETTLED"
        assert (await status(erp, gw.clock.now(), "HOL-INTRA")).stepped("QUEUED") >= midnight
        assert await wait_for_state(erp, gw.clock.now(), "HOL-BEPS", ["SETTLED"]) == "SETTLED"
        assert (await status(erp, gw.clock.now(), "HOL-HVPS")).state == "HELD"


async def test_holiday_credit_limit_sends_mid_amounts_to_hvps_on_a_holiday_only(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    holiday = last_holiday_before_a_working_day()
    nxt = holiday + ONE_DAY
    midnight = shanghai(nxt, 0)
    limits = {"routing": {"credit_limit": "50000.00", "holiday_credit_limit": "20000.00"}}
    async with clocked_gateway(
        tmp_path, dev_pki, broker, midnight - LEAD, limits, clearing=False
    ) as (gw, erp):
        now = gw.clock.now()
        mid, small = await asyncio.gather(
            pay(erp, now, "HCL-HOL-MID", BEPS_CODE, "30000.00"),
            pay(erp, now, "HCL-HOL-LOW", BEPS_CODE, "19999.99"),
        )
        before(mid, midnight)
        before(small, midnight)
        # on the holiday: 30,000 ≥ the holiday limit → HVPS, which is closed → HELD
        assert (mid.ret_code, mid.engine, mid.state) == ("0000", "HVPS", "HELD")
        assert (mid.release_at, mid.work_date) == (shanghai(nxt, 9), nxt)
        assert (small.ret_code, small.engine, small.release_at) == ("0000", "BEPS", None)
        await until(gw.clock, midnight)
        work = await pay(erp, gw.clock.now(), "HCL-WORK-MID", BEPS_CODE, "30000.00")
        # on the working day the ordinary limit applies: 30,000 < 50,000 → BEPS
        assert work.rsp_time >= midnight
        assert (work.ret_code, work.engine, work.release_at, work.work_date) == (
            "0000",
            "BEPS",
            None,
            nxt,
        )


# -- 4. a make-up working Saturday (调休) ------------------------------------------------


async def test_make_up_saturday_opens_hvps_at_0900(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    saturday = latest_day(lambda d: d in CAL.workdays and d.weekday() == 5, "make-up Saturday")
    nine = shanghai(saturday, 9)
    async with clocked_gateway(tmp_path, dev_pki, broker, nine - LEAD) as (gw, erp):
        early = before(await pay(erp, gw.clock.now(), "SAT-0859", HVPS_CODE, HVPS_AMOUNT), nine)
        assert (early.state, early.release_at, early.work_date) == ("HELD", nine, saturday)
        await until(gw.clock, nine)
        now = gw.clock.now()
        hvps, intra = await asyncio.gather(
            pay(erp, now, "SAT-HVPS", HVPS_CODE, HVPS_AMOUNT),
            pay(erp, now, "SAT-INTRA", INTRA_CODE, "10.00"),
        )
        assert (hvps.ret_code, hvps.engine, hvps.release_at, hvps.work_date) == (
            "0000",
            "HVPS",
            None,
            saturday,
        )
        assert hvps.state != "HELD"
        assert (intra.engine, intra.release_at, intra.work_date) == ("INTRA", None, saturday)
        assert intra.state != "HELD"
        for msg_id in ("SAT-0859", "SAT-HVPS", "SAT-INTRA"):
            assert await wait_for_state(erp, gw.clock.now(), msg_id, ["SETTLED"]) == "SETTLED"


# -- 5. the BEPS work date switches at 16:00 --------------------------------------------


def working_day() -> date:
    return latest_day(CAL.is_working_day, "working day")


def weekday_holiday() -> date:
    return latest_day(is_weekday_holiday, "holiday (Mon-Fri)")


@pytest.mark.parametrize("kind", ["working", "holiday"])
async def test_beps_work_date_follows_each_answers_side_of_1600(
    tmp_path: Path, dev_pki: DevPki, broker: Broker, kind: str
) -> None:
    """routing.md §4: D if t < 16:00 on D, else D + 1 — every day, holidays included.

    RspTime is the instant the gateway routed the request at (one clock reading
    per request), so each answer's WorkDate is checked against its own RspTime;
    PAYs are sent one after another across the edge until both sides were seen.
    """
    day = working_day() if kind == "working" else weekday_holiday()
    cutoff = shanghai(day, 16)
    daemon = clocked_gateway(tmp_path, dev_pki, broker, cutoff - LEAD, clearing=False)
    async with daemon as (gw, erp):
        seen: list[Answer] = [await pay(erp, gw.clock.now(), "CUT-0", BEPS_CODE, BEPS_AMOUNT)]
        await until(gw.clock, cutoff - timedelta(milliseconds=60))
        while seen[-1].rsp_time < cutoff:
            assert len(seen) < 5000, "the business clock did not pass 16:00"
            seen.append(await pay(erp, gw.clock.now(), f"CUT-{len(seen)}", BEPS_CODE, BEPS_AMOUNT))
    early = [a for a in seen if a.rsp_time < cutoff]
    late = [a for a in seen if a.rsp_time >= cutoff]
    assert early and late
    for a in seen:
        assert (a.ret_code, a.engine, a.release_at) == ("0000", "BEPS", None)
        assert a.work_date == (day if a.rsp_time < cutoff else day + ONE_DAY), a


async def test_beps_work_date_at_the_exact_millisecond_with_a_frozen_clock(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """15:59:59.999 → D, 16:00:00.000 → D + 1, through the daemon (the router's own
    unit test is tests/unit/routing/test_router.py::test_beps_work_date_around_the_cutoff)."""
    day = working_day()
    clock = FrozenClock(shanghai(day, 15, 59, 59, 999))
    cfg = gateway_config(tmp_path / "gw", dev_pki, broker.url)
    async with running_gateway(cfg, clock) as gw:
        erp = await Erp(gw, dev_pki).client()
        a = await pay(erp, clock.now(), "MS-1", BEPS_CODE, BEPS_AMOUNT)
        clock.set(shanghai(day, 16))
        b = await pay(erp, clock.now(), "MS-2", BEPS_CODE, BEPS_AMOUNT)
        await erp.close()
    assert (a.rsp_time, a.work_date) == (shanghai(day, 15, 59, 59, 999), day)
    assert (b.rsp_time, b.work_date) == (shanghai(day, 16), day + ONE_DAY)


# -- 6. the cutoff closes the BEPS package of work date D -------------------------------


async def test_cutoff_closes_the_package_and_never_mixes_work_dates(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    """routing.md §5: with max_wait far away, only the 16:00 cutoff sends D's package;
    later items (work date D + 1) travel in another package.  max_items = 3 lets the
    D + 1 package close on its count, so both packages reach the clearing system."""
    day = working_day()
    cutoff = shanghai(day, 16)
    beps = {"engines": {"beps": {"max_wait": 600.0, "max_items": 3}}}
    cfg = clocked_config(tmp_path / "gw", dev_pki, broker, cutoff - LEAD, beps)
    rec = tmp_path / "rec.jsonl"
    async with (
        clearing_tap(broker, dev_pki) as tap,
        running_clearing_sim(dev_pki, broker.url, rec) as sim,
        running_gateway(cfg) as gw,
    ):
        erp = await Erp(gw, dev_pki).client()
        now = gw.clock.now()
        d_items = await asyncio.gather(
            *(pay(erp, now, f"PK-D-{i}", BEPS_CODE, f"{100 + i}.00") for i in (1, 2))
        )
        for a in d_items:
            assert (before(a, cutoff).ret_code, a.engine, a.work_date) == ("0000", "BEPS", day)
        waiting = before(await status(erp, gw.clock.now(), "PK-D-1"), cutoff)
        assert waiting.state == "QUEUED"  # the package is still open before the cutoff
        await until(gw.clock, cutoff)
        now = gw.clock.now()
        n_items = await asyncio.gather(
            *(pay(erp, now, f"PK-N-{i}", BEPS_CODE, f"{200 + i}.00") for i in (1, 2, 3))
        )
        for a in n_items:
            assert (a.ret_code, a.engine, a.work_date) == ("0000", "BEPS", day + ONE_DAY)
        ids = [f"PK-D-{i}" for i in (1, 2)] + [f"PK-N-{i}" for i in (1, 2, 3)]
        for msg_id in ids:
            assert await wait_for_state(erp, gw.clock.now(), msg_id, ["SETTLED"]) == "SETTLED"
        sent_d = await status(erp, gw.clock.now(), "PK-D-1")
        assert sent_d.stepped("SENT") >= cutoff  # closed by the cutoff, not by max_wait
        await erp.close()
        assert sim.stats["invalid"] == 0
    packages = sorted(
        (s for s in tap.values() if s.msg_tp == "beps.121"), key=lambda s: s.work_date
    )
    assert [(p.work_date, sorted(p.end_to_end_ids)) for p in packages] == [
        (day, ["PK-D-1", "PK-D-2"]),
        (day + ONE_DAY, ["PK-N-1", "PK-N-2", "PK-N-3"]),
    ]
    at_sim = [r for r in recorded(rec) if r["msg_tp"] == "beps.121" and not r["dup"]]
    assert sorted(sorted(r["end_to_end_ids"]) for r in at_sim) == [
        ["PK-D-1", "PK-D-2"],
        ["PK-N-1", "PK-N-2", "PK-N-3"],
    ]


# -- 8. hold policy "reject" --------------------------------------------------------------


async def test_reject_policy_answers_4005_and_journals_nothing(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    day = working_day()
    nine = shanghai(day, 9)
    reject = {"engines": {"hvps": {"hold_policy": "reject"}}}
    async with clocked_gateway(tmp_path, dev_pki, broker, nine - LEAD, reject) as (gw, erp):
        sent_at = gw.clock.now()
        refused = before(await pay(erp, sent_at, "RJ-1", HVPS_CODE, HVPS_AMOUNT), nine)
        assert (refused.ret_code, refused.gw_ref, refused.state) == ("4005", None, None)
        unknown = await status(erp, gw.clock.now(), "RJ-1")
        assert (unknown.ret_code, unknown.gw_ref, unknown.state) == ("0000", None, None)
        # nothing journaled: after 09:00 the very same request (same MsgId, same
        # SendTime) is a new payment, not a replay of the 4005 (corplink.md §7)
        await until(gw.clock, nine)
        again = await pay(erp, sent_at, "RJ-1", HVPS_CODE, HVPS_AMOUNT)
        assert (again.ret_code, again.dup, again.engine, again.work_date) == (
            "0000",
            False,
            "HVPS",
            day,
        )
        assert again.gw_ref is not None and again.state != "HELD"
        assert await wait_for_state(erp, gw.clock.now(), "RJ-1", ["SETTLED"]) == "SETTLED"


# -- 9. held messages survive a restart ---------------------------------------------------


async def test_held_payment_survives_a_restart_and_is_released_after_it(
    tmp_path: Path, dev_pki: DevPki, broker: Broker
) -> None:
    day = working_day()
    nine = shanghai(day, 9)
    state = tmp_path / "gw"
    async with running_clearing_sim(dev_pki, broker.url, tmp_path / "rec.jsonl"):
        first = clocked_config(state, dev_pki, broker, nine - timedelta(seconds=30))
        async with running_gateway(first) as gw:
            erp = await Erp(gw, dev_pki).client()
            held = await pay(erp, gw.clock.now(), "RS-HELD", HVPS_CODE, HVPS_AMOUNT)
            assert (held.ret_code, held.state, held.release_at) == ("0000", "HELD", nine)
            still = before(await status(erp, gw.clock.now(), "RS-HELD"), nine)
            assert still.state == "HELD"
            await erp.close()
        # same journal, the business clock now past the opening
        second = clocked_config(state, dev_pki, broker, nine + timedelta(seconds=1))
        async with running_gateway(second) as gw:
            erp = await Erp(gw, dev_pki).client()
            assert await wait_for_state(erp, gw.clock.now(), "RS-HELD", ["SETTLED"]) == "SETTLED"
            done = await status(erp, gw.clock.now(), "RS-HELD")
            assert (done.gw_ref, done.work_date) == (held.gw_ref, day)
            steps = [s for s, _ in done.history]
            assert steps.index("HELD") < steps.index("QUEUED")
            assert done.stepped("QUEUED") >= nine
            await erp.close()
