"""Builds the bank-draft parts from the configuration, for :class:`gateway.server.Gateway`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.clock import Clock
from gateway.config import Config
from gateway.correspondence.outbox import Publish
from gateway.drafts.keystore import DraftKeyRing
from gateway.draftsvc.corplink import DraftCorplink
from gateway.draftsvc.keyfile import open_draft_keys
from gateway.draftsvc.link import DraftLink, DraftLinkSettings
from gateway.journal.records import OutboundRecord
from gateway.journal.store import Store
from gateway.routing.router import Router
from gateway.workers import WorkerPool


class Drafts:
    """The register's CorpLink side and its INTRA link side, sharing one key ring."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        pool: Callable[[], WorkerPool],
        clock: Clock,
        router: Callable[[], Router],
        passphrase: bytes | None,
        publish: Publish,
        republish: Callable[[OutboundRecord], Awaitable[bool]] | None = None,
    ) -> None:
        self.keys: DraftKeyRing | None = open_draft_keys(cfg.keys_dir, passphrase, clock.now())
        d = cfg.drafts
        settings = DraftLinkSettings(
            participant=cfg.bank.participant,
            centre=d.centre or cfg.bank.participant,
            topic_prefix=cfg.clearing.topic_prefix,
            province_areas=frozenset(d.province_areas) or None,
            interval=d.interval,
        )
        self.link = DraftLink(settings, store, pool, clock, router, self._ring, publish, republish)
        self.corplink = DraftCorplink(store, router, self._ring, self.link.wake)

    def _ring(self) -> DraftKeyRing | None:
        return self.keys
