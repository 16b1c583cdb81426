"""Hardened parsing of one CorpLink body into an lxml tree (sans-IO, pure).

The first stage that looks inside a frame (docs/protocol.md §8: frame → rate →
**well-formed XML (1002)** → schema (1003, 1004) → …).  It decides the
encoding itself instead of trusting libxml2 (docs/architecture.md §9 "XML and signatures": a
wrong declaration silently garbles text), refuses every DTD before entities
can matter, and enforces the structural limits that libxml2 does not
(it parses 200,000 attributes on one element).

Encoding rules (docs/protocol.md §1 "UTF-8 … or GBK/GB18030 when its XML
declaration says so … No other encodings"):

- No declaration, or ``encoding="UTF-8"`` (any case): the bytes must be strict
  UTF-8; a UTF-8 byte-order mark is allowed.
- ``encoding="GBK"`` or ``encoding="GB18030"`` (any case): decoded strictly with
  *that* codec — a GBK declaration over bytes that only GB18030 knows (4-byte
  sequences) is refused, so the reply, written in the same encoding, can carry
  what the client sent.  GB2312 is not in the spec's list and is refused even
  though it is a subset of GBK: a legacy client declares GBK instead.
- Anything else (UTF-16/32 by declaration, byte-order mark or NUL bytes,
  latin-1, …) → 1002.

Depth: libxml2 stops at 256 levels on its own (without ``huge_tree``); that
error is answered as 1003 "nesting deeper than 64 elements", because the
document is not malformed, it breaks the structural limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lxml import etree

from gateway.errors import GatewayError, RetCode

MAX_DEPTH: Final = 64
"""Deepest allowed element nesting, the root being level 1 (docs/protocol.md §8, 1003)."""

MAX_ATTRS: Final = 32
"""Most attributes on one element, namespace declarations included (docs/protocol.md §8, 1003).

