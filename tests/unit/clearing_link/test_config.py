"""LinkConfig validation and URL parsing: refuse what would connect somewhere unintended."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clearing.link import ClearingLink, LinkConfig, parse_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.bank.local:1883", ("mqtt", "broker.bank.local", 1883)),
        ("mqtt://broker", ("mqtt", "broker", 1883)),
        ("mqtts://broker", ("mqtts", "broker", 8883)),
        ("mqtts://10.1.2.3:18883/", ("mqtts", "10.1.2.3", 18883)),
        ("mqtt://[::1]:1884", ("mqtt", "::1", 1884)),
    ],
)
def test_parse_url(url: str, expected: tuple[str, str, int]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("http://broker:1883", "scheme"),
        ("tcp://broker:1883", "scheme"),
        ("broker:1883", "scheme"),
        ("mqtt://user:secret@broker:1883", "credentials"),
        ("mqtt://broker:1883/topic", "host:port only"),
        ("mqtt://broker:1883?x=1", "host:port only"),
        ("mqtt://broker:99999", "port"),
        ("mqtt://:1883", "no host"),
    ],
)
def test_parse_url_refuses(url: str, word: str) -> None:
    with pytest.raises(ValueError, match=word) as caught:
        parse_url(url)
    assert "secret" not in str(caught.value)


def _cfg(**kw: object) -> LinkConfig:
    base: dict[str, object] = {
        "url": "mqtt://broker:1883",
        "client_id": "gw-1",
        "subscriptions": ("clearing/+/in",),
    }
    base.update(kw)
    return LinkConfig(**base)  # type: ignore[arg-type]


def test_defaults_follow_the_spec() -> None:
    cfg = _cfg()
    assert cfg.session_expiry >= 24 * 3600  # clearing.md §1
    assert cfg.protocol == 5
    assert cfg.topic_filters == ("clearing/+/in",)


def test_shared_filters_use_the_gateway_group() -> None:
    cfg = _cfg(shared=True, subscriptions=("clearing/+/in", "core/rsp/node1", "$share/x/t"))
    assert cfg.topic_filters == (
        "$share/gateway/clearing/+/in",
        "$share/gateway/core/rsp/node1",
        "$share/x/t",
    )


@pytest.mark.parametrize(
    ("kw", "word"),
    [
        ({"session_expiry": 3600}, "session_expiry"),
        ({"client_id": ""}, "client_id"),
        ({"protocol": 3}, "protocol"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"receive_maximum": 70_000}, "receive_maximum"),
        ({"publish_timeout": 0}, "publish_timeout"),
        ({"reconnect_min": 5.0, "reconnect_max": 1.0}, "reconnect_max"),
        ({"subscriptions": ("",)}, "subscription filter"),
        ({"subscriptions": ("clearing/#/in",)}, "subscription filter"),
        ({"subscriptions": ("clearing/hv+/in",)}, "subscription filter"),
        ({"subscriptions": ("clearing/in#",)}, "subscription filter"),
        ({"tls_cert": Path("c.pem")}, "tls_cert and tls_key"),
        ({"tls_ca": Path("ca.pem")}, "plain mqtt"),
    ],
)
def test_config_refuses(kw: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        _cfg(**kw)


def test_unreadable_tls_files_fail_at_construction(tmp_path: Path) -> None:
    async def handler(topic: str, payload: bytes, props: dict[str, str]) -> None:
        return None

    cfg = _cfg(
        url="mqtts://broker:8883",
        tls_ca=tmp_path / "missing-ca.pem",
    )
    with pytest.raises(FileNotFoundError):
        ClearingLink(cfg, handler)
