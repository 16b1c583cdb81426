"""Builds the bank-draft parts from the configuration, for :class:`gateway.server.Gateway`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from gateway.clock import Clock
from gateway.config import Config
from gateway.correspondence.outbox import Publish
from gateway.drafts.dates import expiry_date
from gateway.drafts.keystore import DraftKeyRing
from gateway.draftsvc.corplink import DraftCorplink
from gateway.draftsvc.keyfile import open_draft_keys, reopen_draft_keys
from gateway.draftsvc.link import DraftLink, DraftLinkSettings
from gateway.journal.records import OutboundRecord
from gateway.journal.store import Store
from gateway.model import Engine
from gateway.routing.router import Router
from gateway.routing.windows import ScheduleError
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
        self._keys_dir = cfg.keys_dir
        self._router = router
        # Outside production a missing key file is made at start (demo, tests); in
        # production every node must open the same file, so an operator makes it once
        # (`gatewayctl keys draft-rotate`) and copies it: a node making its own would
        # issue Codes that the other nodes refuse (CD).
        self._create = cfg.environment != "production"
        why: list[str] = []
        made: list[str] = []
        self.keys: DraftKeyRing | None = open_draft_keys(
            cfg.keys_dir, passphrase, clock.now(), create=self._create, disabled=why, created=made
        )
        self.disabled: str | None = why[0] if why else None
        """Why drafts are off, for the daemon to log once it has started."""
        self.created: str | None = made[0] if made else None
        """The id of the key version this start made, logged once it has started."""
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

    def open_keys(self, passphrase: bytes | None, now: datetime) -> DraftKeyRing | None:
        """The draft key file opened again, checked against the keys in use; raises to refuse.

        The keys in use do not change here: a reload opens every file first
        and swaps them in together (:meth:`reload_keys` for the draft keys
        alone).  The file may: the version signing until now is kept until
        the ExpiryDate of a draft issued now (``reopen_draft_keys``).
        """
        router = self._router()
        try:
            issue = router.schedules[Engine.INTRA].work_date(now, router.calendar)
        except ScheduleError:  # no INTRA opening in the calendar: no draft is issued either
            expiry = None
        else:
            expiry = expiry_date(issue, router.calendar)
        return reopen_draft_keys(
            self._keys_dir, passphrase, now, self.keys, expiry, create=self._create
        )

    def reload_keys(self, passphrase: bytes | None, now: datetime) -> None:
        """Use the file's draft keys from now on; on an error the keys in use stay."""
        self.keys = self.open_keys(passphrase, now)

    def _ring(self) -> DraftKeyRing | None:
        return self.keys
