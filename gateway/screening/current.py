"""The screening lists in force, replaced whole on reload (docs/foreign-currency.md §5).

The daemon loads ``screening.lists`` at start (a file that does not parse
stops the start with one line naming it) and on every reload builds a
complete new :class:`ScreeningLists` before checking it against the one in
force: a file that fails to parse, or that lost more than a tenth of its
rows, is refused and the old version stays (``gatewayctl reload --force``
accepts the shrink).  The gauges read the version in force when scraped, so
a list's age keeps growing between reloads and its alert can fire.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.ops import metrics
from gateway.screening.lists import ListFile, ScreeningLists
from gateway.screening.settings import ScreeningSettings


class CurrentLists:
    """The lists in force (None while ``screening.lists`` is empty)."""

    def __init__(self, settings: ScreeningSettings) -> None:
        self.settings = settings
        self.lists: ScreeningLists | None = load(settings)
        self._publish()

    def prepare(self, settings: ScreeningSettings, *, force: bool = False) -> ScreeningLists | None:
        """The version a reload would put in force; raises ``ListError`` to refuse it."""
        new = load(settings)
        if self.lists is not None and not force:
            if new is None:
                # every configured file removed at once: as good as an empty download
                self.lists.check_replacement(ScreeningLists((), settings))
            else:
                self.lists.check_replacement(new)
        return new

    def swap(self, settings: ScreeningSettings, new: ScreeningLists | None) -> None:
        """Put a prepared version in force."""
        old = self.lists
        self.settings, self.lists = settings, new
        if old is not None:
            for stem in old.rows():
                if new is None or stem not in new.rows():
                    metrics.SCREENING_LIST_ENTRIES.remove(stem)
                    metrics.SCREENING_LIST_AGE.remove(stem)
        self._publish()

    def versions(self) -> dict[str, str]:
        """Each list's version (its file's SHA-256, first 16 hex digits), for logs and reload."""
        return versions_of(self.lists)

    def _publish(self) -> None:
        lists = self.lists
        if lists is None:
            return
        for file in lists.files:
            metrics.SCREENING_LIST_ENTRIES.labels(file.stem).set(len(file))
            metrics.SCREENING_LIST_AGE.labels(file.stem).set_function(_age_of(file))


def _age_of(file: ListFile) -> Callable[[], float]:
    """The file's age in seconds, read at each scrape."""
    return lambda: file.age(time.time()) or 0.0


def versions_of(lists: ScreeningLists | None) -> dict[str, str]:
    """Each list's version, short (first 16 hex digits): what the core and its fronts compare."""
    if lists is None:
        return {}
    return {v.list: v.version[:16] for v in lists.versions}


def load(settings: ScreeningSettings) -> ScreeningLists | None:
    """Every configured list file, parsed and indexed; None when none is configured."""
    if not settings.lists:
        return None
    return ScreeningLists.load(settings)
