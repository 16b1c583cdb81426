"""Hostile XML against the real daemon: entities, DTDs, structure, size, encodings.

Expected answers (corplink.md §1 encodings, §8 codes and order of checks):
DTDs and entities → 1002; invalid UTF-8 or any encoding but UTF-8/GBK/GB18030
→ 1002; nesting deeper than 64 or more than 32 attributes on one element →
1003 (structural limits); a text node far beyond the element's schema type
→ 1003 naming the element.  After every case a well-behaved client still
gets 0000.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from lxml import etree

from tests.hostile.tools import MIB, Hostile, assert_clean, msg_id, q, to_bytes

ENTITY_IN_PAYER = "&xxe;"


def with_doctype(h: Hostile, doctype: str, payer_name: str = ENTITY_IN_PAYER) -> bytes:
    """A signed PAY whose XML now carries ``doctype`` and ``payer_name`` (e.g. an entity)."""
    body = h.signed_pay()
    decl_end = body.index(b"?>") + 2
    body = body[:decl_end] + b"\n" + doctype.encode() + body[decl_end:]
    return body.replace("示范贸易有限公司".encode(), payer_name.encode(), 1)


async def test_xxe_to_a_local_file_is_refused_and_leaks_nothing(
    hostile: Hostile, tmp_path: Path
) -> None:
    token = f"SECRET-{secrets.token_hex(8)}"
    secret = tmp_path / "secret.txt"
    secret.write_text(token, encoding="utf-8")
    cases = [
        f'<!DOCTYPE CorpLink [<!ENTITY xxe SYSTEM "file://{secret}">]>',
        f'<!DOCTYPE CorpLink [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
        f'<!DOCTYPE CorpLink SYSTEM "file://{secret}">',
    ]
    for doctype in cases:
        reply = await hostile.exchange(with_doctype(hostile, doctype))
        assert reply.ret_code == "1002", (doctype, reply.ret_msg)
        assert_clean(reply, token, str(secret), "secret.txt")
    await hostile.serves()


async def test_xinclude_is_not_processed(hostile: Hostile, tmp_path: Path) -> None:
    token = f"SECRET-{secrets.token_hex(8)}"
    (tmp_path / "x.txt").write_text(token, encoding="utf-8")
    root = hostile.pay_tree(sign=False)
    name = root.find(f"{q('Body')}/{q('Transfer')}/{q('PayerName')}")
    assert name is not None
    inc = etree.SubElement(name, "{http://www.w3.org/2001/XInclude}include")
    inc.set("href", f"file://{tmp_path / 'x.txt'}")
    inc.set("parse", "text")
    from gateway.keys.xmldsig import sign_enveloped

    sign_enveloped(root, hostile.signer())
    reply = await hostile.exchange(to_bytes(root))
    assert reply.ret_code == "1003"  # an unknown element inside PayerName: schema (§2)
    assert_clean(reply, token)
    await hostile.serves()


async def test_billion_laughs_is_refused(hostile: Hostile) -> None:
    lol = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    doctype = f"<!DOCTYPE CorpLink [{''.join(lol)}]>"
    reply = await hostile.exchange(with_doctype(hostile, doctype, "&lol9;"))
    assert reply.ret_code == "1002"
    assert len(reply.raw) < 16_384  # nothing was expanded into the answer
    await hostile.serves()


async def test_external_dtd_is_never_fetched(hostile: Hostile) -> None:
    """The body points at a DTD on a port we listen on: nobody must connect to it."""
    fetched: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fetched.append(await reader.read(1024))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/x.dtd"
        cases = [
            (f'<!DOCTYPE CorpLink SYSTEM "{url}">', "示范贸易有限公司"),
            (f'<!DOCTYPE CorpLink PUBLIC "-//X//DTD X//EN" "{url}">', "示范贸易有限公司"),
            (f'<!DOCTYPE CorpLink [<!ENTITY xxe SYSTEM "{url}">]>', ENTITY_IN_PAYER),
            (f'<!DOCTYPE CorpLink [<!ENTITY % d SYSTEM "{url}"> %d;]>', "示范贸易有限公司"),
        ]
        for doctype, payer in cases:
            reply = await hostile.exchange(with_doctype(hostile, doctype, payer))
            assert reply.ret_code == "1002", doctype
        await hostile.serves()
        await asyncio.sleep(0.2)  # a fetch started by the daemon would have arrived by now
        assert fetched == []
    finally:
        server.close()
        await server.wait_closed()


async def test_ten_thousand_deep_nesting_is_a_structural_limit(hostile: Hostile) -> None:
    body = hostile.signed_pay()
    deep = b"<Purpose>" * 10_000 + b"</Purpose>" * 10_000
    body = body.replace(b"<Purpose>", deep + b"<Purpose>", 1)
    reply = await hostile.exchange(body)
    assert reply.ret_code == "1003"  # corplink.md §8: nesting deeper than 64 elements
    assert "64" in reply.ret_msg
    await hostile.serves()


async def test_two_hundred_thousand_attributes(hostile: Hostile) -> None:
    """2 MB of attributes on one element: above the 1 MiB default (1001), and on a
    16 MiB listener refused as a structural limit (1003), not parsed into the schema."""
    attrs = b" ".join(b'a%d="%d"' % (i, i) for i in range(200_000))
    body = hostile.signed_pay().replace(b"<Transfer>", b"<Transfer " + attrs + b">", 1)
    assert len(body) > MIB
    reader, writer = await hostile.open("tcp")
    writer.write(b"%08d" % len(body))  # the 1 MiB listener refuses on the header alone
    await writer.drain()
    assert (await hostile.read_reply(reader)).ret_code == "1001"
    writer.close()
    reply = await hostile.exchange(body, "big")
    assert reply.ret_code == "1003"
    assert "32 attributes" in reply.ret_msg
    await hostile.serves()


async def test_attributes_within_one_mib_on_the_default_listener(hostile: Hostile) -> None:
    """As many attributes as fit in the default 1 MiB body: 1003 as well."""
    attrs = b" ".join(b'b%d=""' % i for i in range(100_000))
    body = hostile.signed_pay().replace(b"<Transfer>", b"<Transfer " + attrs + b">", 1)
    assert len(body) <= MIB
    reply = await hostile.exchange(body)
    assert reply.ret_code == "1003"
    await hostile.serves()


async def test_multi_megabyte_text_node(hostile: Hostile) -> None:
    """8 MB in PayerName (1–60 characters, corplink.md §4): a schema violation naming it."""
    body = hostile.signed_pay()
    body = body.replace("示范贸易有限公司".encode(), b"A" * (8 * MIB), 1)
    reply = await hostile.exchange(body, "big")
    assert reply.ret_code == "1003"
    assert "PayerName" in reply.ret_msg
    assert len(reply.raw) < 16_384  # the text is not echoed
    await hostile.serves()


@pytest.mark.xfail(
    strict=True,
    reason="libxml2 refuses text nodes above 10 MB as a parse error, answered 1002; the text "
    "is well-formed and breaks PayerName's 60-character type, so §8 reads as 1003 (reported)",
)
async def test_text_node_above_libxml2s_limit(hostile: Hostile) -> None:
    body = hostile.signed_pay()
    body = body.replace("示范贸易有限公司".encode(), b"A" * (12 * MIB), 1)
    reply = await hostile.exchange(body, "big")
    assert reply.ret_code == "1003"


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff\xfe\xfd",  # never valid in UTF-8
        b"\xc0\xaf",  # overlong "/"
        b"\xed\xa0\x80",  # a UTF-16 surrogate encoded in UTF-8
        b"\xe7\xa4",  # truncated sequence
    ],
    ids=["ff", "overlong", "surrogate", "truncated"],
)
async def test_invalid_utf8_is_1002(hostile: Hostile, bad: bytes) -> None:
    body = hostile.signed_pay().replace("示范贸易有限公司".encode(), bad, 1)
    reply = await hostile.exchange(body)
    assert reply.ret_code == "1002"
    await hostile.serves()


async def test_utf16_is_1002(hostile: Hostile) -> None:
    body = hostile.signed_pay()
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    cases = {
        "declared UTF-16 over UTF-8 bytes": body.replace(b"'UTF-8'", b"'UTF-16'", 1),
        "UTF-16 with a byte-order mark": body.replace(b"'UTF-8'", b"'UTF-16'", 1)
        .decode("utf-8")
        .encode("utf-16"),
        "UTF-16LE without a mark": body.replace(b"'UTF-8'", b"'UTF-16LE'", 1)
        .decode("utf-8")
        .encode("utf-16-le"),
        "declared latin-1": body.replace(b"'UTF-8'", b"'ISO-8859-1'", 1),
    }
    for name, hostile_body in cases.items():
        reply = await hostile.exchange(hostile_body)
        assert reply.ret_code == "1002", name
    await hostile.serves()


async def test_gb18030_request_still_accepted(hostile: Hostile) -> None:
    """The legacy encoding the spec allows is not collateral damage (corplink.md §1)."""
    root = hostile.pay_tree(msg_id("GB"))
    body = etree.tostring(root, xml_declaration=True, encoding="GB18030")
    reply = await hostile.exchange(body)
    assert reply.ret_code == "0000", reply.ret_msg
    assert b'encoding="GB18030"' in reply.raw[:60]
