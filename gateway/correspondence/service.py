"""Builds the correspondence parts from the configuration, for :class:`gateway.server.Gateway`.

Kept out of ``server.py`` so the daemon's object graph reads in one screen:
the server asks for a :class:`Correspondence` and spawns its tasks.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.clearing.core import CoreConfig, CoreLink
from gateway.clock import Clock
from gateway.config import Config
from gateway.correspondence.core import core_functions
from gateway.correspondence.corplink import CorplinkCorrespondence
from gateway.correspondence.credits import CreditChecker
from gateway.correspondence.inbound import AccountIndex, InboundCorrespondence
from gateway.correspondence.outbox import CcmsOutbox, OutboxSettings, Publish
from gateway.journal.store import Store
from gateway.keys.enrolment import Registry
from gateway.workers import WorkerPool


def core_config(cfg: Config) -> CoreConfig:
    """The core link's settings; ``core.url`` empty means the clearing broker."""
    url = cfg.core.url or cfg.clearing.url
    tls_context = ssl.create_default_context() if url.startswith("mqtts://") else None
    return CoreConfig(
        broker_url=url,
        client_id=f"{cfg.client_id}-core",
        node=cfg.bank.node,
        request_topic=cfg.core.request_topic,
        response_prefix=cfg.core.response_prefix,
        timeout=cfg.core.timeout,
        tls_context=tls_context,
    )


class Correspondence:
    """NTFY/INQ/RPLY/BAL, inbound correspondence and the credit checker, wired together."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        pool: Callable[[], WorkerPool],
        clock: Clock,
        registry: Callable[[], Registry],
        publish: Publish,
    ) -> None:
        self.outbox = CcmsOutbox(
            OutboxSettings(cfg.bank.participant, cfg.clearing.topic_prefix),
            store,
            pool,
            publish,
        )
        self.core: CoreLink | None = None
        balance = check = None
        if cfg.core.enabled:
            self.core = CoreLink(core_config(cfg))
            balance, check = core_functions(self.core)
        self.corplink = CorplinkCorrespondence(store, self.outbox, registry, balance)
        self.checker = CreditChecker(
            store,
            clock,
            check,
            self.outbox,
            recheck_interval=cfg.core.recheck_interval,
            max_checks=cfg.core.max_checks,
        )
        self.accounts = AccountIndex(registry)
        self.inbound = InboundCorrespondence(store, clock, self.accounts, self.checker.wake)

    def tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        out: dict[str, Coroutine[Any, Any, None]] = {"credit_checks": self.checker.run()}
        if self.core is not None:
            out["core_link"] = self.core.run()
        return out

    async def close(self) -> None:
        if self.core is not None:
            await self.core.close()
