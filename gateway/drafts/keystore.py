"""The ``draft`` keys at rest: sealed versions, their retention, a listing without values.

docs/bank-drafts.md §5.  A ``draft`` key is a 32-byte symmetric secret (the
Code's HMAC key).  Each version is stored sealed under the keys passphrase
(the one that protects the ring's private keys, docs/architecture.md §7
"Keys"), with a maintained construction rather than a home-made one:

- **scrypt** (``cryptography``) derives a 32-byte key from the passphrase and
  a random 16-byte salt per version; its cost (``n``, ``r``, ``p``) is
  stored beside the value, so it can be raised for new versions later;
- **Fernet** (``cryptography``) seals the secret with that key: AES-128-CBC
  then HMAC-SHA256 over a versioned token with a fresh random IV.  It is
  authenticated, and the library makes the IV, so we own no nonce and no
  byte format (AES-GCM would leave both to us).  Fernet has no associated
  data, so the sealed plaintext starts with the version's id, and opening
  checks it: a value copied onto another entry is refused.

Retention differs from the ring's usual overlap (docs/bank-drafts.md §5): a
version stays *kept* (it still verifies Codes) until ``retain_until``, the
last ExpiryDate of the drafts issued under it, inclusive.  The current
version, and any version whose bound is not known yet, is always kept.

This module is pure: :func:`dumps` and :func:`loads` turn versions into the
TOML text of the store file and back, and the caller reads and writes the
file (0600, atomically) the way the key ring does.  Errors are
:class:`DraftKeyError` (a ``ConfigError``) naming the source and the entry,
never a byte of a secret.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import re
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Final

import tomli_w
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.clock import SHANGHAI
from gateway.drafts.code import DraftKey
from gateway.errors import ConfigError

KEY_BYTES: Final = 32
"""A new ``draft`` secret: as long as the SHA-256 output (RFC 2104 §3)."""

SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
"""Default scrypt cost for new versions: 32 MiB of memory, about 0.1 s per derivation here."""

MIN_SCRYPT_N: Final = 2**14
MAX_SCRYPT_N: Final = 2**20
"""A stored cost below the minimum is refused (a weakened file), above the maximum too (a file
that would make the daemon allocate gigabytes at start)."""

SALT_BYTES: Final = 16
FORMAT: Final = 1
"""The store file's ``format``; a reader refuses any other."""

DEFAULT_STORE_NAME: Final = "draft-keys.toml"

_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_PLAIN_TAG: Final = b"gateway-draft-key\x00"
_REQUIRED_KEYS: Final = ("id", "activate", "kdf", "n", "r", "p", "salt", "value")
_ENTRY_KEYS: Final = frozenset({*_REQUIRED_KEYS, "retain_until"})
_HEADER: Final = (
    "# Bank draft Code keys (docs/bank-drafts.md §5).  Each value is sealed under the\n"
    "# keys passphrase (scrypt + Fernet); list them with their retention, never their value.\n"
)


class DraftKeyError(ConfigError):
    """A store file or a sealed value was refused; the message names the entry, never a secret."""


@dataclass(frozen=True, slots=True)
class SealedVersion:
    """One stored version: when it signs, how long it is kept, and its sealed secret."""

    key_id: str
    activate: datetime
    retain_until: date | None
    salt: bytes = field(repr=False)
    n: int
    r: int
    p: int
    value: bytes = field(repr=False)  # the Fernet token


@dataclass(frozen=True, slots=True)
class DraftKeyListing:
    """What ``keys list`` shows of a version: no value (docs/bank-drafts.md §5)."""

    key_id: str
    activate: datetime
    retain_until: date | None
    state: str  # "active", "next", "kept" or "retired"


def check_key_id(key_id: str) -> str:
    """``key_id`` if it is ``[A-Za-z0-9][A-Za-z0-9._-]{0,31}``, else ``ValueError``."""
    if not _KEY_ID.fullmatch(key_id):
        raise ValueError(
            "a draft key id is 1-32 of [A-Za-z0-9._-], starting with a letter or digit"
        )
    return key_id


