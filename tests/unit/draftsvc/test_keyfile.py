"""The draft key file at start (docs/bank-drafts.md §5): made outside production only,
never without a passphrase, sealed and readable by its owner alone."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.clock import SHANGHAI
from gateway.drafts.keystore import DraftKeyError
from gateway.draftsvc.keyfile import open_draft_keys, reopen_draft_keys, store_path

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=SHANGHAI)
PASS = b"a passphrase of the unit tests"


def test_outside_production_the_first_start_makes_a_sealed_owner_only_file(tmp_path: Path) -> None:
    ring = open_draft_keys(tmp_path, PASS, NOW, create=True)
    assert ring is not None and ring.current(NOW).key_id.startswith("draft-")
    path = store_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.current(NOW).secret not in path.read_bytes()  # sealed, not in clear
    again = open_draft_keys(tmp_path, PASS, NOW, create=True)  # the same file, not a new one
    assert again is not None and again.current(NOW).secret == ring.current(NOW).secret


def test_in_production_a_missing_file_is_not_made_and_drafts_stay_off(tmp_path: Path) -> None:
    with capture_logs() as logs:
        assert open_draft_keys(tmp_path, PASS, NOW, create=False) is None
        assert reopen_draft_keys(tmp_path, PASS, NOW, None, create=False) is None
    assert not store_path(tmp_path).exists()
    reasons = [e["reason"] for e in logs if e["event"] == "drafts_disabled"]
    assert reasons and all("draft-rotate" in r for r in reasons)


def test_no_passphrase_no_drafts_and_no_file(tmp_path: Path) -> None:
    assert open_draft_keys(tmp_path, None, NOW, create=True) is None
    assert not store_path(tmp_path).exists()


def test_a_wrong_passphrase_refuses_the_start_with_one_line(tmp_path: Path) -> None:
    open_draft_keys(tmp_path, PASS, NOW, create=True)
    with pytest.raises(DraftKeyError) as err:
        open_draft_keys(tmp_path, b"another passphrase", NOW, create=True)
    assert "draft-keys.toml" in str(err.value) and "\n" not in str(err.value)
