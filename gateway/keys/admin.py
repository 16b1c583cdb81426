"""What security staff do to the keys folder: revoke, import a CRL, enrol, rotate, list.

Each operation is a pure file operation on the keys folder, all or nothing
(docs/architecture.md §7, principle 6): the new file is written to a temp file beside the
old one, fsynced, validated with the very loader the daemon uses, and only
then renamed over the old one; on any failure the old file stays.  The
running daemon picks the change up on its next reload (``gatewayctl keys``
asks for one; SIGHUP does the same).

Refusals are ``AdminError`` (a ``ConfigError``) with a message for people;
none ever prints key material.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import ConfigError, GatewayError
from gateway.keys.devpki import BACKDATE, DevPki, renew_certificate
from gateway.keys.enrolment import Registry
from gateway.keys.files import (
    atomic_write,
    check_private_key_file,
    folder_lock,
    load_cert_file,
    load_crl,
    write_private_key,
)
from gateway.keys.kinds import KindPolicy
from gateway.keys.ring import KEYED_ROLES, PEER_ROLES, ROLES, KeyRing, KeyVersion
from gateway.keys.trust import TrustStore, fingerprint, read_deny_list
from gateway.model import CredentialKind

_FP_RE = re.compile(r"^[0-9a-f]{64}$")
#: Longest revocation reason kept in the deny list comment.
MAX_REASON = 200
DENY_LIST_HEADER = (
    "# Gateway deny list: one lowercase hex SHA-256 certificate fingerprint per line.\n"
)


P = ParamSpec("P")
R = TypeVar("R")


class AdminError(ConfigError):
    """A key operation refused; the message says why, for people."""


def _serialised(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` under the folder lock of its first argument (a folder, or a file in one).

    Every operation here reads, changes and rewrites a file: two operators at
    once must not lose each other's change.
    """

    @functools.wraps(func)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        first = Path(str(args[0]))
        with folder_lock(first if first.is_dir() else first.parent):
            return func(*args, **kwargs)

    return locked


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now


def _resolve(keys_dir: Path, name: str) -> Path:
    if not keys_dir.is_dir():
        raise AdminError(f"{keys_dir}: the keys folder does not exist")
    p = Path(name)
    return p if p.is_absolute() else keys_dir / p


def normalise_fingerprint(text: str) -> str | None:
    """A SHA-256 fingerprint as the deny list and registry keep it, or None."""
    fp = text.strip().replace(":", "").lower()
    return fp if _FP_RE.match(fp) else None


def _first_cert(path: Path) -> x509.Certificate:
    return load_cert_file(path)[0]


def _keep_mode(path: Path, default: int = 0o644) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return default


