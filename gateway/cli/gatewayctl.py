"""``gatewayctl``: the operator's tool, talking to the daemon over its admin socket.

``status`` / ``reload`` steer the daemon; ``audit verify`` checks the
journal's audit chain (read directly, not through the daemon); ``credits``, ``inquiries`` and
``netting`` are read-only journal views (docs/clearing-link.md §6,
docs/protocol.md §4, docs/routing-rules.md §5), printed as JSON with account
numbers masked.  ``messages search|show`` find single payments in the
journal and the retention archives; ``held list`` lists HELD items.  These
read-only views also work with the daemon stopped: gatewayctl then opens the
journal read-only itself (``gateway.cli.offline``; it needs read access to
it).  ``held release`` and ``resend`` are manual actions, journaled by the
daemon with the operator's OS user (the socket's SO_PEERCRED) and ``--reason``.

Exit codes: 0 done, 1 refused or the daemon unreachable, 2 bad arguments or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Final

from gateway.cli.audit import add_audit_parser, run_audit
from gateway.cli.keys import add_keys_parser, run_keys
from gateway.config import AdminConfig, load_config
from gateway.drafts.records import DraftState
from gateway.errors import ConfigError
from gateway.journal.records import CreditState
from gateway.model import Engine, State
from gateway.ops.admin import call

#: Admin ops answered from the journal alone: they work with the daemon stopped.
READ_ONLY: Final = frozenset(
    {
        "credits",
        "inquiries",
        "netting",
        "messages.search",
        "messages.show",
        "held.list",
        "drafts.list",
        "drafts.show",
        "drafts.settle-list",
    }
)
_SEARCH_FILTERS: Final = (
    "corp_id", "msg_id", "gw_ref", "end_to_end_id", "state", "engine", "min_amount",
    "max_amount", "from", "to", "after",
)  # fmt: skip


def _socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    cfg = load_config(Path(args.config) if args.config else None)
    return cfg.admin_socket


def _op(args: argparse.Namespace) -> str:
    sub = getattr(args, "sub", None)
    return f"{args.cmd}.{sub}" if sub else str(args.cmd)


def _command(args: argparse.Namespace) -> dict[str, Any]:
    """The admin request for a parsed command line (``Gateway._admin_command``)."""
    op = _op(args)
    cmd: dict[str, Any] = {"op": op}
    if args.cmd == "credits":
        cmd["state"] = args.state
    if op in ("credits", "inquiries", "messages.search", "held.list"):
        cmd["limit"] = args.limit
    if args.cmd == "netting" and args.work_date is not None:
        cmd["work_date"] = args.work_date.isoformat()
    if op == "messages.search":
        for key in _SEARCH_FILTERS:
            value = getattr(args, key)
            if value is not None:
                cmd[key] = str(value)
    if op == "held.list":
        for key in ("engine", "after"):
            if getattr(args, key) is not None:
                cmd[key] = getattr(args, key)
    if op in ("messages.show", "held.release"):
        cmd["ref"] = args.ref
    if op == "drafts.list":
        cmd["limit"] = args.limit
        if args.state is not None:
            cmd["state"] = args.state
        if args.expiring_before is not None:
            cmd["expiring_before"] = args.expiring_before.isoformat()
    if op == "drafts.show":
        cmd["draft_no"] = args.draft_no
    if op == "drafts.settle-list" and args.date is not None:
        cmd["date"] = args.date.isoformat()
    if op == "resend":
        cmd["msg_id"] = args.msg_id
    if op == "reload" and args.force:
        cmd["force"] = True
    if op in ("held.release", "resend"):
        cmd["reason"] = args.reason
        cmd["force"] = args.force
    if args.cmd == "review":
        if args.as_user is not None:
            cmd["as"] = args.as_user
        if op == "review.list":
            cmd["all"] = args.all
        else:
            cmd["ref"] = args.ref
        if op == "review.reject":
            cmd["reason"] = args.reason
    return cmd


def _add_review_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``review [--as NAME] list [--all] | show REF | approve REF | reject REF --reason TEXT``:
    the four-eyes review of screened payments (docs/foreign-currency.md §5)."""
    review = sub.add_parser("review", help="screened payments waiting for two approvals (复核)")
    review.add_argument(
        "--as", dest="as_user", metavar="NAME",
        help='act as NAME (only with environment = "test")',
    )  # fmt: skip
    rsub = review.add_subparsers(dest="sub", required=True)
    rlist = rsub.add_parser("list", help="items in REVIEW, oldest first")
    rlist.add_argument("--all", action="store_true", help="every item ever in review")
    for name, what in (
        ("show", "hits, list versions, approvals and trail of a GwRef or TxId"),
        ("approve", "approve (the second approval, by another user, releases it)"),
        ("reject", "reject: the payment ends REJECTED, Reason Code RR04"),
    ):
        p = rsub.add_parser(name, help=what)
        p.add_argument("ref", help="a GwRef (its items in REVIEW) or a TxId")
        if name == "reject":
            p.add_argument("--reason", required=True, help="why (sent to the corporate)")


