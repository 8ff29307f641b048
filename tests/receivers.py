"""Real receivers of notifications on 127.0.0.1: an SMTP server (aiosmtpd) that keeps every
message, with STARTTLS under a self-signed certificate if asked, a webhook endpoint that
verifies each post's HMAC signature as a receiver should, and an egress proxy in front."""

from __future__ import annotations

import contextlib
import email
import email.policy
import http.client
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from congvan.actions.notices import ID_HEADER, verify
from congvan.workflow.serving import free_port, serve_in_thread

# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the SMTP server took: (envelope sender, recipients, the message parsed, raw)."""

    messages: list[tuple[str, list[str], EmailMessage, bytes]] = field(default_factory=list)
    # Answer each RCPT with this reply instead of taking it (e.g. "451 4.3.0 try later").
    refuse_with: str | None = None
    # Answer the message (the end of DATA) with this reply instead of taking it.
    refuse_message_with: str | None = None

    async def handle_RCPT(
        self, server: SmtpServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse_with is not None:
            return self.refuse_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        if self.refuse_message_with is not None:
            return self.refuse_message_with
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw))
        return "250 Message accepted"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed(directory: Path, now: datetime | None = None, *, ca: bool = True) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, signed by its own key (a CA's, or with
    ``ca`` False an end entity's)."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    made = Certificate(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    made.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox, *, starttls: Certificate | None = None) -> Iterator[int]:
    """Serve SMTP on 127.0.0.1 until the block ends; yields the port. With ``starttls``
    the server offers STARTTLS and takes no mail before it."""
    port = free_port()
    options: dict[str, Any] = {}
    if starttls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(starttls.cert), str(starttls.key))
        options = {"tls_context": context, "require_starttls": True}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


# -- webhooks ------------------------------------------------------------------------------


@dataclass
class Webhook:
    """A receiver checking every post's signature against ``secret`` at ``clock``'s time."""

    secret: str
    clock: Callable[[], datetime]
    answer: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    taken: list[dict[str, Any]] = field(default_factory=list)  # verified bodies
    refused: list[str] = field(default_factory=list)  # why posts were refused
    ids: list[str] = field(default_factory=list)  # the notification id of every post
    # Called as each post comes, before it is answered (the sender's attempt is out).
    meanwhile: Callable[[], object] | None = None

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            self.ids.append(request.headers.get(ID_HEADER, ""))
            if self.meanwhile is not None:
                self.meanwhile()
            verdict = verify(self.secret, request.headers, body, self.clock())
            if not verdict.valid:
                self.refused.append(verdict.reason)
                return Response(status_code=401)
            self.taken.append(json.loads(body))
            return Response(status_code=self.answer, headers=self.headers)

        return Starlette(routes=[Route("/hook", receive, methods=["POST"])])

    @contextlib.contextmanager
    def serving(self, port: int | None = None) -> Iterator[str]:
        """Listen (on ``port``, else a free one) until the block ends; yields the hook URL."""
        with serve_in_thread(self.app(), port=port) as base:
            yield f"{base}/hook"


# -- an egress proxy -------------------------------------------------------------------------


@dataclass
class Proxy:
    """An HTTP proxy that keeps every request it is asked to carry (``CONNECT host:port``
    or ``POST http://…``) and decides: a tunnel is answered ``connect_answer``; a plain
    post is carried to ``upstream`` (``host:port``) whatever host it names."""

    upstream: str = ""
    connect_answer: int = 403
    seen: list[str] = field(default_factory=list)

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:
                proxy.seen.append(f"CONNECT {self.path}")
                self.send_response(proxy.connect_answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                proxy.seen.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=10)
                try:
                    path = "/" + self.path.split("://", 1)[-1].partition("/")[2]
                    upstream.request("POST", path, body, dict(self.headers.items()))
                    answer = upstream.getresponse()
                    said = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(said)))
                self.end_headers()
                self.wfile.write(said)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """Listen on a free port until the block ends; yields the proxy's URL."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        thread = threading.Thread(target=server.serve_forever, name="proxy", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