def new_secret() -> bytes:
    """A fresh random ``draft`` secret."""
    return secrets.token_bytes(KEY_BYTES)


def _fernet(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> Fernet:
    derived = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(
    key: DraftKey,
    passphrase: bytes,
    activate: datetime,
    retain_until: date | None = None,
    *,
    n: int = SCRYPT_N,
) -> SealedVersion:
    """``key`` sealed under ``passphrase``, signing from ``activate``."""
    check_key_id(key.key_id)
    if not passphrase:
        raise DraftKeyError("an empty passphrase cannot protect a draft key")
    if activate.tzinfo is None:
        raise ValueError("activate must carry a UTC offset")
    _check_cost(n, SCRYPT_R, SCRYPT_P, key.key_id)
    salt = secrets.token_bytes(SALT_BYTES)
    token = _fernet(passphrase, salt, n, SCRYPT_R, SCRYPT_P).encrypt(
        _PLAIN_TAG + key.key_id.encode("ascii") + b"\x00" + key.secret
    )
    return SealedVersion(key.key_id, activate, retain_until, salt, n, SCRYPT_R, SCRYPT_P, token)


def unseal(
    version: SealedVersion, passphrase: bytes | None, source: str = "draft keys"
) -> DraftKey:
    """The secret of ``version``; :class:`DraftKeyError` for a wrong passphrase or a moved value."""
    where = f"{source}: draft key {version.key_id}"
    if not passphrase:
        raise DraftKeyError(f"{where}: sealed, and no passphrase was given")
    fernet = _fernet(passphrase, version.salt, version.n, version.r, version.p)
    try:
        plain = fernet.decrypt(version.value)
    except InvalidToken:
        raise DraftKeyError(f"{where}: wrong passphrase, or the value is damaged") from None
    head = _PLAIN_TAG + version.key_id.encode("ascii") + b"\x00"
    if not plain.startswith(head):
        raise DraftKeyError(f"{where}: the sealed value belongs to another entry")
    try:
        return DraftKey(version.key_id, plain[len(head) :])
    except ValueError:
        raise DraftKeyError(f"{where}: the sealed secret is too short") from None


# ---------------------------------------------------------------- versions over time


def _today(now: datetime) -> date:
    return now.astimezone(SHANGHAI).date()


def _index(activations: Sequence[datetime], now: datetime) -> int:
    return max(0, bisect.bisect_right(activations, now) - 1)


def version_state(
    activations: Sequence[datetime],
    retain: Sequence[date | None],
    index: int,
    now: datetime,
) -> str:
    """``active``, ``next`` (not yet active), ``kept`` (still verifies) or ``retired``.

    The rule of :class:`~gateway.keys.ring.KeyRing` for the signer (latest
    ``activate <= now``, else the first), and docs/bank-drafts.md §5 for the
    rest: an earlier version is kept while today (Asia/Shanghai) is on or
    before its ``retain_until``, or while that bound is unknown.
    """
    current = _index(activations, now)
    if index == current:
        return "active"
    if index > current:
        return "next"
    until = retain[index]
    return "kept" if until is None or _today(now) <= until else "retired"


class DraftKeyRing:
    """Opened ``draft`` versions in activation order: a :class:`~gateway.drafts.code.DraftKeys`."""

    def __init__(self, keys: Sequence[DraftKey], versions: Sequence[SealedVersion]) -> None:
        if not keys or len(keys) != len(versions):
            raise ValueError("one opened key per version, at least one")
        _check_order(versions, "draft keys")
        self._keys = tuple(keys)
        self._acts = tuple(v.activate for v in versions)
        self._retain = tuple(v.retain_until for v in versions)

    @classmethod
    def open(
        cls, versions: Sequence[SealedVersion], passphrase: bytes | None, source: str = "draft keys"
    ) -> DraftKeyRing:
        """Unseal every version (a wrong passphrase fails on the first one)."""
        return cls([unseal(v, passphrase, source) for v in versions], versions)

    def current(self, now: datetime) -> DraftKey:
        """The version that makes new Codes at ``now``."""
        return self._keys[_index(self._acts, now)]

    def by_id(self, key_id: str) -> DraftKey | None:
        """The opened version ``key_id``, kept or not (None once it has been pruned)."""
        return next((k for k in self._keys if k.key_id == key_id), None)

    def kept(self, now: datetime) -> tuple[DraftKey, ...]:
        """The current version first, then every earlier one still kept at ``now``."""
        current = _index(self._acts, now)
        earlier = (
            self._keys[i]
            for i in range(current - 1, -1, -1)
            if version_state(self._acts, self._retain, i, now) == "kept"
        )
        return (self._keys[current], *earlier)


def list_versions(versions: Sequence[SealedVersion], now: datetime) -> tuple[DraftKeyListing, ...]:
    """Every version with its retention and state, and no value: no passphrase needed."""
    acts = [v.activate for v in versions]
    retain = [v.retain_until for v in versions]
    return tuple(
        DraftKeyListing(v.key_id, v.activate, v.retain_until, version_state(acts, retain, i, now))
        for i, v in enumerate(versions)
    )


def add_version(
    versions: Sequence[SealedVersion], new: SealedVersion, predecessor_retain_until: date
) -> tuple[SealedVersion, ...]:
    """``versions`` plus ``new``; the previous last version is kept until the given date.

    ``predecessor_retain_until`` is the last ExpiryDate a draft issued under
    the outgoing version can have (``gateway.drafts.dates.last_expiry_under``
    at ``new.activate``); an existing later bound is never lowered.
    """
    out = list(versions)
    if out:
        last = out[-1]
        out[-1] = replace(last, retain_until=_later(last.retain_until, predecessor_retain_until))
    out.append(new)
    _check_order(out, "draft keys")
    return tuple(out)


def extend_retention(
    versions: Sequence[SealedVersion], key_id: str, expiry: date
) -> tuple[SealedVersion, ...]:
    """Raise ``key_id``'s ``retain_until`` to ``expiry`` if that is later (never lowers it)."""
    if key_id not in {v.key_id for v in versions}:
        raise KeyError(key_id)
    return tuple(
        replace(v, retain_until=_later(v.retain_until, expiry)) if v.key_id == key_id else v
        for v in versions
    )


def prune(versions: Sequence[SealedVersion], now: datetime) -> tuple[SealedVersion, ...]:
    """``versions`` without the retired ones: their drafts have all expired."""
    states = list_versions(versions, now)
    return tuple(v for v, s in zip(versions, states, strict=True) if s.state != "retired")


def _later(a: date | None, b: date) -> date:
    return b if a is None or b > a else a


def _check_order(versions: Sequence[SealedVersion], source: str) -> None:
    for a, b in itertools.pairwise(versions):
        if not a.activate < b.activate:
            raise DraftKeyError(
                f"{source}: draft key {b.key_id}: activate must be later than {a.key_id}'s"
            )
    ids = [v.key_id for v in versions]
    if len(set(ids)) != len(ids):
        raise DraftKeyError(f"{source}: a draft key id is listed twice")


def _check_cost(n: int, r: int, p: int, where: str) -> None:
    if n & (n - 1) or not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N:
        raise DraftKeyError(
            f"{where}: scrypt n must be a power of two {MIN_SCRYPT_N}-{MAX_SCRYPT_N}"
        )
    if not 1 <= r <= 32 or not 1 <= p <= 16:
        raise DraftKeyError(f"{where}: scrypt r must be 1-32 and p 1-16")


# ---------------------------------------------------------------- the store file


def dumps(versions: Sequence[SealedVersion]) -> bytes:
    """The store file's TOML text (UTF-8): one ``[[draft]]`` table per version."""
    _check_order(versions, "draft keys")
    entries: list[dict[str, Any]] = []
    for v in versions:
        entry: dict[str, Any] = {"id": v.key_id, "activate": v.activate}
        if v.retain_until is not None:
            entry["retain_until"] = v.retain_until
        entry.update(
            kdf="scrypt",
            n=v.n,
            r=v.r,
            p=v.p,
            salt=base64.urlsafe_b64encode(v.salt).decode("ascii"),
            value=v.value.decode("ascii"),
        )
        entries.append(entry)
    return (_HEADER + tomli_w.dumps({"format": FORMAT, "draft": entries})).encode("utf-8")


def loads(data: bytes, source: str) -> tuple[SealedVersion, ...]:
    """Read and validate a store file's bytes; ``source`` names it in errors."""
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DraftKeyError(f"{source}: not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise DraftKeyError(f"{source}: not valid TOML: {exc}") from None
    for key in table:
        if key not in ("format", "draft"):
            raise DraftKeyError(f"{source}: {key}: unknown key")
    if table.get("format") != FORMAT:
        raise DraftKeyError(f"{source}: format: must be {FORMAT}")
    entries = table.get("draft")
    if not isinstance(entries, list) or not entries:
        raise DraftKeyError(f"{source}: draft: must be a non-empty array of tables ([[draft]])")
    versions = tuple(_entry(source, i, e) for i, e in enumerate(entries))
    _check_order(versions, source)
    return versions


def _entry(source: str, i: int, entry: object) -> SealedVersion:
    where = f"{source}: draft[{i}]"
    if not isinstance(entry, dict):
        raise DraftKeyError(f"{where}: must be a table")
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise DraftKeyError(f"{where}.{key}: unknown key")
    for key in _REQUIRED_KEYS:
        if key not in entry:
            raise DraftKeyError(f"{where}.{key}: missing")
    key_id = entry["id"]
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise DraftKeyError(f"{where}.id: must be 1-32 of [A-Za-z0-9._-]")
    activate = entry["activate"]
    if not isinstance(activate, datetime) or activate.tzinfo is None:
        raise DraftKeyError(f"{where}.activate: must be a date-time with a UTC offset")
    retain = entry.get("retain_until")
    if retain is not None and (not isinstance(retain, date) or isinstance(retain, datetime)):
        raise DraftKeyError(f"{where}.retain_until: must be a TOML date (YYYY-MM-DD)")
    if entry["kdf"] != "scrypt":
        raise DraftKeyError(f"{where}.kdf: must be scrypt")
    n, r, p = entry["n"], entry["r"], entry["p"]
    if not all(type(x) is int for x in (n, r, p)):
        raise DraftKeyError(f"{where}: n, r and p must be integers")
    _check_cost(n, r, p, where)
    salt = _b64(entry["salt"], f"{where}.salt")
    if len(salt) < SALT_BYTES:
        raise DraftKeyError(f"{where}.salt: at least {SALT_BYTES} bytes")
    value = entry["value"]
    if not isinstance(value, str) or not value.isascii() or not value:
        raise DraftKeyError(f"{where}.value: must be a Fernet token")
    _b64(value, f"{where}.value")
    return SealedVersion(key_id, activate, retain, salt, n, r, p, value.encode("ascii"))


def _b64(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise DraftKeyError(f"{where}: must be base64url text")
    try:
        return base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DraftKeyError(f"{where}: must be base64url text") from None


__all__ = [
    "DEFAULT_STORE_NAME",
    "FORMAT",
    "KEY_BYTES",
    "SCRYPT_N",
    "DraftKeyError",
    "DraftKeyListing",
    "DraftKeyRing",
    "SealedVersion",
    "add_version",
    "check_key_id",
    "dumps",
    "extend_retention",
    "list_versions",
    "loads",
    "new_secret",
    "prune",
    "seal",
    "unseal",
    "version_state",
]
