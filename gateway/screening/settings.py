"""The ``screening.*`` settings with the defaults of docs/foreign-currency.md §5.

A frozen value the configuration builds (the TOML keys have the same names);
the screening engine reads nothing else.  Validation here names the key, so
a bad value is refused where it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.screening.matching import DEFAULT_THRESHOLD
from gateway.screening.normalise import DEFAULT_LEGAL_FORMS, LegalFormError, Normaliser

SCOPES = frozenset({"fx", "all"})
"""``screening.scope``: foreign-currency payments only, or every payment."""


@dataclass(frozen=True, slots=True)
class ScreeningSettings:
    """``screening.*`` (docs/foreign-currency.md §5)."""

    lists: tuple[Path, ...] = ()
    """The list files (CSV); a list's name in metrics is its file's stem."""
    scope: str = "fx"
    threshold: float = DEFAULT_THRESHOLD
    legal_forms: tuple[str, ...] = DEFAULT_LEGAL_FORMS
    review_group: str | None = None
    """The OS group whose members may review; no default (review needs it set)."""
    review_alert: float = 30 * 60.0
    """Seconds a review may wait before the alert fires."""
    max_list_age: float = 7 * 86400.0
    """Seconds since a list file's modification before the alert fires."""

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"screening.scope must be one of {', '.join(sorted(SCOPES))}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("screening.threshold must be in (0, 1]")
        if self.review_alert <= 0 or self.max_list_age <= 0:
            raise ConfigError("screening.review_alert and screening.max_list_age must be > 0")
        stems = [path.stem for path in self.lists]
        if len(set(stems)) != len(stems):
            raise ConfigError("screening.lists: two files with the same name (stem)")
        try:
            Normaliser(self.legal_forms)
        except LegalFormError as exc:
            raise ConfigError(f"screening.legal_forms: {exc}") from None

    def normaliser(self) -> Normaliser:
        """The normalisation with these legal forms."""
        return Normaliser(self.legal_forms)
