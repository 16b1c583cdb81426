"""``gatewayctl keys ...``: what security staff run, at any hour, without a restart.

Each subcommand changes files in the keys folder through
``gateway.keys.admin`` (validated, atomic), then asks the running daemon to
reload over the admin socket, so the change bites on the next message.
When no daemon is running the change simply applies at its next
start.  Output is a table for people, or JSON with ``--json``.

Exit codes: 0 done (or nothing to do), 1 refused or the daemon's reload
failed, 2 bad arguments or configuration.  For ``draft-rotate`` a missing
keys passphrase is configuration (2); a wrong one, or a damaged
``draft-keys.toml``, is a refusal (1), and the file stays as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.builders import build_calendar, build_schedules
from gateway.clock import SHANGHAI
from gateway.config import Config
from gateway.drafts import keystore
from gateway.drafts.code import DraftKey
from gateway.drafts.dates import last_expiry_under
from gateway.draftsvc.keyfile import store_path, write_store
from gateway.errors import ConfigError
from gateway.keys import admin
from gateway.keys.files import load_crl, read_passphrase
from gateway.keys.kinds import KindPolicy
from gateway.keys.ring import DEFAULT_RING_NAME, ROLES, ring_from_config
from gateway.keys.trust import TrustStore
from gateway.model import CredentialKind, Engine
from gateway.ops.admin import call

#: Seconds to wait for the daemon's answer to a reload (it rebuilds its workers).
RELOAD_TIMEOUT = 60.0
#: Seconds to wait for the daemon's clock before using the wall clock.
STATUS_TIMEOUT = 3.0

NOT_RUNNING = "the daemon is not running: the change applies at its next start"


def add_keys_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``keys`` and its subcommands to ``gatewayctl``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    keys = subparsers.add_parser("keys", help="keys, certificates, CRLs and enrolment")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)

    ksub.add_parser(
        "list", parents=[common], help="every certificate and CRL with expiry and state"
    )

    rot = ksub.add_parser("rotate", parents=[common], help="add a key version to the ring")
    rot.add_argument("role", choices=ROLES)
    rot.add_argument("--activate", required=True, help="ISO 8601 with offset")
    rot.add_argument(
        "--overlap-days", type=float, help="how long the previous certificate still verifies"
    )
    rot.add_argument("--key", type=Path, help="the new private key (encrypted PKCS#8)")
    rot.add_argument("--cert", type=Path, help="the new certificate (issued by the bank's CA)")

    drot = ksub.add_parser(
        "draft-rotate", parents=[common], help="add a bank-draft Code key version (sealed)"
    )
    drot.add_argument("--activate", help="ISO 8601 with offset (default: now, the daemon's clock)")

    rev = ksub.add_parser("revoke", parents=[common], help="add a certificate to the deny list")
    rev.add_argument("target", metavar="CERT_OR_FP", help="certificate file or SHA-256")
    rev.add_argument("--reason", required=True)

    crl = ksub.add_parser("import-crl", parents=[common], help="install a CRL (PEM or DER)")
    crl.add_argument("file", type=Path)

    enr = ksub.add_parser("enrol", parents=[common], help="enrol a certificate for an operator")
    enr.add_argument("corp_id", metavar="CORP")
    enr.add_argument("oper_id", metavar="OPER")
    enr.add_argument("cert", type=Path, metavar="CERT")
    enr.add_argument("--account", action="append", default=[], help="payer account (repeat)")
    enr.add_argument("--network", action="append", default=[], help="source CIDR (repeat)")
    enr.add_argument("--name", help="the corporate's name (new corporates)")
    enr.add_argument("--kind", choices=[k.value for k in CredentialKind], help="expected kind")

    une = ksub.add_parser("unenrol", parents=[common], help="remove an operator or fingerprint")
    une.add_argument("corp_id", metavar="CORP")
    une.add_argument("oper_id", metavar="OPER")
    une.add_argument("--fingerprint")

    dev = ksub.add_parser("dev-pki", parents=[common], help="throwaway PKI for demos and tests")
    dev.add_argument("dir", type=Path)
    dev.add_argument("--key-type", choices=("ec", "rsa"), default="ec")
    return keys


# ---------------------------------------------------------------- helpers


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    cells = [[h for _k, h in columns]]
    cells += [["" if r.get(k) is None else str(r.get(k)) for k, _h in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        print(text)


def _ask(cfg: Config, cmd: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """One admin-socket call; None when no daemon listens there."""
    try:
        return asyncio.run(call(cfg.admin_socket, cmd, timeout=timeout))
    except TimeoutError:  # a subclass of OSError: the daemon is there but slow
        raise
    except OSError:  # no socket file, or a stale one (connection refused)
        return None


def _now(cfg: Config) -> datetime:
    """The daemon's (business) clock when it runs, else the wall clock (docs/routing-rules.md
    §4)."""
    try:
        answer = _ask(cfg, {"op": "status"}, STATUS_TIMEOUT)
    except (TimeoutError, ValueError, TypeError):
        answer = None
    if answer and isinstance(answer.get("business_clock"), str):
        try:
            return datetime.fromisoformat(answer["business_clock"])
        except ValueError:
            pass
    return datetime.now(SHANGHAI)


def _reload(cfg: Config, args: argparse.Namespace, result: dict[str, Any]) -> int:
    """Ask the daemon to reload; print its answer.  Exit code for the whole command."""
    try:
        answer = _ask(cfg, {"op": "reload"}, RELOAD_TIMEOUT)
    except TimeoutError:
        answer = {"ok": False, "reason": "no answer from the daemon in time"}
    except (ValueError, TypeError):
        answer = {"ok": False, "reason": "the daemon's answer was not understood"}
    result["reload"] = answer if answer is not None else {"ok": None, "note": NOT_RUNNING}
    if answer is None:
        text = NOT_RUNNING
    elif answer.get("ok"):
        text = "the daemon reloaded: the change is in force"
    else:
        text = f"the daemon refused the reload: {answer.get('reason', 'no reason given')}"
    _emit(args, result, f"{result['message']}\n{text}")
    return 0 if answer is None or answer.get("ok") else 1


def _ring_name(cfg: Config) -> str:
    return str(getattr(cfg.keys, "ring", DEFAULT_RING_NAME)) or DEFAULT_RING_NAME


def _paths(cfg: Config, names: Sequence[str]) -> list[Path]:
    k = cfg.resolved_keys()
    return [k.path(n) for n in names]


# ---------------------------------------------------------------- commands


def _list(args: argparse.Namespace, cfg: Config) -> int:
    now = _now(cfg)
    ring = ring_from_config(cfg.keys, cfg.keys_dir, None, with_keys=False)
    rows = admin.list_keys(
        ring, _paths(cfg, cfg.keys.client_ca), _paths(cfg, cfg.keys.crls), now=now
    )
    draft_error: str | None = None
    try:  # a damaged draft key file must not hide the certificates: list them, then exit 1
        drafts = _draft_key_rows(cfg, now)
    except ConfigError as exc:
        drafts, draft_error = [], str(exc)
    if args.json:
        listing: dict[str, Any] = {"now": now.isoformat(), "items": rows + drafts}
        if draft_error is not None:
            listing["draft_keys_error"] = draft_error
        print(json.dumps(listing, indent=2, ensure_ascii=False))
        return 0 if draft_error is None else 1
    for row in rows:
        if row.get("not_after"):
            row["until"] = str(row["not_after"])[:10]
    print(f"keys in {cfg.keys_dir} at {now.isoformat(timespec='seconds')}")
    _print_table(
        rows,
        (
            ("kind", "KIND"),
            ("name", "FILE"),
            ("state", "STATE"),
            ("until", "NOT AFTER"),
            ("days_left", "DAYS"),
            ("serial", "SERIAL"),
            ("subject", "SUBJECT / ISSUER"),
        ),
    )
    _print_draft_keys(cfg, drafts, draft_error)
    return 0 if draft_error is None else 1


def _draft_key_rows(cfg: Config, now: datetime) -> list[dict[str, Any]]:
    """``draft-keys.toml``'s versions with retention and state: never a value, no passphrase."""
    path = store_path(cfg.keys_dir)
    if not path.exists():
        return []
    versions = keystore.loads(path.read_bytes(), str(path))
    return [
        {
            "kind": "draft",
            "name": v.key_id,
            "activate": v.activate.isoformat(),
            "retain_until": v.retain_until.isoformat() if v.retain_until else None,
            "state": v.state,
        }
        for v in keystore.list_versions(versions, now)
    ]