def _print_lines(answer: dict[str, Any]) -> None:
    """One JSON object per line: each item of a review answer, or the refusal."""
    items = answer.get("items") if answer.get("ok") else None
    for obj in items if isinstance(items, list) else [answer]:
        print(json.dumps(obj, ensure_ascii=False, default=str))


def _add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``messages``, ``held`` and ``resend``: the operators' message tools."""
    messages = sub.add_parser("messages", help="find single payments (journal and archives)")
    msub = messages.add_subparsers(dest="sub", required=True)
    search = msub.add_parser("search", help="items by filters, oldest received first")
    for flag, what in (
        ("--corp-id", "CorpId"),
        ("--msg-id", "the corporate's MsgId"),
        ("--gw-ref", "GwRef"),
        ("--end-to-end-id", "EndToEndId (MsgId, or MsgId-SeqNo for a batch item)"),
        ("--min-amount", "smallest amount, e.g. 1000.00"),
        ("--max-amount", "largest amount"),
    ):
        search.add_argument(flag, help=what)
    search.add_argument("--state", type=str.upper, choices=[s.value for s in State])
    search.add_argument("--engine", type=str.upper, choices=[e.value for e in Engine])
    search.add_argument(
        "--from", type=date.fromisoformat, help="received on or after YYYY-MM-DD (Shanghai)"
    )
    search.add_argument("--to", type=date.fromisoformat, help="received on or before YYYY-MM-DD")
    show = msub.add_parser(
        "show", help="one GwRef, TxId or outbound MsgId: trail and clearing messages"
    )
    show.add_argument("ref")
    show.add_argument(
        "--write-dir",
        type=Path,
        help="write each clearing message's exact signed bytes to a file there (for xmlsec1)",
    )
    held = sub.add_parser("held", help="HELD items (waiting for their engine's opening)")
    hsub = held.add_subparsers(dest="sub", required=True)
    hlist = hsub.add_parser("list", help="HELD items, oldest received first")
    hlist.add_argument("--engine", type=str.upper, choices=[e.value for e in Engine])
    release = hsub.add_parser("release", help="release a HELD item now (journaled: who, why)")
    release.add_argument("ref", help="a TxId, or a GwRef (all its HELD items)")
    resend = sub.add_parser("resend", help="publish an outbound message again, same MsgId")
    resend.add_argument("msg_id", metavar="OUTBOUND-MSGID")
    for action in (release, resend):
        action.add_argument("--reason", required=True, help="why (journaled with your user)")
        action.add_argument("--force", action="store_true", help="even when it is refused")
    for view in (search, hlist):
        view.add_argument("--limit", type=int, default=100, help="page size (1-1000)")
        view.add_argument("--after", help="the 'next' cursor of the previous page")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _present(answer: dict[str, Any], write_dir: Path | None) -> dict[str, Any]:
    """``messages show``: payloads as XML text, or written to files (exact bytes)."""
    named: list[tuple[dict[str, Any], str]] = []
    for part in ("request", "response"):
        msg = answer.get(part)
        if isinstance(msg, dict) and "payload_b64" in msg:
            named.append((msg, f"{part}-{msg['gw_ref']}"))
    for direction in ("outbound", "inbound"):
        for n, msg in enumerate(answer.get(direction) or (), 1):
            named.append((msg, f"{direction}-{n:02d}-{msg['msg_tp']}-{msg['msg_id']}"))
    for msg, name in named:
        raw = base64.b64decode(msg.pop("payload_b64"))
        if write_dir is None:
            # the declared encoding (a GB18030 request), else UTF-8, for reading on screen
            msg["xml"] = _text_of(raw)
            continue
        path = write_dir / f"{_UNSAFE.sub('_', name)}.xml"
        path.write_bytes(raw)
        msg["file"] = str(path)
    return answer


_DECLARED = re.compile(rb"""^<\?xml[^>]*encoding=["']([A-Za-z0-9_-]+)["']""")


