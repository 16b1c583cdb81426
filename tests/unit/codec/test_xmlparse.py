"""The hardened parser: encodings, DTDs and entities, structural limits (corplink.md §1, §8)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec.xmlparse import MAX_ATTRS, MAX_DEPTH, parse_body
from gateway.errors import GatewayError, RetCode

from .builders import SAMPLES, request, transfer


def refused(body: bytes) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse_body(body)
    return info.value


def outcome(body: bytes) -> GatewayError | None:
    """The refusal, or None when the body parsed; anything else propagates and fails."""
    try:
        parse_body(body)
    except GatewayError as error:
        return error
    return None


def assert_safe_detail(error: GatewayError) -> None:
    """No paths, library or exception names in what reaches the client (corplink.md §8)."""
    detail = error.detail or ""
    for word in ("lxml", "libxml", "Error", "Exception", "Traceback", "/", "\\", "<string>"):
        assert word not in detail


# -- encodings, corplink.md §1 ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding"),
    [("pay.xml", "UTF-8"), ("status.xml", "UTF-8"), ("pay-gb18030.xml", "GB18030")],
)
def test_samples_parse_with_their_encoding(name: str, encoding: str) -> None:
    parsed = parse_body((SAMPLES / name).read_bytes())
    assert parsed.encoding == encoding
    assert parsed.root.tag == "{urn:corplink:1}CorpLink"


def test_utf8_with_and_without_declaration_and_bom() -> None:
    text = request()
    assert parse_body(text.encode()).encoding == "UTF-8"
    assert parse_body(('<?xml version="1.0" encoding="utf-8"?>' + text).encode()).encoding == (
        "UTF-8"
    )
    assert parse_body(b"\xef\xbb\xbf" + text.encode()).encoding == "UTF-8"


@pytest.mark.parametrize(("declared", "expected"), [("GBK", "GBK"), ("gb18030", "GB18030")])
def test_gbk_and_gb18030_decode_chinese_text(declared: str, expected: str) -> None:
    codec = expected.lower()
    text = request(
        transfer(PayeeName="上海贝塔零部件有限公司"),
        decl=f"<?xml version='1.0' encoding='{declared}'?>",
    )
    parsed = parse_body(text.encode(codec))
    assert parsed.encoding == expected
    names = parsed.root.findall(".//{urn:corplink:1}PayeeName")
    assert [n.text for n in names] == ["上海贝塔零部件有限公司"]


def test_gbk_declaration_over_gb18030_only_bytes_is_refused() -> None:
    # U+20000 exists in GB18030 (4-byte sequence) but not in GBK.
    text = request(transfer(PayeeName="\U00020000"), decl='<?xml version="1.0" encoding="GBK"?>')
    error = refused(text.encode("gb18030"))
    assert error.code is RetCode.MALFORMED_XML
    assert "GBK" in (error.detail or "")


def test_bytes_are_read_in_the_declared_encoding_not_guessed() -> None:
    """FACTS.md: a wrong declaration garbles text.  UTF-8 bytes under a GBK
    declaration are read as GBK, exactly as declared (the signature, computed by
    the client over what it meant, then fails) - never as libxml2's guess."""
    raw = "北京".encode()  # six bytes that are also valid GBK
    text = request(transfer(PayeeName="XX"), decl='<?xml version="1.0" encoding="GBK"?>')
    parsed = parse_body(text.encode().replace(b"XX", raw))
    name = parsed.root.find(".//{urn:corplink:1}PayeeName")
    assert name is not None
    assert name.text == raw.decode("gbk") == "鍖椾含"


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"),  # with BOM
        '<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16-le"),  # without BOM
        '<?xml version="1.0" encoding="UTF-16BE"?><a/>'.encode("utf-16-be"),
        '<?xml version="1.0" encoding="UTF-32"?><a/>'.encode("utf-32"),
        b'<?xml version="1.0" encoding="UTF-16"?><a/>',  # declaration only, ASCII bytes
        b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>',
        b'<?xml version="1.0" encoding="latin-1"?><a/>',
        b'<?xml version="1.0" encoding="GB2312"?><a/>',
        b'<?xml version="1.0" encoding="Shift_JIS"?><a/>',
        b'\xef\xbb\xbf<?xml version="1.0" encoding="GBK"?><a/>',  # BOM contradicts declaration
    ],
)
def test_other_encodings_are_refused(body: bytes) -> None:
    error = refused(body)
    assert error.code is RetCode.MALFORMED_XML
    assert_safe_detail(error)


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff",  # never valid in UTF-8
        b"\xc3\x28",  # truncated 2-byte sequence
        b"\xc0\xaf",  # overlong '/'
        b"\xed\xa0\x80",  # UTF-8 encoded surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\xe4\xb8",  # truncated 3-byte sequence
    ],
)
def test_invalid_utf8_is_refused(bad: bytes) -> None:
    text = request(transfer(PayeeName="XX"))
    error = refused(text.encode().replace(b"XX", bad))
    assert error.code is RetCode.MALFORMED_XML
    assert re.fullmatch(r"invalid UTF-8 byte at offset \d+", error.detail or "")