XML 1.0 writes namespace declarations as attributes, and a flood of them costs
the same as a flood of ordinary ones in every later c14n pass, so they count.
"""

UTF8: Final = "UTF-8"
GBK: Final = "GBK"
GB18030: Final = "GB18030"

_CODECS: Final[dict[str, str]] = {UTF8: "utf-8", GBK: "gbk", GB18030: "gb18030"}
"""Wire encoding name (as we write it) → Python codec; docs/protocol.md §1."""

_BOM_UTF8: Final = b"\xef\xbb\xbf"
_BOMS_REFUSED: Final = (b"\xfe\xff", b"\xff\xfe")  # UTF-16 BE/LE, also the start of UTF-32 LE
_DECL_START = re.compile(rb"<\?xml[ \t\r\n]")
_DECL = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:\"1\.[0-9]+\"|'1\.[0-9]+')"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:\"([A-Za-z][A-Za-z0-9._-]{0,39})\""
    rb"|'([A-Za-z][A-Za-z0-9._-]{0,39})'))?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:\"(?:yes|no)\"|'(?:yes|no)'))?"
    rb"[ \t\r\n]*\?>"
)

# One parser for every body: explicit options, never the defaults (docs/architecture.md §9:
# CVE-2026-41066).  ``encoding`` forces UTF-8 because we hand libxml2 bytes we
# have already decoded (and, for GBK/GB18030, re-encoded) ourselves.
# Comments and processing instructions are kept: the signature profile
# (docs/protocol.md §3) refuses comments with 2001, so they must stay visible.
_PARSER: Final = etree.XMLParser(
    encoding="utf-8",
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=False,
    remove_pis=False,
    remove_blank_text=False,
    recover=False,
    collect_ids=False,
)

_TOO_DEEP: Final = etree.XPath("(/*" + "/*" * MAX_DEPTH + ")[1]")
"""The first element at level MAX_DEPTH + 1, in C (about 2 µs on a 3 KB message)."""

_LIBXML2_RESOURCE_LIMIT: Final = etree.ErrorTypes.ERR_RESOURCE_LIMIT


@dataclass(frozen=True, slots=True)
class ParsedXml:
    """A body that passed the well-formedness and structural checks.

    ``encoding`` is the wire encoding the reply must use: ``"UTF-8"``,
    ``"GBK"`` or ``"GB18030"`` (docs/protocol.md §1).
    """

    root: etree._Element
    encoding: str


def local_name(tag: object) -> str:
    """The local part of an element tag, shortened for a client-facing detail.

    Element names come from the client and may be arbitrarily long; a detail
    names the element (docs/protocol.md §8) but stays short.
    """
    if not isinstance(tag, str):  # comments and PIs have a function as tag
        return "?"
    name = tag.rpartition("}")[2]
    return name if len(name) <= 64 else name[:61] + "..."


def parse_body(body: bytes) -> ParsedXml:
    """Parse one frame body, or raise ``GatewayError`` (1002 or 1003).

    Never raises anything else, whatever the bytes (a hypothesis property in
    ``tests/unit/codec`` checks it).
    """
    encoding, data = _decode(body)
    if b"<!DOCTYPE" in data:
        # Markup has no escapes, so no DOCTYPE exists without these bytes;
        # refused before libxml2 reads any entity declaration (docs/protocol.md §8
        # "uses DTDs/entities").  The same bytes inside a comment or CDATA are
        # refused too: harmless, comments are refused anyway (2001, §3).
        raise GatewayError(RetCode.MALFORMED_XML, "DTD not allowed")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from None
    except (etree.LxmlError, ValueError):
        raise GatewayError(RetCode.MALFORMED_XML, "not well-formed") from None
    if root.getroottree().docinfo.internalDTD is not None:  # defence in depth: scan is exhaustive
        raise GatewayError(RetCode.MALFORMED_XML, "DTD not allowed")
    _check_structure(root, data)
    return ParsedXml(root=root, encoding=encoding)


def _decode(body: bytes) -> tuple[str, bytes]:
    """Decide the wire encoding and return it with strict UTF-8 bytes to parse."""
    if not body:
        raise GatewayError(RetCode.MALFORMED_XML, "empty body")
    bom = body.startswith(_BOM_UTF8)
    if bom:
        body = body[len(_BOM_UTF8) :]
    elif body.startswith(_BOMS_REFUSED) or b"\x00" in body[:4]:
        raise GatewayError(RetCode.MALFORMED_XML, "encoding not allowed (UTF-16 or UTF-32)")
    encoding = UTF8
    if _DECL_START.match(body):
        decl = _DECL.match(body)
        if decl is None:
            raise GatewayError(RetCode.MALFORMED_XML, "malformed XML declaration")
        declared = decl.group(1) or decl.group(2)
        if declared is not None:
            name = declared.decode("ascii").upper()
            if name not in _CODECS:
                raise GatewayError(RetCode.MALFORMED_XML, f"encoding {name} not allowed")
            encoding = name
    if bom and encoding != UTF8:
        raise GatewayError(RetCode.MALFORMED_XML, "byte-order mark contradicts the declaration")
    try:
        text = body.decode(_CODECS[encoding])
    except UnicodeDecodeError as exc:
        raise GatewayError(
            RetCode.MALFORMED_XML, f"invalid {encoding} byte at offset {exc.start}"
        ) from None
    if encoding == UTF8:
        return encoding, body
    return encoding, text.encode("utf-8")


def _syntax_error(exc: etree.XMLSyntaxError) -> GatewayError:
    """Map a libxml2 error to a short, safe refusal (line and column only)."""
    code = getattr(exc, "code", None)  # libxml2's error number (absent from lxml-stubs)
    if code == _LIBXML2_RESOURCE_LIMIT and "depth" in (exc.msg or "").lower():
        return GatewayError(RetCode.SCHEMA, f"nesting deeper than {MAX_DEPTH} elements")
    line, column = exc.position
    return GatewayError(RetCode.MALFORMED_XML, f"not well-formed at line {line}, column {column}")


def _check_structure(root: etree._Element, data: bytes) -> None:
    """Enforce docs/protocol.md §8's structural limits (1003), naming the element.

    Every attribute and namespace declaration needs one ``=`` byte, and no
    multi-byte UTF-8 sequence contains 0x3D, so a body with at most
    ``MAX_ATTRS`` of them cannot break the attribute limit: a signed PAY
    carries about fifteen, and the exact walk runs only beyond that.
    """
    if data.count(b"=") > MAX_ATTRS:
        _check_attribute_counts(root)
    deep = _TOO_DEEP(root)
    if isinstance(deep, list) and deep:
        element = deep[0]
        raise GatewayError(
            RetCode.SCHEMA,
            f"{local_name(getattr(element, 'tag', None))}: "
            f"nesting deeper than {MAX_DEPTH} elements",
        )


def _check_attribute_counts(root: etree._Element) -> None:
    """One walk over the tree counting attributes plus namespace declarations."""
    declared = 0
    for event, node in etree.iterwalk(root, events=("start-ns", "start")):
        if event == "start-ns":
            declared += 1
            continue
        if isinstance(node, etree._Element) and declared + len(node.attrib) > MAX_ATTRS:
            raise GatewayError(
                RetCode.SCHEMA, f"{local_name(node.tag)}: more than {MAX_ATTRS} attributes"
            )
        declared = 0
