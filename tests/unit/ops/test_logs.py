"""Structured logging: JSON lines, masking, redaction, contextvars, stdlib routing."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from gateway.ops.logs import MASKED_KEYS, REDACTED, configure_logging, mask_account

early_logger = structlog.get_logger("created.before.configure")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("6222000000000001", "6222********0001"),
        ("622202123456789012", "6222**********9012"),
        ("123456789", "1234*6789"),
        ("12345678", "******78"),
        ("1234", "**34"),
        ("123", "*23"),
        ("12", "**"),
        ("1", "*"),
        ("", ""),
    ],
)
def test_mask_account_table(raw: str, masked: str) -> None:
    assert mask_account(raw) == masked


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_mask_account_never_shows_the_whole_number(raw: str) -> None:
    out = mask_account(raw)
    assert len(out) == len(raw)
    assert out != raw
    assert "*" in out


def test_accounts_masked_and_key_material_redacted_in_json_line() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf)
    structlog.get_logger().info(
        "msg.accepted",
        payer_acct="6222000000000001",
        payee_acct=6222111122223333,  # an int is masked too
        creditor_acct=None,
        private_key="-----BEGIN PRIVATE KEY-----MIIE",
        key_passphrase="hunter2",
        clientSecret="s3",
        signing_key_pem="pem",
        items=[{"acct": "6222999988887777", "amount": "10.00", "api_key": "k"}],
    )
    text = buf.getvalue()
    for secret in ("6222000000000001", "6222111122223333", "6222999988887777", "MIIE", "hunter2"):
        assert secret not in text
    (line,) = lines(buf)
    assert line["event"] == "msg.accepted"
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")  # UTC, ISO 8601
    assert line["payer_acct"] == "6222********0001"
    assert line["payee_acct"] == "6222********3333"
    assert line["creditor_acct"] is None
    for key in ("private_key", "key_passphrase", "clientSecret", "signing_key_pem"):
        assert line[key] == REDACTED
    assert line["items"] == [{"acct": "6222********7777", "amount": "10.00", "api_key": REDACTED}]


def test_masked_keys_cover_the_usual_account_fields() -> None:
    assert {
        "payer_acct",
        "payee_acct",
        "acct",
        "account",
        "creditor_acct",
        "debtor_acct",
    } <= MASKED_KEYS


def test_contextvars_context_appears_and_is_masked() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf)
    log = structlog.get_logger()
    with structlog.contextvars.bound_contextvars(
        gw_ref="GW20250101000001", corp_id="CORP01", msg_id="M-1", debtor_acct="6222000011112222"
    ):
        log.info("stage.verify", ok=True)
    log.info("after")
    first, second = lines(buf)
    assert first["gw_ref"] == "GW20250101000001"
    assert first["corp_id"] == "CORP01"
    assert first["msg_id"] == "M-1"
    assert first["debtor_acct"] == "6222********2222"
    assert "corp_id" not in second


def test_stdlib_records_and_warnings_become_json_lines() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf)
    structlog.contextvars.bind_contextvars(corp_id="CORP01")
    logging.getLogger("mqtt").warning("There are %d pending publish calls.", 12)
    logging.getLogger("asyncio").info("info passes at level info")
    logging.getLogger("asyncio").debug("debug is filtered")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)  # catch_warnings restored showwarning; route again
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    got = lines(buf)
    assert [g["logger"] for g in got] == ["mqtt", "asyncio", "py.warnings"]
    assert got[0]["event"] == "There are 12 pending publish calls."
    assert got[0]["level"] == "warning"
    assert got[0]["corp_id"] == "CORP01"
    assert "deprecated thing" in str(got[2]["event"])


def test_exceptions_are_rendered_into_the_line() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("stage.failed")
        logging.getLogger("asyncio").exception("loop callback failed")
    one, two = lines(buf)
    assert "ValueError: boom" in str(one["exception"])
    assert "ValueError: boom" in str(two["exception"])


def test_level_filters_both_roads() -> None:
    buf = io.StringIO()
    configure_logging(level="warning", stream=buf)
    structlog.get_logger().info("quiet")
    logging.getLogger("x").info("quiet too")
    structlog.get_logger().warning("loud")
    assert [g["event"] for g in lines(buf)] == ["loud"]


def test_reconfigure_switches_stream_format_and_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    early_logger.info("one")
    logging.getLogger("asyncio").warning("std one")
    configure_logging(level="debug", fmt="console", stream=second)
    early_logger.debug("two", acct="6222000000000001")
    logging.getLogger("asyncio").warning("std two")
    assert [g["event"] for g in lines(first)] == ["one", "std one"]
    out = second.getvalue()
    assert "two" in out
    assert "6222********0001" in out
    assert "6222000000000001" not in out
    assert "std two" in out
    assert not out.lstrip().startswith("{")  # console, not JSON
    # exactly one handler of ours on the root logger after two calls
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_gateway_ops_logs", False)]
    assert len(ours) == 1


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "xml")])
def test_bad_settings_are_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="log"):
        configure_logging(level=level, fmt=fmt, stream=io.StringIO())