def _leading_comments(text: str) -> str:
    """The comment block a file starts with (kept when a TOML file is rewritten)."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n\n" if lines else ""


# ----------------------------------------------------------------------- revoke


@_serialised
def revoke(
    keys_dir: Path,
    deny_list_name: str,
    cert_path_or_fingerprint: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> str:
    """Add a certificate to the deny list (docs/protocol.md §3: 2004); idempotent.

    Takes a certificate file (PEM or DER) or a SHA-256 fingerprint (colons
    and upper case accepted).  Appends ``fp  # revoked <instant>: <reason>``
    and returns the fingerprint; a fingerprint already listed is left as is.
    """
    path = Path(cert_path_or_fingerprint)
    if path.is_file():
        fp = fingerprint(_first_cert(path))
    else:
        maybe = normalise_fingerprint(cert_path_or_fingerprint)
        if maybe is None:
            raise AdminError(
                f"{cert_path_or_fingerprint!r} is neither a certificate file "
                "nor a SHA-256 fingerprint"
            )
        fp = maybe
    deny = _resolve(keys_dir, deny_list_name)
    old = deny.read_text(encoding="utf-8") if deny.exists() else DENY_LIST_HEADER
    if deny.exists() and fp in read_deny_list(deny):  # also refuses a corrupt list
        return fp
    note = " ".join(reason.split())[:MAX_REASON] or "no reason given"
    stamp = _now(now).isoformat(timespec="seconds")
    text = old if old.endswith("\n") else old + "\n"
    text += f"{fp}  # revoked {stamp}: {note}\n"
    atomic_write(deny, text.encode(), _keep_mode(deny), validate=read_deny_list)
    return fp


# --------------------------------------------------------------------- CRLs


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    try:
        return crl.is_signature_valid(key)
    except (TypeError, ValueError):
        return False


def _check_newer(
    new: x509.CertificateRevocationList, old: x509.CertificateRevocationList, target: Path
) -> bool:
    """Refuse an older CRL (RFC 5280 §5.2.3: CRL numbers increase); False when identical."""
    if new.public_bytes(serialization.Encoding.DER) == old.public_bytes(serialization.Encoding.DER):
        return False
    if new.last_update_utc < old.last_update_utc:
        raise AdminError(
            f"CRL is older than the installed {target.name} (lastUpdate "
            f"{new.last_update_utc:%Y-%m-%d %H:%M} < {old.last_update_utc:%Y-%m-%d %H:%M})"
        )
    n_new, n_old = crl_number(new), crl_number(old)
    if n_new is not None and n_old is not None and n_new <= n_old:
        raise AdminError(f"CRL number {n_new} is not above the installed {target.name}'s {n_old}")
    if (n_new is None or n_old is None) and new.last_update_utc == old.last_update_utc:
        raise AdminError(f"CRL has the same lastUpdate as the installed {target.name}")
    return True


@_serialised
def import_crl(
    keys_dir: Path,
    crl_file: Path,
    ca_paths: Sequence[Path],
    crl_names: Sequence[str] = ("client-crl.pem",),
    *,
    now: datetime | None = None,
) -> Path:
    """Validate a CRL and install it under the configured CRL name of its issuer.

    Refused (old file kept): not PEM/DER; issuer not a configured client CA or
    signature not by it; already past its nextUpdate (it would make every
    check fail closed); older than the installed one (lastUpdate, CRL
    number).  The target is the configured CRL file whose current CRL has the
    same issuer, else the only configured CRL file that does not exist yet.
    Re-importing the installed CRL changes nothing.
    """
    crl = load_crl(crl_file)
    cas = [c for p in ca_paths for c in load_cert_file(p)]
    named = [ca for ca in cas if ca.subject == crl.issuer]
    issuer = crl.issuer.rfc4514_string()
    if not named:
        raise AdminError(f"{crl_file}: issuer {issuer} is not a configured client CA")
    if not any(_signed_by(crl, ca) for ca in named):
        raise AdminError(f"{crl_file}: signature does not verify with the client CA {issuer}")
    nxt = crl.next_update_utc
    if nxt is not None and nxt < _now(now):
        raise AdminError(f"{crl_file}: already past its nextUpdate {nxt:%Y-%m-%d %H:%M} UTC")
    paths = [_resolve(keys_dir, n) for n in crl_names]
    target: Path | None = None
    old: x509.CertificateRevocationList | None = None
    for p in paths:
        if p.exists():
            current = load_crl(p)
            if current.issuer == crl.issuer:
                target, old = p, current
                break
    if target is None:
        missing = [p for p in paths if not p.exists()]
        if len(missing) != 1:
            raise AdminError(
                f"no configured CRL file (keys.crls) holds a CRL of {issuer}; "
                "add a file name for it to keys.crls"
            )
        target = missing[0]
    if old is not None and not _check_newer(crl, old, target):
        return target
    pem = target.read_bytes().startswith(b"-----BEGIN") if old is not None else None
    if pem is None:
        pem = target.suffix.lower() == ".pem"
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    others = [p for p in paths if p != target and p.exists()]

    def validate(tmp: Path) -> None:
        TrustStore.from_files(list(ca_paths), [*others, tmp])

    atomic_write(target, crl.public_bytes(encoding), _keep_mode(target), validate=validate)
    return target


# ------------------------------------------------------------------- enrolment


@dataclass(frozen=True)
class EnrolResult:
    corp_id: str
    oper_id: str
    fingerprint: str
    kind: CredentialKind | None
    changed: bool


def _read_registry(path: Path) -> tuple[str, dict[str, Any]]:
    if not path.exists():
        return "", {"corporate": []}
    text = path.read_text(encoding="utf-8")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _write_registry(path: Path, old_text: str, data: dict[str, Any]) -> None:
    text = _leading_comments(old_text) + tomli_w.dumps(data)
    atomic_write(path, text.encode(), _keep_mode(path), validate=Registry.load)


def _find(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((i for i in items if i.get(key) == value), None)


def _add_unique(target: list[str], values: Sequence[str]) -> bool:
    added = [v for v in values if v not in target]
    target.extend(added)
    return bool(added)


@_serialised
def enrol(
    registry_path: Path,
    corp_id: str,
    oper_id: str,
    cert_path: Path,
    kind_hint: CredentialKind | None = None,
    accounts: Sequence[str] = (),
    networks: Sequence[str] = (),
    *,
    name: str | None = None,
    trust: TrustStore | None = None,
    kinds: KindPolicy | None = None,
    now: datetime | None = None,
) -> EnrolResult:
    """Enrol a certificate for CorpId/OperId (docs/protocol.md §6), validated, atomic, idempotent.

    With ``trust`` the certificate must pass the same chain, validity and
    revocation checks as a request (2002–2004) — enrolling a certificate the
    gateway would refuse helps nobody.  With ``kinds`` its policy must map to
    a credential kind, and to ``kind_hint`` when given.  A new corporate
    needs ``accounts`` and ``networks``; for an existing one they are added.
    """
    cert = _first_cert(cert_path)
    fp = fingerprint(cert)
    if trust is not None:
        try:
            trust.check([cert], _now(now))
        except GatewayError as exc:
            raise AdminError(f"{cert_path}: {exc.ret_msg} ({exc.code.value})") from None
    kind = kinds.kind_of(cert) if kinds is not None else None
    if kinds is not None and kind is None:
        raise AdminError(f"{cert_path}: certificate policy maps to no credential kind")
    if kind_hint is not None and kind is not None and kind is not kind_hint:
        raise AdminError(f"{cert_path}: certificate is of kind {kind.value}, not {kind_hint.value}")
    text, data = _read_registry(registry_path)
    corps = data.setdefault("corporate", [])
    corp = _find(corps, "corp_id", corp_id)
    changed = False
    if corp is None:
        if not accounts or not networks:
            raise AdminError(
                f"corporate {corp_id} is not enrolled yet: give its --account and --network"
            )
        corp = {
            "corp_id": corp_id,
            "name": name or corp_id,
            "accounts": list(accounts),
            "networks": list(networks),
        }
        corps.append(corp)
        changed = True
    else:
        changed |= _add_unique(corp.setdefault("accounts", []), accounts)
        changed |= _add_unique(corp.setdefault("networks", []), networks)
    ops = corp.setdefault("operator", [])
    op = _find(ops, "oper_id", oper_id)
    if op is None:
        ops.append({"oper_id": oper_id, "fingerprints": [fp]})
        changed = True
    else:
        known = [normalise_fingerprint(f) for f in op.setdefault("fingerprints", [])]
        if fp not in known:
            op["fingerprints"].append(fp)
            changed = True
    if changed:
        _write_registry(registry_path, text, data)
    return EnrolResult(corp_id, oper_id, fp, kind, changed)


@_serialised
def unenrol(
    registry_path: Path, corp_id: str, oper_id: str, fingerprint: str | None = None
) -> tuple[str, ...]:
    """Remove one fingerprint (or, without one, the whole operator); returns those removed.

    An operator left without fingerprints is removed (the registry requires
    at least one).  The corporate itself stays: its accounts and networks are
    the bank's configuration, not a credential.
    """
    text, data = _read_registry(registry_path)
    corp = _find(data.get("corporate", []), "corp_id", corp_id)
    if corp is None:
        raise AdminError(f"corporate {corp_id} is not enrolled")
    ops = corp.get("operator", [])
    op = _find(ops, "oper_id", oper_id)
    if op is None:
        raise AdminError(f"operator {oper_id} of {corp_id} is not enrolled")
    fps = [normalise_fingerprint(f) or f for f in op.get("fingerprints", [])]
    if fingerprint is None:
        removed = tuple(fps)
        ops.remove(op)
    else:
        fp = normalise_fingerprint(fingerprint)
        if fp is None or fp not in fps:
            raise AdminError(f"fingerprint is not enrolled for {corp_id}/{oper_id}")
        removed = (fp,)
        op["fingerprints"] = [f for f in fps if f != fp]
        if not op["fingerprints"]:
            ops.remove(op)
    if not ops:
        corp.pop("operator", None)
    _write_registry(registry_path, text, data)
    return removed


# ------------------------------------------------------------------- rotation


def _toml_value(value: str | list[str]) -> str:
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _ring_entry(
    role: str,
    key: str | None,
    cert: str | list[str],
    activate: datetime,
    overlap: float | None,
) -> str:
    lines = ["", f"[[{role}]]"]
    if key is not None:
        lines.append(f"key = {_toml_value(key)}")
    lines.append(f"cert = {_toml_value(cert)}")
    lines.append(f"activate = {activate.isoformat()}")
    if overlap is not None:
        lines.append(f"overlap_days = {overlap}")
    return "\n".join(lines) + "\n"


def seed_ring(ring_path: Path, ring: KeyRing) -> None:
    """Write a ring file from a ring built from single files (before the first rotation).

    Each role's version activates at its certificate's notBefore.
    """
    base = ring_path.parent

    def name(p: Path) -> str:
        return p.name if p.parent == base else str(p)

    text = "# Key ring (format: keys/README.md), seeded from the single-file key configuration.\n"
    for role in ring.roles:
        for v in ring.versions(role):
            files = [name(p) for p in dict.fromkeys(v.chain_files or (v.cert_path,))]
            cert: str | list[str] = files if len(files) > 1 else files[0]
            key = name(v.key_path) if v.key_path is not None else None
            text += _ring_entry(role, key, cert, v.cert.not_valid_before_utc, None)
    atomic_write(ring_path, text.encode())


def _new_names(keys_dir: Path, first: KeyVersion, activate: datetime) -> tuple[Path, Path]:
    stem = f"{first.cert_path.stem}-{activate.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    key, cert = keys_dir / f"{stem}.key", keys_dir / f"{stem}.pem"
    for p in (key, cert):
        if p.exists():
            raise AdminError(f"{p} already exists: a version with this activation was made before")
    return key, cert


@_serialised
def rotate(
    keys_dir: Path,
    ring_name: str,
    role: str,
    *,
    activate: datetime,
    overlap_days: float | None = None,
    passphrase: bytes | None = None,
    key_file: Path | None = None,
    cert_file: Path | None = None,
    require_encrypted: bool = False,
    now: datetime | None = None,
) -> KeyVersion:
    """Add a new version of ``role`` to the ring, active from ``activate``.

    Production (``cert_file`` given): import the key and certificate the
    bank's CA issued (``clearing_peer``: certificate only); they must match,
    the key must be encrypted when ``require_encrypted``, and the certificate
    valid at ``activate``.  Dev PKI (no files): a new key and a certificate
    like the current one, signed by the dev bank CA (``server-ca``).  The
    activation must lie in the future and after the latest version's; the
    ring is validated whole (keys decrypted and matched) before it is swapped.
    """
    if role not in ROLES:
        raise AdminError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if activate.tzinfo is None:
        raise AdminError("the activation time needs a UTC offset, e.g. 2027-01-01T00:00:00+08:00")
    now_ = _now(now)
    if activate <= now_:
        raise AdminError(f"activation {activate.isoformat()} is not in the future")
    ring_path = _resolve(keys_dir, ring_name)
    if not ring_path.exists():
        raise AdminError(f"{ring_path}: no key ring file (seed one first)")
    ring = KeyRing.load(ring_path, keys_dir, passphrase, with_keys=False)
    if role not in ring.roles:
        raise AdminError(f"{ring_path}: the ring has no {role} version to rotate from")
    versions = ring.versions(role)
    if activate <= versions[-1].activate:
        raise AdminError(
            f"activation must be after the latest {role} version's ({versions[-1].activate})"
        )
    keyed = role in KEYED_ROLES
    key_path, cert_path = _new_names(keys_dir, versions[0], activate)
    created: list[Path] = []
    try:
        if cert_file is not None:
            if keyed and key_file is None:
                raise AdminError(f"role {role} needs --key with --cert")
            if not keyed and key_file is not None:
                raise AdminError(f"{role} versions are certificates only: no --key")
            cert = _first_cert(cert_file)
            shutil.copyfile(cert_file, cert_path)
            created.append(cert_path)
            if key_file is not None:
                check_private_key_file(key_file)
                atomic_write(key_path, key_file.read_bytes(), 0o600)
                created.append(key_path)
        elif key_file is not None:
            raise AdminError("--key needs --cert")
        else:
            if require_encrypted:
                raise AdminError(
                    "generating keys is for the dev PKI only; "
                    "import the key and certificate the bank's CA issued (--key, --cert)"
                )
            if not (keys_dir / "server-ca.key").exists():
                raise AdminError(
                    f"{keys_dir} holds no dev PKI (server-ca.key): give --key and --cert"
                )
            pki = DevPki.open(keys_dir)
            key, cert = renew_certificate(
                pki,
                versions[-1].cert,
                not_before=now_ - BACKDATE,
                not_after=activate + timedelta(days=pki.days),
            )
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            created.append(cert_path)
            if keyed:
                write_private_key(key, key_path, passphrase)
                created.append(key_path)
        if not cert.not_valid_before_utc <= activate <= cert.not_valid_after_utc:
            raise AdminError("the new certificate is not valid at its activation time")
        old = ring_path.read_text(encoding="utf-8")
        entry = _ring_entry(
            role, key_path.name if keyed else None, cert_path.name, activate, overlap_days
        )
        text = (old if old.endswith("\n") else old + "\n") + entry

        def validate(tmp: Path) -> None:
            KeyRing.load(tmp, keys_dir, passphrase, require_encrypted=require_encrypted)

        atomic_write(ring_path, text.encode(), _keep_mode(ring_path), validate=validate)
    except BaseException:
        for p in created:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        raise
    return KeyRing.load(ring_path, keys_dir, None, with_keys=False).versions(role)[-1]


# ---------------------------------------------------------------------- list


def _days_left(not_after: datetime, now: datetime) -> int:
    return int((not_after - now).total_seconds() // 86_400)


def _cert_row(
    kind: str, name: str, cert: x509.Certificate, state: str, now: datetime
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "subject": cert.subject.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "fingerprint": fingerprint(cert),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": _days_left(cert.not_valid_after_utc, now),
        "state": state if now <= cert.not_valid_after_utc else "expired",
    }


def list_keys(
    ring: KeyRing,
    client_ca_paths: Sequence[Path] = (),
    crl_paths: Sequence[Path] = (),
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every certificate and CRL the gateway holds, with expiry and state.

    Ring versions: ``active`` / ``next`` / ``overlap`` / ``retired``; client
    CAs: ``trusted``; CRLs: ``current`` or ``stale`` (past nextUpdate), with
    the CRL number as serial and nextUpdate as not_after.  Any certificate
    past its notAfter shows ``expired``.
    """
    now_ = _now(now)
    rows: list[dict[str, Any]] = []
    for role in ring.roles:
        for i, v in enumerate(ring.versions(role)):
            state = ring.state(role, i, now_)
            pairs = [(v.cert_path, v.cert)]
            if role in PEER_ROLES and v.chain_files:
                pairs = list(zip(v.chain_files, v.chain, strict=True))
            for path, cert in pairs:
                row = _cert_row(role, path.name, cert, state, now_)
                row["activate"] = v.activate.isoformat() if v.activate.year > 1970 else ""
                rows.append(row)
    for path in client_ca_paths:
        for cert in load_cert_file(path):
            rows.append(_cert_row("client_ca", path.name, cert, "trusted", now_))
    for path in crl_paths:
        if not path.exists():
            rows.append({"kind": "crl", "name": path.name, "state": "missing"})
            continue
        crl = load_crl(path)
        nxt = crl.next_update_utc
        number = crl_number(crl)
        rows.append(
            {
                "kind": "crl",
                "name": path.name,
                "subject": crl.issuer.rfc4514_string(),
                "serial": "" if number is None else str(number),
                "fingerprint": crl.fingerprint(hashes.SHA256()).hex(),
                "not_after": "" if nxt is None else nxt.isoformat(),
                "days_left": None if nxt is None else _days_left(nxt, now_),
                "state": "stale" if nxt is not None and nxt < now_ else "current",
                "revoked": len(crl),
            }
        )
    return rows
