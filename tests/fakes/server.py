"""Background-thread aiohttp server that the Slack and PagerDuty fakes share.

The server binds 127.0.0.1 on a free port and runs its own event loop in a daemon
thread, so synchronous tests and clients with their own event loops can call it.
Tests queue faults (an HTTP error status, a delay or a dropped connection) that the
next requests receive in order, and read every request the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import ssl
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict, CIMultiDictProxy

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 5.0
SHUTDOWN_TIMEOUT_S = 1.0
"""Time that in-flight handlers, such as a delayed response, get to finish on stop."""
STOP_TIMEOUT_S = SHUTDOWN_TIMEOUT_S + 4.0
MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""aiohttp rejects larger bodies with HTTP 413 before any fake handler runs."""
OPENSSL_TIMEOUT_S = 30.0

FaultKind = Literal["status", "delay", "delay_after", "drop", "drop_after"]


@dataclass(frozen=True)
class Fault:
    """A failure that the server applies to one upcoming request."""

    kind: FaultKind
    status: int = 0
    retry_after_s: int | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """An HTTP request that the server received, including rejected ones."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    status: int | None
    """Response status, or None when the server dropped the connection."""
    fault: FaultKind | None
    """Injected fault that this request received, if any."""

    def json(self) -> Any:
        """Decode the body as JSON and raise ValueError if it is not JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class TlsCertificate:
    """PEM files of a self-signed certificate and its private key."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """Build the server-side TLS context that presents this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Build a client-side TLS context that trusts only this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def create_self_signed_certificate(directory: Path) -> TlsCertificate:
    """Write a one-day certificate for IP address 127.0.0.1 into `directory`.

    Runs the `openssl` command because the standard library cannot create
    certificates. Raises RuntimeError if openssl is not installed or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "openssl not found on PATH. Install it to serve a fake over HTTPS."
        )
    cert_path = directory / "fake-server-cert.pem"
    key_path = directory / "fake-server-key.pem"
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        f"/CN={HOST}",
        "-addext",
        f"subjectAltName=IP:{HOST}",
        "-keyout",
        str(key_path),
        "-out",
        str(cert_path),
    ]
    try:
        subprocess.run(
            command, check=True, capture_output=True, timeout=OPENSSL_TIMEOUT_S
        )
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"openssl failed to create a certificate: {stderr}") from exc
    return TlsCertificate(cert_path=cert_path, key_path=key_path)


class FakeServer:
    """Base class that runs an aiohttp app on 127.0.0.1 in a background thread.

    Subclasses add routes in `add_routes` and may override `error_body`. Every
    request, with its injected fault and response status, lands in `requests`.
    Methods are safe to call from any thread, and subclasses guard their own
    state with `self._lock`.
    """

    def __init__(self, *, tls: TlsCertificate | None = None) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._url: str | None = None

    # Lifecycle

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, such as http://127.0.0.1:41234."""
        if self._url is None:
            raise RuntimeError(
                f"{type(self).__name__} is not running. Call start() first."
            )
        return self._url

    def start(self) -> None:
        """Start serving and block until the port is bound.

        Raises RuntimeError if the server is already running or fails to start
        within START_TIMEOUT_S.
        """
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._ready = threading.Event()
        self._startup_error = None
        thread = threading.Thread(
            target=self._run_loop, name=f"{type(self).__name__}-loop", daemon=True
        )
        self._thread = thread
        thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(
                f"{type(self).__name__} did not start within {START_TIMEOUT_S} s"
            )
        if self._startup_error is not None:
            thread.join(STOP_TIMEOUT_S)
            self._thread = None
            raise RuntimeError(
                f"{type(self).__name__} failed to start: {self._startup_error}"
            ) from self._startup_error
        logger.info("%s started at %s", type(self).__name__, self._url)

    def stop(self) -> None:
        """Stop serving and join the loop thread.

        Stopping a stopped server does nothing. Raises RuntimeError if the thread
        does not exit within STOP_TIMEOUT_S.
        """
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        stop_event = self._stop_event
        if loop is not None and stop_event is not None:
            # RuntimeError means the loop already closed because its thread exited.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            raise RuntimeError(
                f"{type(self).__name__} loop thread did not exit within "
                f"{STOP_TIMEOUT_S} s"
            )
        self._thread = None
        self._loop = None
        self._stop_event = None
        self._url = None
        logger.info("%s stopped", type(self).__name__)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Failure injection

    def fail_next(
        self, status: int, count: int = 1, retry_after_s: int | None = None
    ) -> None:
        """Respond to the next `count` requests with HTTP `status` and `error_body`.

        A `Retry-After` header is sent when `retry_after_s` is given.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599): {status}")
        self._queue_faults(
            Fault(kind="status", status=status, retry_after_s=retry_after_s), count
        )

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Wait `seconds` before handling each of the next `count` requests."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative: {seconds}")
        self._queue_faults(Fault(kind="delay", delay_s=seconds), count)

    def delay_after_next(self, seconds: float, count: int = 1) -> None:
        """Handle each of the next `count` requests, then wait `seconds` to respond.

        The request takes effect at once while the client still waits, as
        when a client stops before the response comes.
        """
        if seconds < 0:
            raise ValueError(f"seconds must not be negative: {seconds}")
        self._queue_faults(Fault(kind="delay_after", delay_s=seconds), count)

    def drop_next(self, count: int = 1) -> None:
        """Close the connection without a response for the next `count` requests."""
        self._queue_faults(Fault(kind="drop"), count)

    def drop_after_next(self, count: int = 1) -> None:
        """Handle the next `count` requests, then close the connection unanswered.

        The request takes effect (a message is posted, an event accepted) but
        the client sees the connection end, as when a response is lost.
        """
        self._queue_faults(Fault(kind="drop_after"), count)

    def clear_faults(self) -> None:
        """Discard the faults that no request has received yet."""
        with self._lock:
            self._faults.clear()

    def _queue_faults(self, fault: Fault, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1: {count}")
        with self._lock:
            self._faults.extend([fault] * count)

    def _pop_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # Recorded traffic

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    # Subclass hooks

    def add_routes(self, app: web.Application) -> None:
        """Register the fake's handlers on `app`."""
        raise NotImplementedError

    def error_body(self, status: int) -> dict[str, Any]:
        """JSON body of an injected error response with HTTP `status`."""
        return {"error": f"injected HTTP {status}"}

    # Event loop thread

    def _run_loop(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        @web.middleware
        async def middleware(
            request: web.Request, handler: Handler
        ) -> web.StreamResponse:
            return await self._apply_fault_and_record(request, handler)

        app = web.Application(
            middlewares=[middleware], client_max_size=MAX_REQUEST_BYTES
        )
        self.add_routes(app)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        ssl_context = self._tls.server_context() if self._tls is not None else None
        try:
            await runner.setup()
            site = web.TCPSite(runner, HOST, 0, ssl_context=ssl_context)
            await site.start()
        except Exception as exc:
            self._startup_error = exc
            self._ready.set()
            await runner.cleanup()
            return

        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        stop_event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stop_event = stop_event
        self._url = f"{scheme}://{HOST}:{port}"
        self._ready.set()
        try:
            await stop_event.wait()
        finally:
            await runner.cleanup()

    async def _apply_fault_and_record(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPException as exc:
            # aiohttp rejects a body over MAX_REQUEST_BYTES before any fault applies.
            self._record(request, b"", status=exc.status, fault=None)
            raise
        fault = self._pop_fault()
        if fault is not None:
            logger.info(
                "%s injecting %s into %s %s",
                type(self).__name__,
                fault,
                request.method,
                request.path,
            )

        if fault is not None and fault.kind == "drop":
            self._record(request, body, status=None, fault=fault)
            if request.transport is not None:
                request.transport.close()
            # aiohttp cannot write this response to the closed transport, so the
            # client sees the connection end without a status line.
            return web.Response(status=204)

        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)

        if fault is not None and fault.kind == "delay_after":
            handled = await handler(request)
            self._record(request, body, status=handled.status, fault=fault)
            await asyncio.sleep(fault.delay_s)
            return handled

        if fault is not None and fault.kind == "drop_after":
            await handler(request)
            self._record(request, body, status=None, fault=fault)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)

        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            response = web.json_response(
                self.error_body(fault.status), status=fault.status, headers=headers
            )
            self._record(request, body, status=fault.status, fault=fault)
            return response

        try:
            handled = await handler(request)
        except web.HTTPException as exc:
            self._record(request, body, status=exc.status, fault=fault)
            raise
        self._record(request, body, status=handled.status, fault=fault)
        return handled

    def _record(
        self,
        request: web.Request,
        body: bytes,
        *,
        status: int | None,
        fault: Fault | None,
    ) -> None:
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            status=status,
            fault=fault.kind if fault is not None else None,
        )
        with self._lock:
            self._requests.append(recorded)
