"""A minimal CorpLink client: sign with signxml, send over mutual TLS, verify the answer.

usage: python corplink_client.py HOST PORT PKI_DIR [CORP_ID OPER_ID ACCOUNT]
PKI_DIR holds clients/<CORP_ID>-<OPER_ID>.key/.pem, server-ca.pem and gateway-response.pem
(the layout of `gatewayctl keys dev-pki DIR`). Sends a PAY, then a STATUS about it and a NTFY pull, pipelined.
"""
import socket, ssl, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
import signxml as sx

host, port, pki = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
corp, oper, acct = (sys.argv[4:7] if len(sys.argv) > 4 else ("C100000001", "op01", "6222000000000001"))
key_pem, cert_pem = (pki / f"clients/{corp}-{oper}.key").read_bytes(), (pki / f"clients/{corp}-{oper}.pem").read_bytes()
ecdsa = isinstance(load_pem_private_key(key_pem, None), ec.EllipticCurvePrivateKey)
signer = sx.XMLSigner(method=sx.SignatureConstructionMethod.enveloped, digest_algorithm=sx.DigestAlgorithm.SHA256,
                      signature_algorithm=sx.SignatureMethod.ECDSA_SHA256 if ecdsa else sx.SignatureMethod.RSA_SHA256,
                      c14n_algorithm=sx.CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)

def request(trn: str, msg_id: str, body: str) -> bytes:
    now = datetime.now(timezone(timedelta(hours=8))).isoformat(timespec="seconds")   # SendTime: §7
    xml = (f'<CorpLink xmlns="urn:corplink:1"><Head><TrnCode>{trn}</TrnCode><CorpId>{corp}</CorpId>'
           f"<OperId>{oper}</OperId><MsgId>{msg_id}</MsgId><SendTime>{now}</SendTime></Head><Body>{body}</Body></CorpLink>")
    signed = signer.sign(etree.fromstring(xml), key=key_pem, cert=cert_pem)           # §3
    body_bytes = etree.tostring(signed, encoding="UTF-8", xml_declaration=True)
    return b"%08d" % len(body_bytes) + body_bytes                                       # §1: frame

def read_exactly(conn: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("gateway closed the connection")
        data += chunk
    return data

ctx = ssl.create_default_context(cafile=str(pki / "server-ca.pem"))                     # §1: TLS
ctx.load_cert_chain(pki / f"clients/{corp}-{oper}.pem", pki / f"clients/{corp}-{oper}.key")
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
pay_id = f"PAY-{int(time.time() * 1000)}"
pay = (f"<Transfer><PayerAcct>{acct}</PayerAcct><PayerName>Demo Trading Co.</PayerName><PayeeAcct>6217000011112222"
       "</PayeeAcct><PayeeName>Beta Components</PayeeName><PayeeBankCode>102100099996</PayeeBankCode>"
       '<Amount Ccy="CNY">1234.50</Amount><Purpose>invoice 2026-1127</Purpose></Transfer>')
def answer(conn: ssl.SSLSocket) -> None:
    raw = read_exactly(conn, int(read_exactly(conn, 8)))                                 # §1, §5
    rsp = sx.XMLVerifier().verify(raw, x509_cert=(pki / "gateway-response.pem").read_text(), expect_config=sx.SignatureConfiguration(
        signature_methods=frozenset({sx.SignatureMethod.ECDSA_SHA256, sx.SignatureMethod.RSA_SHA256}))).signed_xml
    f = lambda path: rsp.findtext(path, namespaces={"c": "urn:corplink:1"})  # noqa: E731
    print(*(f(p) for p in ("c:Head/c:TrnCode", "c:Head/c:MsgId", "c:Head/c:RetCode", "c:Head/c:GwRef",
                           "c:Body/c:Status/c:State", "c:Body/c:Status/c:Engine", "c:Head/c:RetMsg")))

with ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname="localhost") as conn:
    conn.sendall(request("PAY", pay_id, pay))
    answer(conn)                                   # wait for the PAY's answer before asking about it
    conn.sendall(request("STATUS", f"ST-{pay_id}", f"<StatusQuery><OrigMsgId>{pay_id}</OrigMsgId></StatusQuery>")
                 + request("NTFY", f"NT-{pay_id}", "<NotifyPull><Max>10</Max></NotifyPull>"))   # pipelined
    answer(conn)                                   # answers may come in any order: match them by MsgId
    answer(conn)
