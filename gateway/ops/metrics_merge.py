"""One ``/metrics`` for many processes: the fronts' samples merged into the core's.

Every gatewayd process has its own copy of every metric in ``gateway.ops.metrics``
(docs/architecture.md §1, "Metrics across processes"). Only the core serves
``/metrics``, so each front sends :func:`snapshot` of its registry over the channel to
the core, the core keeps the latest one per front in a :class:`FrontMetrics`, and
``generate_latest(front_metrics)`` renders the core's own registry with every front's
samples folded in. Prometheus sees one daemon, as before the split; no ``process``
label to sum over in every alert and panel.

How a family is merged, by type, for identical (sample name, label set):

================================================  ====  =====================================
family                                            rule  why
================================================  ====  =====================================
every counter, histogram and summary              sum   events counted wherever they happen;
                                                        ``_created`` dropped (a sum has no
                                                        single creation time)
``gateway_connections_open``                      sum   each front owns its connections
``gateway_admission_state``                       sum   each front admits on its own (an
                                                        address on two fronts counts twice)
``gateway_worker_queue_depth``                    sum   frames queued in any process
``gateway_lifecycle_state``                       core  the daemon's state is the core's
``gateway_clearing_link_up``                      core  the core holds the MQTT link
``gateway_link_up`` (the SWIFT link)              core  the core holds that link too
``gateway_outbound_inflight``                     core  the engines run in the core
``gateway_items``, ``gateway_credits``            core  counted from the journal
``gateway_certificate_expiry_timestamp_seconds``  core  the core's key ring is the one in use
``gateway_crl_next_update_timestamp_seconds``     core  the core's trust store
``gateway_directory_codes``                       core  the core's directory
``gateway_netting_mismatch``                      core  reconciliation runs in the core
``gateway_audit_*`` (three gauges)                core  the journal's audit chain
``gateway_review_pending``, ``_oldest_seconds``  core  the journal's payments in REVIEW
any other gauge, or any other type                core  never double-count the unknown
================================================  ====  =====================================

A front that died must not make a counter go backwards (Prometheus reads a decrease as a
reset and ``increase()`` would count the whole remaining total again): :meth:`FrontMetrics.forget`
folds its last counters, histograms and summaries into a "retired" total that stays in
every later scrape; its gauges go with it. A front id whose counters went down between
two updates is a new process under an old id, and its previous values are retired the
same way.

A snapshot is trusted no more than it must be: it is unpickled without any class
(plain dicts, lists, tuples, strings and numbers only), and a family the core does not
have, of another type than the core's, or of an unexpected shape is left out of the
merge with one log line; ``/metrics`` still answers.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Final

import structlog
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway.ops import metrics

__all__ = ["GAUGE_RULES", "FrontMetrics", "Rule", "snapshot"]

log = structlog.get_logger(__name__)


class Rule(StrEnum):
    """How the fronts' values of a gauge combine with the core's."""

    SUM = "sum"
    """Core plus every front: the gauge counts something each process has its share of."""
    CORE = "core"
    """The core's value alone: the gauge describes the daemon as a whole."""


GAUGE_RULES: Final[Mapping[str, Rule]] = {
    "gateway_connections_open": Rule.SUM,
    "gateway_admission_state": Rule.SUM,
    "gateway_worker_queue_depth": Rule.SUM,
    "gateway_lifecycle_state": Rule.CORE,
    "gateway_clearing_link_up": Rule.CORE,
    "gateway_link_up": Rule.CORE,
    "gateway_outbound_inflight": Rule.CORE,
    "gateway_items": Rule.CORE,
    "gateway_credits": Rule.CORE,
    "gateway_certificate_expiry_timestamp_seconds": Rule.CORE,
    "gateway_crl_next_update_timestamp_seconds": Rule.CORE,
    "gateway_directory_codes": Rule.CORE,
    "gateway_netting_mismatch": Rule.CORE,
    "gateway_audit_chain_ok": Rule.CORE,
    "gateway_audit_head_seq": Rule.CORE,
    "gateway_audit_verified_timestamp_seconds": Rule.CORE,
    "gateway_drafts": Rule.CORE,
    "gateway_drafts_outstanding_yuan": Rule.CORE,
    "gateway_drafts_paid_unsettled": Rule.CORE,
    "gateway_screening_list_entries": Rule.CORE,
    "gateway_screening_list_age_seconds": Rule.CORE,
    "gateway_review_pending": Rule.CORE,
    "gateway_review_oldest_seconds": Rule.CORE,
}
"""The module docstring's table, per gauge; a gauge missing here is core-only."""

