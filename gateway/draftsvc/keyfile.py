"""The ``draft`` key store file beside the key ring: open it, or make its first version.

docs/bank-drafts.md §5: the Code's HMAC keys are sealed under the keys
passphrase (scrypt + Fernet, :mod:`gateway.drafts.keystore`).  Without a
passphrase nothing can be sealed or opened, so bank drafts stay disabled
(DRAFT answers 1004 saying so) rather than falling back to a key in clear.
When the file does not exist yet, the daemon makes it with one version
activated now (docs/bank-drafts.md §5 says how a version is added).  A reload
(SIGHUP, ``gatewayctl reload``, the ``keys`` commands) opens the file again,
and refuses a file that has lost a version still kept: outstanding drafts'
Codes verify under it.
"""

from __future__ import annotations

import hmac
import os
from datetime import date, datetime
from pathlib import Path

import structlog

from gateway.drafts.code import DraftKey
from gateway.drafts.keystore import (
    DEFAULT_STORE_NAME,
    DraftKeyError,
    DraftKeyRing,
    SealedVersion,
    dumps,
    extend_retention,
    loads,
    new_secret,
    seal,
)

log = structlog.get_logger("gateway.drafts")


def store_path(keys_dir: Path) -> Path:
    """Where the sealed ``draft`` versions live: ``draft-keys.toml`` in the keys folder."""
    return keys_dir / DEFAULT_STORE_NAME


def write_store(path: Path, text: bytes) -> None:
    """Replace the store file atomically, readable by its owner only (0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def open_draft_keys(
    keys_dir: Path,
    passphrase: bytes | None,
    now: datetime,
    *,
    create: bool = True,
    disabled: list[str] | None = None,
    created: list[str] | None = None,
) -> DraftKeyRing | None:
    """The opened ``draft`` versions, or None when drafts cannot run (no passphrase).

    A missing store file is created with one version (``create``), activated
    at ``now``.  A file that fails to open raises its ``DraftKeyError``
    (a ``ConfigError``: one line naming the file, never a secret).  Why drafts
    are off goes to ``disabled`` when given (the daemon logs it once it has
    started: a start that fails prints one line and nothing else), else to the log.
    """

    def off(reason: str) -> None:
        if disabled is not None:
            disabled.append(reason)
        else:
            log.warning("drafts_disabled", reason=reason)

    path = store_path(keys_dir)
    if not passphrase:
        off("no keys passphrase to open the draft keys")
        return None
    if not path.exists():
        if not create:
            off(
                f"no {path.name}: make it with `gatewayctl keys draft-rotate` and give"
                " every node the same file"
            )
            return None
        key_id = f"draft-{now:%Y%m%d%H%M%S}"
        version = seal(DraftKey(key_id, new_secret()), passphrase, now)
        try:
            write_store(path, dumps((version,)))
        except OSError as exc:  # e.g. a read-only keys folder: drafts off, the rest serves
            off(f"cannot create {path.name}: {exc.strerror}")
            return None
        if created is not None:
            created.append(key_id)
        else:
            log.info("draft_key_created", key_id=key_id, path=path.name)
    versions = loads(path.read_bytes(), str(path))
    return DraftKeyRing.open(versions, passphrase, str(path))


def reopen_draft_keys(
    keys_dir: Path,
    passphrase: bytes | None,
    now: datetime,
    loaded: DraftKeyRing | None,
    expiry_of_today: date | None = None,
    *,
    create: bool = True,
) -> DraftKeyRing | None:
    """The ``draft`` versions as the file has them now, for a reload; raises to refuse it.

    With nothing ``loaded`` (drafts were off) this is the start's
    :func:`open_draft_keys`.  Otherwise no passphrase, a missing file, or a
    file without a version the ``loaded`` ring still keeps at ``now`` (or with
    another secret under its id) raises :class:`DraftKeyError`: the caller
    keeps ``loaded``, since the Codes of outstanding drafts verify under those
    versions (docs/bank-drafts.md §5).

    ``expiry_of_today`` is the ExpiryDate of a draft issued at ``now``.  The
    version the daemon has signed with up to ``now`` may have been retired in
    the file as of an earlier hand-over (a reload refused in between, or
    later than ``draft-rotate`` allowed for); its ``retain_until`` is then
    raised to that date, in the file as well when it can be written.
    """
    if loaded is None:
        return open_draft_keys(keys_dir, passphrase, now, create=create)
    path = store_path(keys_dir)
    if not passphrase:
        raise DraftKeyError(f"{path}: no keys passphrase to open the draft keys")
    if not path.exists():
        raise DraftKeyError(f"{path}: missing, and the loaded draft keys are still in use")
    versions = loads(path.read_bytes(), str(path))
    ring = DraftKeyRing.open(versions, passphrase, str(path))
    for key in loaded.kept(now):
        again = ring.by_id(key.key_id)
        if again is None:
            raise DraftKeyError(f"{path}: draft key {key.key_id} is gone, but it is still kept")
        if not hmac.compare_digest(again.secret, key.secret):
            raise DraftKeyError(f"{path}: draft key {key.key_id} has another secret than before")
    signer = loaded.current(now).key_id
    if expiry_of_today is not None and ring.current(now).key_id != signer:
        versions, ring = _keep_signer(path, versions, ring, signer, expiry_of_today)
    log.info("draft_keys_opened", versions=len(versions), current=ring.current(now).key_id)
    return ring


def _keep_signer(
    path: Path,
    versions: tuple[SealedVersion, ...],
    ring: DraftKeyRing,
    signer: str,
    expiry: date,
) -> tuple[tuple[SealedVersion, ...], DraftKeyRing]:
    """Keep ``signer`` until ``expiry`` at least: drafts it signed until now expire then."""
    bound = next(v.retain_until for v in versions if v.key_id == signer)
    if bound is None or bound >= expiry:
        return versions, ring
    versions = extend_retention(versions, signer, expiry)
    try:
        write_store(path, dumps(versions))
    except OSError as exc:  # e.g. a read-only keys folder: kept in memory until the next restart
        log.warning("draft_key_retention_not_written", key_id=signer, reason=exc.strerror)
    log.warning(
        "draft_key_retention_extended", key_id=signer, was=bound.isoformat(), now=expiry.isoformat()
    )
    keys = [ring.by_id(v.key_id) for v in versions]
    return versions, DraftKeyRing([k for k in keys if k is not None], versions)