# -- DTDs and entities, corplink.md §8 1002 -------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<CorpLink xmlns="urn:corplink:1" a="&lol9;">&lol9;</CorpLink>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        b'<!DOCTYPE CorpLink [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<CorpLink xmlns="urn:corplink:1">&xxe;</CorpLink>',
        b'<!DOCTYPE CorpLink SYSTEM "http://127.0.0.1:9/evil.dtd"><CorpLink/>',
        b'<!DOCTYPE CorpLink PUBLIC "-//X//Y//EN" "corplink.dtd"><CorpLink/>',
        b'<!DOCTYPE CorpLink [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]><CorpLink/>',
        b'<?xml version="1.0"?>\n<!DOCTYPE CorpLink><CorpLink/>',
        b'<?xml version="1.0" encoding="GBK"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>',
        b"\xef\xbb\xbf<!DOCTYPE a><a/>",
    ],
    ids=[
        "billion-laughs",
        "xxe-file",
        "external-dtd",
        "public-dtd",
        "param-entity",
        "empty-doctype",
        "gbk-doctype",
        "bom-doctype",
    ],
)
def test_any_doctype_is_refused(body: bytes) -> None:
    error = refused(body)
    assert error.code is RetCode.MALFORMED_XML
    assert error.detail == "DTD not allowed"


def test_undeclared_entity_reference_is_refused() -> None:
    error = refused(request(transfer(PayeeName="&xxe;")).encode())
    assert error.code is RetCode.MALFORMED_XML


def test_predefined_entities_and_character_references_are_text() -> None:
    parsed = parse_body(request(transfer(PayeeName="A&amp;B &#x4E2D;&lt;")).encode())
    name = parsed.root.find(".//{urn:corplink:1}PayeeName")
    assert name is not None
    assert name.text == "A&B 中<"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<a>",
        b"<a></b>",
        b"<a/><b/>",
        b"not xml at all",
        b' <?xml version="1.0"?><a/>',
        b'<?xml version="2"?><a/>',
        b'<?xml encoding="UTF-8"?><a/>',
        b"<a>\x01</a>",
        b"<a b='1' b='2'/>",
        b"<p:a/>",
    ],
)
def test_not_well_formed_is_1002_with_a_safe_detail(body: bytes) -> None:
    error = refused(body)
    assert error.code is RetCode.MALFORMED_XML
    assert_safe_detail(error)


def test_syntax_error_reports_line_and_column() -> None:
    error = refused(b"<CorpLink>\n  <Head>\n</CorpLink>")
    assert re.fullmatch(r"not well-formed at line 3, column \d+", error.detail or "")


def test_comments_and_processing_instructions_are_kept_for_the_signature_layer() -> None:
    root = parse_body(b"<a><!-- c --><?pi x?><b/></a>").root
    kinds = [type(node).__name__ for node in root]
    assert kinds == ["_Comment", "_ProcessingInstruction", "_Element"]


# -- structural limits, corplink.md §8 1003 -------------------------------------


def nested(depth: int) -> bytes:
    return b"<CorpLink>" + b"<x>" * (depth - 1) + b"</x>" * (depth - 1) + b"</CorpLink>"


def test_depth_64_is_allowed_and_65_is_refused_naming_the_element() -> None:
    parse_body(nested(MAX_DEPTH))
    error = refused(nested(MAX_DEPTH + 1))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"x: nesting deeper than {MAX_DEPTH} elements"


def test_ten_thousand_levels_are_answered_with_1003() -> None:
    error = refused(nested(10_000))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"nesting deeper than {MAX_DEPTH} elements"


def element_with(count: int, template: bytes = b'a%d="1"') -> bytes:
    attrs = b" ".join(template % i for i in range(count))
    return b"<CorpLink><Head " + attrs + b"/></CorpLink>"


def test_32_attributes_are_allowed_and_33_are_refused() -> None:
    parse_body(element_with(MAX_ATTRS))
    error = refused(element_with(MAX_ATTRS + 1))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"Head: more than {MAX_ATTRS} attributes"


def test_200000_attributes_are_refused() -> None:
    error = refused(element_with(200_000))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"Head: more than {MAX_ATTRS} attributes"


def test_namespace_declarations_count_as_attributes() -> None:
    error = refused(element_with(MAX_ATTRS + 1, b'xmlns:p%d="urn:x"'))
    assert error.code is RetCode.SCHEMA
    assert error.detail == f"Head: more than {MAX_ATTRS} attributes"


def test_many_attributes_spread_over_elements_are_fine() -> None:
    body = b"<CorpLink>" + b'<x a="1" b="2" c="3"/>' * 100 + b"</CorpLink>"
    assert len(parse_body(body).root) == 100


# -- never anything but GatewayError -------------------------------------------

_PREFIXES = [
    b"",
    b"<?xml version='1.0'?>",
    b'<?xml version="1.0" encoding="GBK"?>',
    b'<?xml version="1.0" encoding="GB18030"?>',
    b"\xef\xbb\xbf",
    b'<CorpLink xmlns="urn:corplink:1">',
    b"<!DOCTYPE",
]


@settings(
    max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None, database=None
)
@given(prefix=st.sampled_from(_PREFIXES), data=st.binary(max_size=600))
def test_parse_body_raises_only_gateway_errors(prefix: bytes, data: bytes) -> None:
    error = outcome(prefix + data)
    if error is not None:
        assert error.code in (RetCode.MALFORMED_XML, RetCode.SCHEMA)
        assert_safe_detail(error)


_SAMPLE = (SAMPLES / "pay.xml").read_bytes()


@settings(max_examples=300, deadline=None, database=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)), min_size=1, max_size=8
    )
)
def test_mutated_sample_raises_only_gateway_errors(edits: list[tuple[int, int]]) -> None:
    body = bytearray(_SAMPLE)
    for position, value in edits:
        body[position] = value
    error = outcome(bytes(body))
    if error is not None:
        assert_safe_detail(error)
