"""httpbase.py - the HTTP(S) server every test emulator is built on.

EmulatorServer runs a ThreadingHTTPServer on 127.0.0.1 (port 0 picks a
free port) speaking HTTP/1.1 with keep-alive and exact Content-Length,
optionally TLS with a throw-away CA made by the openssl CLI (TlsMaterial).
For each request it records a Request in the log, applies the fault rules
of faults.Faults, and otherwise calls handle(req) -> Response, which a
subclass (vault.py, later aws/azure/gcp) implements. Subclasses also say
what an injected error or garbage body looks like in their protocol
(error_response, garbage_body, huge_body).

An exception inside handle() becomes a 500 and is kept in .errors, so a
test can assert the emulator itself never broke.
"""

import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from faults import Faults

MAX_BODY = 64 << 20


# ------------------------------------------------------------ JSON like Go

class Struct(dict):
    """A dict whose key order is kept when encoded (a Go struct); plain
    dicts are Go maps and are encoded with sorted keys."""


def _go_order(obj):
    if isinstance(obj, Struct):
        return {k: _go_order(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {k: _go_order(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_go_order(v) for v in obj]
    return obj


def go_json(obj, newline=True):
    """Bytes as Go's encoding/json writes obj: compact, UTF-8, <>& and
    U+2028/2029 escaped, maps sorted; json.Encoder adds a newline."""
    text = json.dumps(_go_order(obj), separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    for c, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                   ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(c, esc)
    return (text + ("\n" if newline else "")).encode()


# ------------------------------------------------------- requests and log

@dataclass
class Request:
    method: str
    raw_path: str               # as sent, without the query
    path: str                   # percent-decoded
    query: dict                 # name -> [values]
    header_list: list           # [(name, value)] as sent
    body: bytes
    client: tuple
    time: float
    status: int = None          # the status answered (None: no answer)
    fault: str = None           # the injected fault's kind, if any
    headers: dict = field(default_factory=dict)   # lower-case name -> value
    raw_query: str = ""

    def __post_init__(self):
        for k, v in self.header_list:
            self.headers[k.lower()] = v

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def qs(self, name, default=None):
        v = self.query.get(name)
        return v[-1] if v else default

    def json(self):
        """The body as JSON, None when empty; ValueError when invalid."""
        if not self.body.strip():
            return None
        return json.loads(self.body)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list = field(default_factory=list)

    @classmethod
    def json(cls, status, obj, headers=(), newline=True):
        return cls(status, go_json(obj, newline),
                   [("Content-Type", "application/json")] + list(headers))


# ------------------------------------------------------------------ TLS

class TlsMaterial:
    """A CA, a server certificate for 127.0.0.1/localhost and a client
    certificate, made by the openssl CLI in directory (EC P-256 keys)."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        d = self.dir
        self.ca_file = d / "ca.pem"
        self.ca_key = d / "ca.key"
        self.cert_file, self.key_file = d / "server.pem", d / "server.key"
        self.client_cert, self.client_key = d / "client.pem", d / "client.key"
        self.ca_dir = d / "capath"          # hashed, for CURLOPT_CAPATH
        self._make()

    def _ssl(self, *args):
        subprocess.run(["openssl", *map(str, args)], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)

    def _leaf(self, name, cn, ext):
        key, csr, pem = (self.dir / f"{name}.key", self.dir / f"{name}.csr",
                         self.dir / f"{name}.pem")
        extfile = self.dir / f"{name}.ext"
        extfile.write_text(ext)
        self._ssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                  "-out", csr, "-subj", f"/CN={cn}")
        self._ssl("x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey",
                  self.ca_key, "-CAcreateserial", "-out", pem, "-days", "3",
                  "-sha256", "-extfile", extfile)
        os.chmod(key, 0o600)

    def _make(self):
        self._ssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                  self.ca_key, "-out", self.ca_file, "-days", "3", "-sha256",
                  "-subj", "/CN=secretfs test CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._leaf("server", "localhost",
                   "basicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        self._leaf("client", "secretfs-test-client",
                   "basicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature\n"
                   "extendedKeyUsage=clientAuth\n")
        self.ca_dir.mkdir(exist_ok=True)
        h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in",
                            str(self.ca_file)], check=True, timeout=30,
                           capture_output=True, text=True).stdout.strip()
        shutil.copy(self.ca_file, self.ca_dir / f"{h}.0")

    def server_context(self, client_auth=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if client_auth:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca_file)
        return ctx


# ------------------------------------------------------------- the server

class _Handler(BaseHTTPRequestHandler):
    # headers and body go out in separate writes: without this, Nagle
    # holds the body back for the client's delayed ACK (~40 ms a response)
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = 120           # an idle keep-alive connection is closed
    emu = None              # set per server class

    def setup(self):
        ctx = self.emu._ssl_context
        if ctx is not None:
            self.request.settimeout(30)
            self.request = ctx.wrap_socket(self.request, server_side=True)
        super().setup()
        self.emu._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.emu._track(self.connection, False)

    def log_message(self, fmt, *args):
        if self.emu.verbose:
            super().log_message(fmt, *args)

    def send_response(self, code, message=None):
        # no Server header: Vault and the clouds' APIs send none we mimic
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string(self.emu.clock()))

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ValueError("request body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(n) if n else b""

    def _dispatch(self):
        emu = self.emu
        split = urllib.parse.urlsplit(self.path)
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        req = Request(
            method=self.command, raw_path=split.path,
            path=urllib.parse.unquote(split.path),
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            header_list=list(self.headers.items()), body=body,
            client=self.client_address, time=time.time(),
            raw_query=split.query)
        emu._log(req)
        where = emu.fault_path(req)
        delay = emu.faults.delay_for(req.method, where)
        if delay:
            emu._sleep(delay)
        rule = emu.faults.take(req.method, where)
        if rule is not None:
            req.fault = rule.kind
            if self._fault(req, rule):
                return
        self._send(req, emu._safe_handle(req))

    def _fault(self, req, rule):
        """Carry out rule; True when the request is finished with."""
        emu = self.emu
        if rule.kind == "drop":
            if rule.after_handling:
                emu._safe_handle(req)
            self._drop()
            return True
        if rule.kind == "hang":
            emu._sleep(rule.seconds)
            self._drop()
            return True
        if rule.kind == "status":
            if rule.body is not None:
                ctype = rule.params.get("content_type") or "application/json"
                resp = Response(rule.status, rule.body,
                                [("Content-Type", ctype)])
            else:
                resp = emu.error_response(rule.status, rule.message)
            resp.headers = resp.headers + list(rule.headers)
        elif rule.kind == "garbage":
            body = rule.body if rule.body is not None else \
                emu.garbage_body(rule.garbage, req)
            resp = Response(rule.status, body,
                            [("Content-Type", rule.content_type)])
        else:   # huge
            resp = Response(200, emu.huge_body(rule.size, req),
                            [("Content-Type", "application/json")])
        self._send(req, resp)
        return True

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, req, resp):
        req.status = resp.status
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        no_body = resp.status in (204, 304) or resp.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if not no_body and self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch
    do_LIST = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emu = None

    def handle_error(self, request, client_address):
        # client hang-ups, TLS handshakes the client refused, ...
        self.emu.conn_errors.append(traceback.format_exc(limit=3))


class EmulatorServer:
    """Base class: start()/stop(), .url, .faults, the request log."""

    name = "emulator"

    def __init__(self, host="127.0.0.1", port=0, tls=False,
                 tls_client_auth=False, cert_dir=None, verbose=False):
        self.host, self.port = host, port
        self.verbose = verbose
        self.faults = Faults()
        self.errors = []        # tracebacks of exceptions in handle()
        self.conn_errors = []   # connection-level failures (not a bug)
        self._log_lock = threading.Lock()
        self._log_list = []
        self._conns = set()
        self._stopping = threading.Event()
        self._server = self._thread = None
        self._tmp = None
        self.tls = None
        self._ssl_context = None
        if tls:
            if cert_dir is None:
                self._tmp = tempfile.mkdtemp(prefix=f"{self.name}-tls-")
                cert_dir = self._tmp
            self.tls = TlsMaterial(cert_dir)
            self._ssl_context = self.tls.server_context(tls_client_auth)

    # ---------------------------------------------------------- lifecycle

    def start(self):
        handler = type("Handler", (_Handler,), {"emu": self})
        server_cls = type("Server", (_Server,), {"emu": self})
        self._server = server_cls((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"{self.name}:{self.port}",
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._log_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    # ------------------------------------------------------------ the log

    def _log(self, req):
        with self._log_lock:
            self._log_list.append(req)

    def _track(self, conn, add):
        with self._log_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    @property
    def requests(self):
        """Every request so far (oldest first), as Request objects."""
        with self._log_lock:
            return list(self._log_list)

    def requests_to(self, path, method=None):
        """Requests whose decoded path equals path (and method, if given)."""
        return [r for r in self.requests if r.path == path and
                (method is None or r.method == method.upper())]

    def count(self, path, method=None):
        return len(self.requests_to(path, method))

    def counts(self):
        """{path: number of requests}."""
        out = {}
        for r in self.requests:
            out[r.path] = out.get(r.path, 0) + 1
        return out

    def clear_requests(self):
        with self._log_lock:
            self._log_list.clear()

    # ------------------------------------------------- for the subclasses

    def clock(self):
        """The server's idea of now (epoch seconds): the Date header of
        every answer. A subclass may shift it to fake clock skew."""
        return time.time()

    def fault_path(self, req):
        """What fault rules' path regexes are matched against: the decoded
        path, unless a protocol multiplexes operations on one path (AWS's
        POST /) and names them here instead."""
        return req.path

    def _sleep(self, seconds):
        """Sleep, but wake up when the server stops."""
        self._stopping.wait(seconds)

    def _safe_handle(self, req):
        try:
            return self.handle(req)
        except Exception:
            self.errors.append(traceback.format_exc())
            return self.error_response(500, "internal emulator error")

    def handle(self, req):
        raise NotImplementedError

    def error_response(self, status, message=None):
        return Response.json(status, {"error": message or str(status)})

    def garbage_body(self, kind, req):
        presets = {
            "not-json": b"<html><body>502 Bad Gateway</body></html>\n",
            "truncated": b'{"data":{"data":{"key":"val',
            "empty": b"",
            "null": b"null",
            "array": b"[1,2,3]",
        }
        try:
            return presets[kind]
        except KeyError:
            raise ValueError(f"unknown garbage kind {kind!r}") from None

    def huge_body(self, size, req):
        return go_json({"huge": "A" * size})


def serve_until_signal(emu):
    """For an emulator's CLI: print its CA (with TLS), then serve until
    SIGINT or SIGTERM, and stop."""
    import signal
    import threading
    if emu.tls:
        print(f"CA certificate: {emu.tls.ca_file}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0
