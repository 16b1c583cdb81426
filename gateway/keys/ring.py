"""The gateway's own keys and the clearing systems' certificates, with rotation.

docs/architecture.md §7 "Keys": a new key is loaded beside the old one, becomes
the signing key at its activation time, and the old certificate stays
trusted for verification until its overlap ends.  A ``KeyRing`` holds, per
role, the versions in activation order:

=================  ==========================================================
``response``       signs CorpLink responses (docs/protocol.md §5)
``clearing``       signs clearing messages (docs/clearing-link.md §3)
``tls``            the TLS server certificate and key (docs/protocol.md §1)
``clearing_peer``  the clearing systems' certificates, pinned (docs/clearing-link.md §3);
                   certificates only, no key
``swift_peer``     the bank's SWIFT interface's certificates, pinned
                   (docs/foreign-currency.md §4); certificates only, no key
=================  ==========================================================

Selection rules (the exact instants are tested):

- ``signer(role, now)`` is the version with the latest ``activate <= now``:
  a version signs from its activation instant on, inclusive.  Before the
  first activation the *first* version signs: a ring must always be able to
  sign, and the first version is the one the operator installed first.
- ``verifying_certs(role, now)`` is the current version's certificate plus
  every earlier version ``v[j]`` while ``now < v[j+1].activate + v[j+1].overlap``
  (exclusive end): ``overlap`` belongs to the *incoming* version and says how
  long its predecessor still verifies.  A version not yet active never
  verifies.

The ring file format (TOML, ``keys/README.md``) is validated completely on
load; every error is a ``ConfigError`` naming the file and the entry.  A
ring is immutable: a reload builds a new one and swaps it in (docs/architecture.md §7
principle 6).
"""

from __future__ import annotations

import bisect
import itertools
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.config import KeysConfig
from gateway.errors import ConfigError
from gateway.keys.files import (
    check_private_key_file,
    key_matches_cert,
    load_cert_file,
    load_encrypted_signing_key,
    load_private_key,
)
from gateway.keys.xmldsig import SigningKey

#: Roles a ring may hold (module docstring).
ROLES = ("response", "clearing", "tls", "clearing_peer", "swift_peer")
#: Roles that pin a peer's certificates (no key): they verify, never sign.
PEER_ROLES = frozenset({"clearing_peer", "swift_peer"})
#: Roles whose versions carry a private key.
KEYED_ROLES = frozenset({"response", "clearing", "tls"})
#: Roles whose key must fit the XMLDSig profile (docs/protocol.md §3: RSA >= 2048 or P-256).
PROFILE_ROLES = frozenset({"response", "clearing"})
#: Overlap when the ring file names none (how long a predecessor still verifies).
DEFAULT_OVERLAP = timedelta(days=7)
#: The ring file's name in the keys folder when the configuration names none.
DEFAULT_RING_NAME = "ring.toml"
#: Activation of a version built from the single-file configuration: always active.
ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)

_VERSION_KEYS = frozenset({"key", "cert", "activate", "overlap_days"})


@dataclass(frozen=True)
class KeyVersion:
    """One version of a role: files, activation, and the loaded material.

    ``overlap``: how long the *previous* version still verifies after this
    one activates.  ``signing_key`` is None for ``clearing_peer`` versions and
    for rings loaded without private keys (``with_keys=False``: listing).
    ``chain`` is every certificate of the certificate file(s) in order (for a
    signing role: signer first, then intermediates; for ``clearing_peer``:
    every pinned peer certificate); ``chain_files`` names the file of each.
    """

    role: str
    key_path: Path | None
    cert_path: Path
    activate: datetime
    overlap: timedelta
    signing_key: SigningKey | None
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    chain_files: tuple[Path, ...] = ()

    @property
    def pinned(self) -> tuple[x509.Certificate, ...]:
        """The certificates this version contributes to verification."""
        if self.role in PEER_ROLES:
            return self.chain or (self.cert,)
        return (self.cert,)


