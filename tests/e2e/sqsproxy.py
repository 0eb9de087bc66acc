"""A proxy between pimap and moto's SQS for the `--sqs-queue` tests and benchmark.

- It checks every SQS request's AWS Signature Version 4 with botocore's own signer (moto does
  not check SQS signatures), so a request pimap signs wrongly, or with the wrong secret, gets
  the `403 SignatureDoesNotMatch` AWS would give; an unknown access key gets
  `InvalidClientTokenId`.
- It injects faults per SQS action (`AmazonSQS.ReceiveMessage`, ...): a 500, AWS's throttling
  answer, a reset connection, or a hold (the request waits until the test releases it).
- It counts requests per action (and S3 requests, when S3 goes through it too).
"""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import re
import socketserver
import threading
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def expected_signature(method: str, path: str, headers: dict[str, str], body: bytes,
                       secret: str) -> tuple[str, str, str] | None:
    """(access key, signature botocore computes, signature sent), or None when the
    Authorization header is missing or malformed."""
    m = _AUTH.match(headers.get("authorization", ""))
    if not m:
        return None
    key, _date, region, service, signed, sent = m.groups()
    names = signed.split(";")
    req = AWSRequest(method=method, url=f"http://{headers.get('host', '')}{path}", data=body,
                     headers={n: headers.get(n, "") for n in names})
    req.context["timestamp"] = headers.get("x-amz-date", "")
    auth = SigV4Auth(Credentials(key, secret), service, region)
    canonical = auth.canonical_request(req)
    return key, auth.signature(auth.string_to_sign(req, canonical), req), sent


class SqsProxy:
    """Listens on `port` and forwards to moto on `upstream_port`. `keys` maps access key ids to
    secrets (what "AWS" knows)."""

    def __init__(self, port: int, upstream_port: int, keys: dict[str, str]):
        self.port = port
        self.upstream_port = upstream_port
        self.keys = keys
        self.lock = threading.Lock()
        self.rules: dict[str, list[str]] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.rejected: list[str] = []
        self.held = threading.Event()  # set when a request is being held
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                proxy._handle(self)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def fail(self, action: str, *answers: str) -> None:
        """The next requests for `action` (e.g. "ReceiveMessage") get these answers in turn:
        "500", "throttle", "reset", "hold"."""
        with self.lock:
            self.rules.setdefault(action, []).extend(answers)

    def count(self, action: str) -> int:
        with self.lock:
            return self.counts[action]

    def _answer(self, h, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/x-amz-json-1.0")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)
        h.close_connection = True

    def _handle(self, h) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        target = headers.get("x-amz-target", "")
        action = target.removeprefix("AmazonSQS.") if target else f"S3 {h.command}"
        with self.lock:
            self.counts[action] += 1
            rule = self.rules.get(action, []).pop(0) if self.rules.get(action) else None
        if target:
            check = expected_signature(h.command, h.path, headers, body,
                                       self.keys.get(_key_of(headers), ""))
            if check is None or _key_of(headers) not in self.keys:
                with self.lock:
                    self.rejected.append(f"{action}: unknown key")
                return self._answer(h, 403, {
                    "__type": "com.amazon.coral.service#InvalidClientTokenId",
                    "message": "The security token included in the request is invalid."})
            _, want, sent = check
            if want != sent:
                with self.lock:
                    self.rejected.append(f"{action}: bad signature")
                return self._answer(h, 403, {
                    "__type": "com.amazon.coral.service#SignatureDoesNotMatch",
                    "message": "The request signature we calculated does not match the "
                               "signature you provided."})
        if rule == "500":
            return self._answer(h, 500, {"__type": "com.amazon.coral.service#InternalFailure",
                                         "message": "injected"})
        if rule == "throttle":
            return self._answer(h, 400, {"__type": "com.amazonaws.sqs#RequestThrottled",
                                         "message": "Rate exceeded"})
        if rule == "reset":
            h.close_connection = True
            return
        if rule == "hold":
            self.held.set()
            self.release.wait(60)
            h.close_connection = True
            return
        c = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        c.request(h.command, h.path, body=body or None, headers=dict(h.headers.items()))
        r = c.getresponse()
        data = r.read()
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)
        h.close_connection = True


def _key_of(headers: dict[str, str]) -> str:
    m = _AUTH.match(headers.get("authorization", ""))
    return m.group(1) if m else ""


def wait_for(pred, timeout: float, what: str, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