def _text_of(raw: bytes) -> str:
    m = _DECLARED.match(raw)
    try:
        return raw.decode(m.group(1).decode() if m else "utf-8")
    except (LookupError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def _ask(args: argparse.Namespace, sock: Path, cmd: dict[str, Any]) -> dict[str, Any] | None:
    """The daemon's answer; for a read-only view with the daemon down, the journal's."""
    try:
        return asyncio.run(call(sock, cmd))
    except (OSError, TimeoutError) as exc:
        reached = f"cannot reach the daemon at {sock}: {exc}"
        if cmd["op"] not in READ_ONLY:
            hint = "is gatewayd running? read-only views work without it"
            if isinstance(exc, PermissionError):
                hint = "operators need to be in the admin.group of the daemon's configuration"
            print(f"gatewayctl: {reached} ({hint})", file=sys.stderr)
            return None
        print(f"gatewayctl: {reached}; reading the journal read-only", file=sys.stderr)
    from gateway.cli.offline import offline_view  # the journal backends: only when needed

    try:
        cfg = load_config(Path(args.config) if args.config else None)
        return asyncio.run(offline_view(cfg, cmd["op"], cmd))
    except (ValueError, TypeError) as exc:
        return {"ok": False, "reason": f"bad request: {exc}"}
    except (OSError, RuntimeError, ConfigError) as exc:
        print(f"gatewayctl: cannot open the journal read-only: {exc}", file=sys.stderr)
        return None


def _add_drafts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``drafts list|show|settle-list``: the draft register (docs/bank-drafts.md §4)."""
    drafts = sub.add_parser("drafts", help="the bank draft register (银行汇票登记簿)")
    dsub = drafts.add_subparsers(dest="sub", required=True)
    dlist = dsub.add_parser(
        "list", help="register entries, newest first, and the outstanding total"
    )
    dlist.add_argument("--state", choices=[s.value for s in DraftState], help="only this state")
    dlist.add_argument(
        "--expiring-before", type=date.fromisoformat, help="YYYY-MM-DD: ExpiryDate before it"
    )
    dlist.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    show = dsub.add_parser("show", help="one draft with its history (never its Code)")
    show.add_argument("draft_no", help="the 20-digit DraftNo")
    settle = dsub.add_parser("settle-list", help="a day's auto-settlement list (自动结清清单)")
    settle.add_argument("--date", type=date.fromisoformat, help="YYYY-MM-DD (default: today)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gatewayctl", description="control a running gatewayd")
    p.add_argument("--config", help="the daemon's overlay config (to find its admin socket)")
    p.add_argument("--socket", help="admin socket path (overrides --config)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="lifecycle, checks and item counts by engine and state")
    reload = sub.add_parser(
        "reload", help="reload directory, registry, CRLs, keys and screening lists (like SIGHUP)"
    )
    reload.add_argument(
        "--force",
        action="store_true",
        help="accept a screening list with over 10 %% fewer rows (docs/foreign-currency.md §5)",
    )
    credits = sub.add_parser("credits", help="incoming credits in one state, oldest first")
    credits.add_argument(
        "--state",
        choices=[s.value for s in CreditState],
        default=CreditState.SUSPENSE.value,
        help="CHECKING, POSTED, SUSPENSE (暂收款, the default) or REVIEW (held by screening)",
    )
    inquiries = sub.add_parser("inquiries", help="OPEN inquiries, both directions, oldest first")
    for view in (credits, inquiries):
        view.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    netting = sub.add_parser("netting", help="a work date's BEPS netting rounds, both figures")
    netting.add_argument(
        "--work-date",
        type=date.fromisoformat,
        help="YYYY-MM-DD (default: the BEPS work date of the daemon's now)",
    )
    _add_parsers(sub)
    _add_drafts_parser(sub)
    _add_review_parser(sub)
    add_keys_parser(sub)
    add_audit_parser(sub)
    args = p.parse_args(argv)

    if args.cmd in ("keys", "audit"):
        try:
            cfg = load_config(Path(args.config) if args.config else None)
        except ConfigError as exc:
            print(f"gatewayctl: {exc}", file=sys.stderr)
            return 2
        if args.cmd == "audit":
            return run_audit(args, cfg)
        if args.socket:
            cfg = replace(cfg, admin=AdminConfig(socket=Path(args.socket)))
        return run_keys(args, cfg)
    try:
        sock = _socket(args)
    except ConfigError as exc:
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return 2
    write_dir: Path | None = getattr(args, "write_dir", None)
    if write_dir is not None:
        write_dir.mkdir(parents=True, exist_ok=True)
    answer = _ask(args, sock, _command(args))
    if answer is None:
        return 1
    if args.cmd == "messages" and answer.get("ok"):
        answer = _present(answer, write_dir)
    if args.cmd == "review":
        _print_lines(answer)
        return 0 if answer.get("ok") else 1
    print(json.dumps(answer, indent=2, ensure_ascii=False, default=str))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