class KeyRing:
    """Versions per role, in activation order (see the module docstring)."""

    def __init__(
        self, roles: Mapping[str, Sequence[KeyVersion]], source: Path | None = None
    ) -> None:
        self.source = source
        self._roles: dict[str, tuple[KeyVersion, ...]] = {}
        self._acts: dict[str, tuple[datetime, ...]] = {}
        for role, versions in roles.items():
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}")
            if not versions:
                raise ValueError(f"role {role} has no version")
            acts = tuple(v.activate for v in versions)
            for a, b in itertools.pairwise(acts):
                if not a < b:
                    raise ValueError(f"role {role}: activation times must strictly increase")
            self._roles[role] = tuple(versions)
            self._acts[role] = acts

    # -- construction ---------------------------------------------------------
    @classmethod
    def load(
        cls,
        ring_path: Path,
        keys_dir: Path,
        passphrase: bytes | None,
        *,
        require_encrypted: bool = False,
        with_keys: bool = True,
    ) -> KeyRing:
        """Read and fully validate a ring file; ``ConfigError`` names the file and entry.

        File names in the ring resolve against ``keys_dir``.  ``with_keys=False``
        checks the key files' permissions but does not decrypt them (for
        ``gatewayctl keys list``, which has no passphrase).
        """
        try:
            with ring_path.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{ring_path}: cannot read key ring ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{ring_path}: not valid TOML: {exc}") from None
        loader = _RingLoader(ring_path, keys_dir, passphrase, require_encrypted, with_keys)
        return cls(loader.roles(data), source=ring_path)

    @classmethod
    def single(
        cls,
        role: str,
        material: SigningKey | Sequence[x509.Certificate],
        *,
        cert_path: Path,
        key_path: Path | None = None,
    ) -> KeyRing:
        """A ring with one always-active version of ``role`` (the pre-ring configuration)."""
        if isinstance(material, SigningKey):
            key: SigningKey | None = material
            chain = material.chain
        else:
            key, chain = None, tuple(material)
        if not chain:
            raise ValueError(f"role {role}: no certificate")
        version = KeyVersion(
            role=role,
            key_path=key_path,
            cert_path=cert_path,
            activate=ALWAYS,
            overlap=timedelta(0),
            signing_key=key,
            cert=chain[0],
            chain=chain,
            chain_files=(cert_path,) * len(chain),
        )
        return cls({role: (version,)})

    def with_roles(self, other: KeyRing) -> KeyRing:
        """This ring plus the roles of ``other`` that this ring lacks."""
        roles = dict(other._roles)
        roles.update(self._roles)
        return KeyRing(roles, source=self.source)

    # -- queries ----------------------------------------------------------------
    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in ROLES if r in self._roles)

    def versions(self, role: str) -> tuple[KeyVersion, ...]:
        """All versions of ``role`` in activation order; ``KeyError`` for an absent role."""
        return self._roles[role]

    def _index(self, role: str, now: datetime) -> int:
        return max(0, bisect.bisect_right(self._acts[role], now) - 1)

    def current(self, role: str, now: datetime) -> KeyVersion:
        """The version in force at ``now`` (latest ``activate <= now``; else the first)."""
        return self._roles[role][self._index(role, now)]

    def signer(self, role: str, now: datetime) -> SigningKey:
        """The signing key of the current version (module docstring for the rule)."""
        version = self.current(role, now)
        if version.signing_key is None:
            raise ValueError(f"role {role} has no private key loaded")
        return version.signing_key

    def verifying_certs(self, role: str, now: datetime) -> tuple[x509.Certificate, ...]:
        """Current certificate(s), then every predecessor still inside its overlap."""
        versions = self._roles[role]
        i = self._index(role, now)
        out = list(versions[i].pinned)
        for j in range(i - 1, -1, -1):
            nxt = versions[j + 1]
            if now < nxt.activate + nxt.overlap:
                out.extend(c for c in versions[j].pinned if c not in out)
        return tuple(out)

    def state(self, role: str, index: int, now: datetime) -> str:
        """``active``, ``next`` (not yet active), ``overlap`` (still verifies) or ``retired``."""
        versions = self._roles[role]
        current = self._index(role, now)
        if index == current:
            return "active"
        if index > current:
            return "next"
        nxt = versions[index + 1]
        return "overlap" if now < nxt.activate + nxt.overlap else "retired"

    def next_change(self, now: datetime) -> datetime | None:
        """The next instant after ``now`` at which a signer or a verifying set changes.

        The daemon schedules a swap of the TLS context (and a metrics update)
        then; None when nothing is scheduled.
        """
        instants: list[datetime] = []
        for versions in self._roles.values():
            for v in versions[1:]:
                instants.extend(t for t in (v.activate, v.activate + v.overlap) if t > now)
        return min(instants, default=None)