def _print_draft_keys(cfg: Config, rows: Sequence[dict[str, Any]], error: str | None) -> None:
    name = store_path(cfg.keys_dir).name
    if error is not None:
        print(f"\ndraft keys: {error}")
    elif not rows:
        print(f"\nno draft keys: gatewayd makes {name} at its first start with a keys passphrase")
    else:
        print(f"\ndraft keys in {name} (sealed; values are never shown)")
        _print_table(
            rows,
            (
                ("name", "ID"),
                ("activate", "ACTIVATE"),
                ("retain_until", "KEPT UNTIL"),
                ("state", "STATE"),
            ),
        )


def _rotate(args: argparse.Namespace, cfg: Config) -> int:
    try:
        activate = datetime.fromisoformat(args.activate)
    except ValueError:
        print("gatewayctl keys rotate: --activate must be ISO 8601", file=sys.stderr)
        return 2
    keys_dir, name = cfg.keys_dir, _ring_name(cfg)
    passphrase = read_passphrase(cfg.keys.passphrase_env)
    seeded = False
    if not (keys_dir / name).exists():
        ring = ring_from_config(cfg.keys, keys_dir, None, with_keys=False, ring_name="")
        admin.seed_ring(keys_dir / name, ring)
        seeded = True
    version = admin.rotate(
        keys_dir,
        name,
        args.role,
        activate=activate,
        overlap_days=args.overlap_days,
        passphrase=passphrase,
        key_file=args.key,
        cert_file=args.cert,
        require_encrypted=cfg.environment == "production",
        now=_now(cfg),
    )
    result = {
        "role": args.role,
        "cert": version.cert_path.name,
        "key": version.key_path.name if version.key_path else None,
        "activate": version.activate.isoformat(),
        "overlap_days": version.overlap.total_seconds() / 86_400,
        "seeded_ring": seeded,
        "message": (
            f"{args.role}: {version.cert_path.name} signs from {version.activate.isoformat()}; "
            f"the previous certificate verifies for {version.overlap.days} more day(s)"
        ),
    }
    if seeded:
        result["message"] = f"seeded {name} from the configured key files\n" + result["message"]
    return _reload(cfg, args, result)


