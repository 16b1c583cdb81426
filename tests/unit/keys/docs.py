"""CorpLink-like documents for the key tests (corplink.md §2, §4)."""

from __future__ import annotations

from lxml import etree

NS = "urn:corplink:1"
DS = "http://www.w3.org/2000/09/xmldsig#"

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def pay_xml(
    amount: str = "12.00",
    corp_id: str = "C100000001",
    oper_id: str = "op01",
    msg_id: str = "20261127-000001",
    purpose: str = "invoice 2026-118",
) -> bytes:
    """A pretty-printed PAY request without a Signature."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CorpLink xmlns="{NS}">
  <Head>
    <TrnCode>PAY</TrnCode>
    <CorpId>{corp_id}</CorpId>
    <OperId>{oper_id}</OperId>
    <MsgId>{msg_id}</MsgId>
    <SendTime>2026-11-27T10:00:00+08:00</SendTime>
  </Head>
  <Body>
    <Transfer>
      <PayerAcct>6222000000000001</PayerAcct>
      <PayerName>Demo Trading Co.</PayerName>
      <PayeeAcct>6222999900001234</PayeeAcct>
      <PayeeName>上海示例贸易有限公司</PayeeName>
      <PayeeBankCode>104100000004</PayeeBankCode>
      <Amount Ccy="CNY">{amount}</Amount>
      <Priority>NORM</Priority>
      <Purpose>{purpose}</Purpose>
    </Transfer>
  </Body>
</CorpLink>
""".encode()


def pay_doc(**kwargs: str) -> etree._Element:
    return etree.fromstring(pay_xml(**kwargs), PARSER)


def reparse(root: etree._Element) -> etree._Element:
    """Serialise and parse again, as a document travelling over the wire would be."""
    return etree.fromstring(etree.tostring(root), PARSER)


def ds(name: str) -> str:
    return f"{{{DS}}}{name}"


#: The profile's Signature template for ``xmlsec1 --sign`` (corplink.md §3),
#: with the algorithms as format fields so hostile tests can vary them.
TEMPLATE = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
    "<ds:SignedInfo>"
    '<ds:CanonicalizationMethod Algorithm="{c14n}"/>'
    '<ds:SignatureMethod Algorithm="{method}"/>'
    "{references}"
    "</ds:SignedInfo>"
    "<ds:SignatureValue/>"
    "<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>"
    "</ds:Signature>"
)
REFERENCE = (
    '<ds:Reference URI="{uri}">'
    "<ds:Transforms>{transforms}</ds:Transforms>"
    '<ds:DigestMethod Algorithm="{digest}"/>'
    "<ds:DigestValue/>"
    "</ds:Reference>"
)
ENVELOPED_T = '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
EXC_C14N_T = '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
XPATH_T = (
    '<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">'
    "<ds:XPath>not(ancestor-or-self::ds:Signature)</ds:XPath></ds:Transform>"
)

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
INCL_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def template(
    *,
    c14n: str = EXC_C14N,
    method: str = ECDSA_SHA256,
    digest: str = SHA256,
    uris: tuple[str, ...] = ("",),
    transforms: str = ENVELOPED_T + EXC_C14N_T,
) -> str:
    refs = "".join(REFERENCE.format(uri=u, transforms=transforms, digest=digest) for u in uris)
    return TEMPLATE.format(c14n=c14n, method=method, references=refs)


def with_template(xml: bytes, signature_template: str) -> bytes:
    """Insert a Signature template as the root's last child (before ``</CorpLink>``)."""
    head, sep, tail = xml.rpartition(b"</CorpLink>")
    assert sep
    return head + signature_template.encode() + b"\n" + sep + tail