# ------------------------------------------------------------------- ring files


def _parse_instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


def _days(value: object) -> timedelta | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return timedelta(days=value)


class _RingLoader:
    """Validates a parsed ring file; errors name the file and ``role[index].key``."""

    def __init__(
        self,
        path: Path,
        keys_dir: Path,
        passphrase: bytes | None,
        require_encrypted: bool,
        with_keys: bool,
    ) -> None:
        self.path = path
        self.keys_dir = keys_dir
        self.passphrase = passphrase
        self.require_encrypted = require_encrypted
        self.with_keys = with_keys

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}")

    def overlaps(self, value: object) -> dict[str, timedelta]:
        """Top-level ``overlap_days``: a number for every role, or a table per role."""
        out = dict.fromkeys(ROLES, DEFAULT_OVERLAP)
        if value is None:
            return out
        if isinstance(value, dict):
            default = out["response"]
            if "default" in value:
                d = _days(value["default"])
                if d is None:
                    raise self.error("overlap_days.default", "must be a number of days >= 0")
                default = d
            out = dict.fromkeys(ROLES, default)
            for key, raw in value.items():
                if key == "default":
                    continue
                if key not in ROLES:
                    raise self.error(f"overlap_days.{key}", "unknown role")
                d = _days(raw)
                if d is None:
                    raise self.error(f"overlap_days.{key}", "must be a number of days >= 0")
                out[key] = d
            return out
        d = _days(value)
        if d is None:
            raise self.error("overlap_days", "must be a number of days >= 0 or a table per role")
        return dict.fromkeys(ROLES, d)

    def roles(self, data: dict[str, Any]) -> dict[str, tuple[KeyVersion, ...]]:
        for key in data:
            if key not in ROLES and key != "overlap_days":
                raise self.error(key, f"unknown key (roles: {', '.join(ROLES)})")
        overlaps = self.overlaps(data.get("overlap_days"))
        out: dict[str, tuple[KeyVersion, ...]] = {}
        for role in ROLES:
            if role not in data:
                continue
            entries = data[role]
            if not isinstance(entries, list) or not entries:
                raise self.error(role, f"must be a non-empty array of tables ([[{role}]])")
            versions: list[KeyVersion] = []
            for i, entry in enumerate(entries):
                version = self.version(role, i, entry, overlaps[role])
                if versions and not versions[-1].activate < version.activate:
                    raise self.error(
                        f"{role}[{i}].activate",
                        "must be later than the previous version's "
                        "(versions are listed in activation order; two cannot activate at once)",
                    )
                if versions:
                    self.check_validity(f"{role}[{i}]", version)
                versions.append(version)
            out[role] = tuple(versions)
        return out

    def check_validity(self, where: str, v: KeyVersion) -> None:
        """A later version's certificate must be valid at its own activation instant."""
        if not v.cert.not_valid_before_utc <= v.activate <= v.cert.not_valid_after_utc:
            raise self.error(
                f"{where}.activate",
                "the certificate is not valid at this activation time "
                f"(valid {v.cert.not_valid_before_utc:%Y-%m-%d} to "
                f"{v.cert.not_valid_after_utc:%Y-%m-%d})",
            )

    def file(self, where: str, value: object) -> Path:
        if not isinstance(value, str) or not value:
            raise self.error(where, "must be a non-empty file name")
        p = Path(value)
        p = p if p.is_absolute() else self.keys_dir / p
        if not p.exists():
            raise self.error(where, f"file {p} does not exist")
        return p

    def version(self, role: str, i: int, entry: object, overlap: timedelta) -> KeyVersion:
        where = f"{role}[{i}]"
        if not isinstance(entry, dict):
            raise self.error(where, "must be a table")
        for key in entry:
            if key not in _VERSION_KEYS:
                raise self.error(f"{where}.{key}", "unknown key")
        keyed = role in KEYED_ROLES
        if keyed and "key" not in entry:
            raise self.error(f"{where}.key", "missing")
        if not keyed and "key" in entry:
            raise self.error(f"{where}.key", f"a {role} version holds certificates only")
        for key in ("cert", "activate"):
            if key not in entry:
                raise self.error(f"{where}.{key}", "missing")
        activate = _parse_instant(entry["activate"])
        if activate is None:
            raise self.error(f"{where}.activate", "must be an ISO 8601 instant with a UTC offset")
        if "overlap_days" in entry:
            d = _days(entry["overlap_days"])
            if d is None:
                raise self.error(f"{where}.overlap_days", "must be a number of days >= 0")
            overlap = d
        raw_certs = entry["cert"]
        if isinstance(raw_certs, list) and not keyed:
            if not raw_certs:
                raise self.error(f"{where}.cert", "must name at least one file")
            cert_paths = [self.file(f"{where}.cert[{j}]", c) for j, c in enumerate(raw_certs)]
        else:
            cert_paths = [self.file(f"{where}.cert", raw_certs)]
        chain: list[x509.Certificate] = []
        chain_files: list[Path] = []
        for p in cert_paths:
            certs = load_cert_file(p)
            chain.extend(certs)
            chain_files.extend([p] * len(certs))
        key_path = self.file(f"{where}.key", entry["key"]) if keyed else None
        signing_key = self.material(role, key_path, cert_paths[0], chain)
        return KeyVersion(
            role=role,
            key_path=key_path,
            cert_path=cert_paths[0],
            activate=activate,
            overlap=overlap,
            signing_key=signing_key,
            cert=chain[0],
            chain=tuple(chain),
            chain_files=tuple(chain_files),
        )

    def material(
        self, role: str, key_path: Path | None, cert_path: Path, chain: list[x509.Certificate]
    ) -> SigningKey | None:
        return load_role_key(
            role,
            key_path,
            cert_path,
            chain,
            self.passphrase,
            require_encrypted=self.require_encrypted,
            with_keys=self.with_keys,
        )