def _draft_rotate(args: argparse.Namespace, cfg: Config) -> int:
    """A new sealed ``draft`` version; its predecessor is kept until its drafts' last expiry.

    docs/bank-drafts.md §5.  Retired versions are not pruned: they verify no
    Code any more, but STATUS and replays recompute an old draft's Code under
    the version it was made with (the Code is never stored).
    """
    where = "gatewayctl keys draft-rotate"
    now = _now(cfg)
    activate = now
    if args.activate:
        try:
            activate = datetime.fromisoformat(args.activate)
        except ValueError:
            print(f"{where}: --activate must be ISO 8601", file=sys.stderr)
            return 2
        if activate.tzinfo is None:
            print(f"{where}: --activate needs a UTC offset (+08:00)", file=sys.stderr)
            return 2
    passphrase = read_passphrase(cfg.keys.passphrase_env)
    if not passphrase:
        print(
            f"{where}: no keys passphrase (systemd credential gateway-key-passphrase or "
            f"${cfg.keys.passphrase_env}): the draft keys are sealed under it",
            file=sys.stderr,
        )
        return 2
    if activate < now:
        raise ConfigError(f"--activate {activate.isoformat()} is before now ({now.isoformat()})")
    path = store_path(cfg.keys_dir)
    versions = keystore.loads(path.read_bytes(), str(path)) if path.exists() else ()
    if versions:
        keystore.DraftKeyRing.open(versions, passphrase, str(path))  # the right passphrase?
        if activate <= versions[-1].activate:
            raise ConfigError(
                f"--activate must be later than {versions[-1].key_id}'s "
                f"({versions[-1].activate.isoformat()})"
            )
    key_id = f"draft-{activate.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    new = keystore.seal(DraftKey(key_id, keystore.new_secret()), passphrase, activate)
    result: dict[str, Any] = {"id": key_id, "activate": activate.isoformat()}
    if versions:
        # A running daemon signs with the outgoing version until its reload is done.
        signs_until = max(activate, now + timedelta(seconds=RELOAD_TIMEOUT))
        intra = build_schedules(cfg)[Engine.INTRA]
        until = last_expiry_under(signs_until, intra, build_calendar(cfg))
        out = keystore.add_version(versions, new, until)
        previous = out[-2]
        result["previous"] = previous.key_id
        result["previous_retain_until"] = str(previous.retain_until)
        result["message"] = (
            f"{key_id} makes new draft Codes from {activate.isoformat()}; "
            f"{previous.key_id} still verifies until {previous.retain_until} inclusive"
        )
    else:
        out = (new,)
        result["message"] = f"created {path.name}: {key_id} makes draft Codes"
    text = keystore.dumps(out)
    keystore.loads(text, str(path))  # the daemon's loader accepts it before it replaces the file
    write_store(path, text)
    return _reload(cfg, args, result)


