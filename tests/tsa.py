"""A timestamp authority on 127.0.0.1 for the tests: real HTTP, pyHanko's DummyTimeStamper.

The TSA's certificate is issued by the CA the test trusts (or by an outsider), with the
critical extended key usage timeStamping RFC 3161 asks for. Its clock is the test's clock,
so genTime agrees with the frozen time the certificates and CRLs were made at.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps import DummyTimeStamper

from congvan.workflow.serving import free_port
from tests.servers import wait_until

READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class TsaMaterial:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate


def issue_tsa(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    now: datetime,
    name: str = "congvan test TSA",
    eku: list[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = True,
    crl_url: str | None = None,
) -> TsaMaterial:
    """A TSA certificate from ``ca_cert`` (critical EKU timeStamping unless told otherwise)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Congvan Test TSA"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.TIME_STAMPING]),
            critical=eku_critical,
        )
    )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    return TsaMaterial(key, builder.sign(ca_key, hashes.SHA256()))


def self_signed_ca(name: str, now: datetime) -> TsaMaterial:
    """A root nobody in the test trusts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=10))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return TsaMaterial(key, cert)


class ClockedTimeStamper(DummyTimeStamper):
    """DummyTimeStamper whose genTime is the test's clock, and which can refuse."""

    def __init__(self, material: TsaMaterial, clock: Callable[[], datetime]) -> None:
        super().__init__(
            tsa_cert=asn1_x509.Certificate.load(material.cert.public_bytes(Encoding.DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(
                material.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
            ),
        )
        self.clock = clock

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        self.fixed_dt = self.clock()
        return super().request_tsa_response(req)


@dataclass
class LoopbackTsa:
    """A running TSA: its URL and the requests it answered."""

    url: str
    clock: Callable[[], datetime]
    stamper: ClockedTimeStamper | None = None  # None: answers 503 until given a certificate
    answered: list[bytes] = field(default_factory=list)  # the requests, DER
    # Set to an HTTP status to answer every request with it (and no token).
    fail_with: int | None = None

    def use(self, material: TsaMaterial) -> None:
        """Sign from now on with this certificate and key."""
        self.stamper = ClockedTimeStamper(material, self.clock)


@contextlib.contextmanager
def start_tsa(material: TsaMaterial | None, clock: Callable[[], datetime]) -> Iterator[LoopbackTsa]:
    """Serve RFC 3161 over HTTP on 127.0.0.1 in a thread until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = int(server.server_address[1])
    tsa = LoopbackTsa(url=f"http://127.0.0.1:{port}/tsa", clock=clock)
    if material is not None:
        tsa.use(material)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            stamper = tsa.stamper
            if tsa.fail_with is not None or stamper is None:
                self.send_response(tsa.fail_with or 503)
                self.end_headers()
                return
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_response(415)
                self.end_headers()
                return
            reply = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
            tsa.answered.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            return

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, name="test-tsa", daemon=True)
    thread.start()
    try:
        wait_until(lambda: _accepts(port), timeout=READY_TIMEOUT, what="the test TSA")
        yield tsa
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port_url() -> str:
    """A TSA URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/tsa"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