_SUFFIXES: Final[Mapping[str, frozenset[str]]] = {
    "counter": frozenset({"_total"}),
    "histogram": frozenset({"_bucket", "_count", "_sum"}),
    "summary": frozenset({"", "_count", "_sum"}),
    "gauge": frozenset({""}),
}
"""Sample names (after the family name) a front may send per type; ``_created`` never."""
_MONOTONIC: Final = ("_total", "_bucket", "_count")
"""Samples that only grow within one process: a decrease means the front restarted."""

_MAX_REPORTED: Final = 256
"""Distinct problems logged at most (a broken front could invent endless family names)."""

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]
"""(sample name, label pairs sorted by name): the identity that values are summed under."""
Family = tuple[str, dict[Key, float]]
"""A decoded family: its type and its values."""


def _merged(name: str, typ: str) -> bool:
    """True if the fronts' values of this family are added to the core's."""
    if typ == "gauge":
        return GAUGE_RULES.get(name, Rule.CORE) is Rule.SUM
    return typ in _SUFFIXES


def snapshot(registry: Collector = metrics.REGISTRY) -> bytes:
    """This process's samples of every family the core merges, for the core's ``update``.

    Core-only gauges and ``_created`` samples are left out (the core ignores them).
    Format: ``pickle`` protocol 5 of ``{family: (type, documentation, [(sample name,
    ((label, value), ...), value), ...])}``. Each sample name is one string object per
    snapshot, so pickle writes it once and refers to it after (a third fewer bytes).
    Nearly all the time goes to ``registry.collect()`` itself (bench/bench_metrics_merge.py).
    """
    families = {}
    names: dict[str, str] = {}
    one = names.setdefault
    for family in registry.collect():
        if _merged(family.name, family.type):
            created = family.name + "_created"
            samples = [
                (one(s.name, s.name), tuple(s.labels.items()), s.value)
                for s in family.samples
                if s.name != created
            ]
            families[family.name] = (family.type, family.documentation, samples)
    return pickle.dumps(families, protocol=5)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles containers, strings and numbers only: no class is ever looked up."""

    def find_class(self, module: str, name: str, /) -> type:
        raise pickle.UnpicklingError(f"{module}.{name} refused")


def _decode_family(name: object, entry: object) -> Family:
    """Check one family of a snapshot; ValueError or TypeError says what is wrong."""
    if not isinstance(name, str) or not isinstance(entry, tuple) or len(entry) != 3:
        raise ValueError("not (type, documentation, samples)")
    typ, _doc, samples = entry
    if not isinstance(typ, str) or typ not in _SUFFIXES or not isinstance(samples, list):
        raise ValueError(f"type {typ!r} is not merged")
    allowed = {name + suffix for suffix in _SUFFIXES[typ]}
    values: dict[Key, float] = {}
    for sample_name, labels, value in samples:
        if sample_name not in allowed:
            raise ValueError(f"sample {sample_name!r}")
        if type(value) not in (float, int):
            raise ValueError(f"value {value!r}")
        pairs = tuple(sorted(labels))
        for pair in pairs:
            if type(pair) is not tuple or len(pair) != 2 or not _all_str(pair):
                raise ValueError(f"label {pair!r}")
        values[(sample_name, pairs)] = float(value)
    return typ, values


def _all_str(pair: tuple[object, ...]) -> bool:
    return type(pair[0]) is str and type(pair[1]) is str


def _went_back(old: Mapping[str, Family], new: Mapping[str, Family]) -> bool:
    """True if any monotonic sample of ``new`` is below its value in ``old``."""
    for name, (typ, values) in new.items():
        before = old.get(name)
        if before is None or before[0] != typ or typ == "gauge":
            continue
        previous = before[1]
        for key, value in values.items():
            was = previous.get(key)
            if was is not None and value < was and key[0].endswith(_MONOTONIC):
                return True
    return False


def _fold(into: Mapping[str, Family], front: Mapping[str, Family]) -> dict[str, Family]:
    """A new retired total: ``into`` plus ``front``'s counters, histograms and summaries."""
    out = {name: (typ, dict(values)) for name, (typ, values) in into.items()}
    for name, (typ, values) in front.items():
        if typ == "gauge":
            continue
        have = out.setdefault(name, (typ, {}))
        if have[0] != typ:
            continue  # reported when the core's type is compared at scrape time
        acc = have[1]
        for key, value in values.items():
            acc[key] = acc.get(key, 0.0) + value
    return out