def load_role_key(
    role: str,
    key_path: Path | None,
    cert_path: Path,
    chain: Sequence[x509.Certificate],
    passphrase: bytes | None,
    *,
    require_encrypted: bool,
    with_keys: bool,
) -> SigningKey | None:
    """Load and check the private key of one version (None for peers / ``with_keys=False``).

    Response and clearing keys must fit the signature profile; a TLS key
    only has to be RSA or EC and match its certificate.
    """
    if key_path is None:
        return None
    check_private_key_file(key_path)
    if not with_keys:
        return None
    if role in PROFILE_ROLES:
        return load_encrypted_signing_key(
            key_path, cert_path, passphrase, require_encrypted=require_encrypted
        )
    key = load_private_key(key_path, passphrase, require_encrypted=require_encrypted)
    if not key_matches_cert(key, chain[0]):
        raise ConfigError(f"{cert_path}: first certificate does not match key {key_path.name}")
    return SigningKey(key, tuple(chain))


# ------------------------------------------------------------ from the config


def single_files_ring(
    roles: Mapping[str, tuple[Path | None, Sequence[Path]]],
    passphrase: bytes | None,
    *,
    require_encrypted: bool = False,
    with_keys: bool = True,
) -> KeyRing:
    """A ring from the pre-ring configuration: per role (key path or None, cert paths).

    ``clearing_peer`` takes certificate files only (key None) and may name
    several, one per clearing system.
    """
    versions: dict[str, tuple[KeyVersion, ...]] = {}
    for role, (key_path, cert_paths) in roles.items():
        chain: list[x509.Certificate] = []
        files: list[Path] = []
        for p in cert_paths:
            certs = load_cert_file(p)
            chain.extend(certs)
            files.extend([p] * len(certs))
        if not chain:
            raise ConfigError(f"role {role}: no certificate file configured")
        kp = key_path if role in KEYED_ROLES else None
        key = load_role_key(
            role,
            kp,
            cert_paths[0],
            chain,
            passphrase,
            require_encrypted=require_encrypted,
            with_keys=with_keys,
        )
        versions[role] = (
            KeyVersion(
                role=role,
                key_path=kp,
                cert_path=cert_paths[0],
                activate=ALWAYS,
                overlap=timedelta(0),
                signing_key=key,
                cert=chain[0],
                chain=tuple(chain),
                chain_files=tuple(files),
            ),
        )
    return KeyRing(versions)


