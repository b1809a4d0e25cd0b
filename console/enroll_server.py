"""The enrollment endpoint: ``POST /enroll`` and ``POST /renew`` over HTTPS, in the spirit of
EST (RFC 7030): simpleenroll with a one-time token, simplereenroll with the current certificate.

Why HTTPS and not the broker: a kiosk on first boot has no certificate the broker would accept,
and a shared bootstrap identity would let whoever copies it from one kiosk talk to the broker.
Here the kiosk trusts the deployment's service CA (public; it comes with the image, as EST's
explicit trust anchor), the server presents a certificate from it, and the one-time token
proves who the kiosk is. The answer holds only public material. A renewal presents the kiosk's
current certificate as its TLS client certificate (the handshake proves it holds the key); the
server asks for one but does not require it, so first enrollments need none.

The server is deliberately small (the standard library's threading HTTP server under TLS): one
route, bodies of at most 32 KiB, a socket timeout, JSON read with the contract's hostile-input
parser, every refusal a JSON ``{"error": {"step", "reason"}}`` with a 4xx/5xx status::

    server = EnrollServer(engine, settings, ("0.0.0.0", 8443), tls_cert, tls_key,
                          register=rules.add_device)
    server.start()          # a thread; server.port is the bound port
    ...
    server.close()
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine

from mqtt_schemas.validation import JsonError, parse_json

from .enrollment import EnrollmentError, EnrollmentSettings, enroll, renew

log = logging.getLogger("borderlane.console.enroll")

MAX_BODY = 32 * 1024
TIMEOUT_S = 10.0
STATUS = {
    "request": 400,
    "csr": 400,
    "clock": 400,
    "token": 403,
    "device": 403,
    "replace": 409,
    "broker": 503,
    "certificate": 403,
}


class EnrollServer:
    """``POST /enroll`` over TLS, served from a thread."""

    def __init__(
        self,
        engine: Engine,
        settings: EnrollmentSettings,
        address: tuple[str, int],
        tls_cert: Path,
        tls_key: Path,
        *,
        register: Callable[[str], None],
        revoke_old: Callable[[str, str], None] | None = None,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls_cert, tls_key)
        # Renewals present the current device certificate; enrollments present none.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=settings.device_ca.certificate.public_bytes(
            serialization.Encoding.PEM).decode("ascii"))  # fmt: skip
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self.engine, self.settings = engine, settings
        self.register, self.revoke_old = register, revoke_old
        self._lock = threading.Lock()  # one enrollment at a time: a token is spent once
        self._http = ThreadingHTTPServer(address, Handler)
        self._http.daemon_threads = True
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._http.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._http.serve_forever, name="enroll-server")
        self._thread.daemon = True
        self._thread.start()

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def handle(
        self, route: str, body: bytes, address: str, peer: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer for one request body on *route* (``/enroll`` or
        ``/renew``); *peer* is the client's certificate (DER), if it presented one."""
        try:
            request = parse_json(body)
        except JsonError as exc:
            return 400, _error("request", str(exc))
        try:
            with self._lock:
                if route == "/renew":
                    if peer is None:
                        raise EnrollmentError("certificate", "present the current certificate")
                    current = x509.load_der_x509_certificate(peer)
                    answer = renew(self.engine, self.settings, current, request, address=address)
                else:
                    answer = enroll(
                        self.engine,
                        self.settings,
                        request,
                        register=self.register,
                        revoke_old=self.revoke_old,
                        address=address,
                    )
        except EnrollmentError as exc:
            return STATUS.get(exc.step, 400), _error(exc.step, exc.reason)
        return 200, answer


def _error(step: str, reason: str) -> dict[str, Any]:
    return {"error": {"step": step, "reason": reason}}


class _Handler(BaseHTTPRequestHandler):
    server_owner: EnrollServer
    timeout = TIMEOUT_S
    server_version = "borderlane-enroll"
    sys_version = ""

    def do_POST(self) -> None:
        if self.path not in ("/enroll", "/renew"):
            self._send(404, _error("request", "the routes are POST /enroll and POST /renew"))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, _error("request", "a Content-Length is required"))
            return
        if not 0 < length <= MAX_BODY:
            self._send(413, _error("request", f"a body of 1 to {MAX_BODY} bytes"))
            return
        try:
            body = self.rfile.read(length)
        except (OSError, TimeoutError):
            return
        peer = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        status, answer = self.server_owner.handle(self.path, body, self.client_address[0], peer)
        self._send(status, answer)

    def do_GET(self) -> None:
        self._send(405, _error("request", "the routes are POST /enroll and POST /renew"))

    def _send(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the kiosk went away; it will retry

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("enroll %s %s", self.client_address[0], format % args)