class FrontMetrics(Collector):
    """The latest snapshot of each front, merged with the core's registry on ``collect()``.

    ``generate_latest(front_metrics)`` is the core's ``/metrics`` body. It is not to be
    registered in the core's registry: it reads every family there itself, so it would
    count them twice (and a registry collects under its lock: it would wait on itself).
    ``describe`` refuses registration in any registry.

    ``update`` only stores the bytes, so a front may push often; snapshots are decoded
    when a scrape or ``forget`` needs them (an unreadable one leaves the front's values
    of the previous scrape in place). Safe to call from several threads.
    """

    def __init__(self, core: Collector = metrics.REGISTRY) -> None:
        self._core = core
        self._lock = threading.RLock()
        self._pending: dict[int, bytes] = {}
        self._fronts: dict[int, dict[str, Family]] = {}
        self._retired: dict[str, Family] = {}
        self._reported: set[tuple[str, str, str]] = set()

    def update(self, front_id: int, data: bytes) -> None:
        """Keep ``data`` (a front's :func:`snapshot`) as that front's latest values."""
        with self._lock:
            self._pending[front_id] = data

    def forget(self, front_id: int) -> None:
        """A front has exited: keep its counters (as retired), drop its gauges."""
        with self._lock:
            self._refresh(front_id)
            gone = self._fronts.pop(front_id, None)
            if gone:
                self._retired = _fold(self._retired, gone)

    def describe(self) -> list[Metric]:
        """Refuse registration: serve ``generate_latest(self)`` instead (see the class)."""
        raise TypeError("FrontMetrics is served on its own, never registered in a registry")

    @property
    def fronts(self) -> frozenset[int]:
        """The front ids whose values are in the merge (not counting retired ones)."""
        with self._lock:
            return frozenset(self._fronts.keys() | self._pending.keys())

    def collect(self) -> Iterator[Metric]:
        """The core's families, each merged with the fronts' by its rule."""
        with self._lock:
            for front_id in list(self._pending):
                self._refresh(front_id)
            sources = [(f"front {i}", fams) for i, fams in sorted(self._fronts.items())]
            if self._retired:
                sources.append(("retired", self._retired))
        seen: set[str] = set()
        for family in self._core.collect():
            seen.add(family.name)
            try:
                yield self._merge(family, sources) if _merged(family.name, family.type) else family
            except (TypeError, ValueError) as exc:  # keep /metrics up; serve the core's own
                self._report("core", family.name, f"merge failed: {exc}")
                yield family
        for source, families in sources:
            for name in families.keys() - seen:
                self._report(source, name, "unknown family")

    # -- internals ------------------------------------------------------------

    def _refresh(self, front_id: int) -> None:
        """Decode a front's pending snapshot (lock held); retire its values if it restarted."""
        data = self._pending.pop(front_id, None)
        if data is None:
            return
        source = f"front {front_id}"
        try:
            raw = _PlainUnpickler(io.BytesIO(data)).load()
            if not isinstance(raw, dict):
                raise TypeError(f"snapshot is a {type(raw).__name__}")
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as exc:
            self._report(source, "-", f"snapshot refused: {exc}")
            return
        decoded: dict[str, Family] = {}
        for name, entry in raw.items():
            try:
                decoded[str(name)] = _decode_family(name, entry)
            except (TypeError, ValueError) as exc:
                self._report(source, str(name)[:100], f"bad shape: {exc}")
        old = self._fronts.get(front_id)
        if old is not None and _went_back(old, decoded):
            log.info("metrics_merge.front_restarted", front=front_id)
            self._retired = _fold(self._retired, old)
        self._fronts[front_id] = decoded

    def _merge(self, family: Metric, sources: Iterable[tuple[str, Mapping[str, Family]]]) -> Metric:
        totals: dict[Key, float] = {}
        created = family.name + "_created"
        for s in family.samples:
            if s.name != created:
                totals[(s.name, tuple(sorted(s.labels.items())))] = s.value
        for source, families in sources:
            entry = families.get(family.name)
            if entry is None:
                continue
            typ, values = entry
            if typ != family.type:
                self._report(source, family.name, f"type {typ}, the core's is {family.type}")
                continue
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value
        merged = Metric(family.name, family.documentation, family.type, family.unit)
        merged.samples = [
            Sample(name, dict(labels), value) for (name, labels), value in totals.items()
        ]
        return merged

    def _report(self, source: str, family: str, problem: str) -> None:
        """Log a problem once per (source, family, problem), not at every scrape."""
        key = (source, family, problem)
        with self._lock:
            if key in self._reported or len(self._reported) >= _MAX_REPORTED:
                return
            self._reported.add(key)
        log.warning("metrics_merge.ignored", source=source, family=family, problem=problem)