def ring_from_config(
    keys: KeysConfig,
    keys_dir: Path,
    passphrase: bytes | None,
    *,
    require_encrypted: bool = False,
    with_keys: bool = True,
    ring_name: str | None = None,
    roles: Iterable[str] = ROLES,
) -> KeyRing:
    """The ring file when it exists, with the single-file keys for the roles it lacks.

    ``keys`` is a ``gateway.config.KeysConfig``; ``ring_name`` overrides its
    ``ring`` key (default ``ring.toml``; empty: no ring file, single files only).
    So a configuration without a ring keeps working unchanged.
    """
    name = ring_name if ring_name is not None else str(getattr(keys, "ring", DEFAULT_RING_NAME))

    def path(n: str) -> Path:
        p = Path(n)
        return p if p.is_absolute() else keys_dir / p

    wanted = tuple(roles)
    ring: KeyRing | None = None
    if name and path(name).exists():
        ring = KeyRing.load(
            path(name),
            keys_dir,
            passphrase,
            require_encrypted=require_encrypted,
            with_keys=with_keys,
        )
    have = set(ring.roles) if ring is not None else set()
    singles: dict[str, tuple[Path | None, Sequence[Path]]] = {}
    table = {
        "response": (keys.response_key, (keys.response_cert,)),
        "clearing": (keys.clearing_key, (keys.clearing_cert,)),
        "tls": (keys.tls_key, (keys.tls_cert,)),
        "clearing_peer": ("", tuple(keys.clearing_peer_certs)),
        "swift_peer": ("", tuple(keys.swift_peer_certs)),
    }
    for role in wanted:
        if role in have:
            continue
        key_name, cert_names = table[role]
        if not cert_names:
            continue
        singles[role] = (path(key_name) if key_name else None, [path(c) for c in cert_names])
    base = (
        single_files_ring(
            singles, passphrase, require_encrypted=require_encrypted, with_keys=with_keys
        )
        if singles
        else KeyRing({})
    )
    return ring.with_roles(base) if ring is not None else base


__all__ = [
    "ALWAYS",
    "DEFAULT_OVERLAP",
    "DEFAULT_RING_NAME",
    "KEYED_ROLES",
    "PEER_ROLES",
    "ROLES",
    "KeyRing",
    "KeyVersion",
    "load_cert_file",
    "load_role_key",
    "ring_from_config",
    "single_files_ring",
]