def _revoke(args: argparse.Namespace, cfg: Config) -> int:
    if not cfg.keys.deny_list:
        print("gatewayctl keys revoke: keys.deny_list is not configured", file=sys.stderr)
        return 2
    fp = admin.revoke(cfg.keys_dir, cfg.keys.deny_list, args.target, args.reason, now=_now(cfg))
    result = {"fingerprint": fp, "message": f"on the deny list: {fp}"}
    return _reload(cfg, args, result)


def _import_crl(args: argparse.Namespace, cfg: Config) -> int:
    path = admin.import_crl(
        cfg.keys_dir,
        args.file,
        _paths(cfg, cfg.keys.client_ca),
        cfg.keys.crls,
        now=_now(cfg),
    )
    crl = load_crl(path)
    nxt = crl.next_update_utc
    result = {
        "installed": str(path),
        "issuer": crl.issuer.rfc4514_string(),
        "crl_number": admin.crl_number(crl),
        "revoked": len(crl),
        "next_update": nxt.isoformat() if nxt else None,
        "message": f"installed {path.name}: {len(crl)} revoked, nextUpdate {nxt}",
    }
    return _reload(cfg, args, result)


def _enrol(args: argparse.Namespace, cfg: Config) -> int:
    k = cfg.resolved_keys()
    deny = k.path(k.deny_list) if k.deny_list else None
    trust = TrustStore.from_files(
        _paths(cfg, k.client_ca),
        [p for p in _paths(cfg, k.crls) if p.exists()],
        deny if deny is not None and deny.exists() else None,
        stale_crl_policy=k.stale_crl_policy,
    )
    kinds = KindPolicy(
        usbkey_oids=frozenset(k.usbkey_policy_oids), file_oids=frozenset(k.file_policy_oids)
    )
    res = admin.enrol(
        k.path(k.enrolment),
        args.corp_id,
        args.oper_id,
        args.cert,
        CredentialKind(args.kind) if args.kind else None,
        args.account,
        args.network,
        name=args.name,
        trust=trust,
        kinds=kinds,
        now=_now(cfg),
    )
    kind = res.kind.value if res.kind else "unknown"
    message = f"{res.corp_id}/{res.oper_id}: {res.fingerprint} ({kind}) enrolled"
    result: dict[str, Any] = {
        "corp_id": res.corp_id,
        "oper_id": res.oper_id,
        "fingerprint": res.fingerprint,
        "kind": kind,
        "changed": res.changed,
        "message": message,
    }
    if not res.changed:
        result["message"] = message + " already; nothing changed"
        _emit(args, result, result["message"])
        return 0
    return _reload(cfg, args, result)


def _unenrol(args: argparse.Namespace, cfg: Config) -> int:
    k = cfg.resolved_keys()
    removed = admin.unenrol(k.path(k.enrolment), args.corp_id, args.oper_id, args.fingerprint)
    result = {
        "corp_id": args.corp_id,
        "oper_id": args.oper_id,
        "removed": list(removed),
        "message": f"{args.corp_id}/{args.oper_id}: removed {len(removed)} fingerprint(s)",
    }
    return _reload(cfg, args, result)


def _dev_pki(args: argparse.Namespace, _cfg: Config) -> int:
    from gateway.keys.devpki import generate_dev_pki

    pki = generate_dev_pki(args.dir, key_type=args.key_type)
    _emit(
        args,
        {"dir": str(pki.dir), "key_type": pki.key_type},
        f"dev PKI written to {pki.dir} (throwaway keys: never use them in production)",
    )
    return 0


_COMMANDS = {
    "list": _list,
    "rotate": _rotate,
    "draft-rotate": _draft_rotate,
    "revoke": _revoke,
    "import-crl": _import_crl,
    "enrol": _enrol,
    "unenrol": _unenrol,
    "dev-pki": _dev_pki,
}


def run_keys(args: argparse.Namespace, cfg: Config) -> int:
    """Run one ``gatewayctl keys`` subcommand; see the module docstring for exit codes."""
    try:
        return _COMMANDS[args.keys_cmd](args, cfg)
    except ConfigError as exc:
        print(f"gatewayctl keys {args.keys_cmd}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a missing keys folder: say which, without a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"gatewayctl keys {args.keys_cmd}: {exc.strerror}{where}", file=sys.stderr)
        return 1
