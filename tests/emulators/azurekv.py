#!/usr/bin/python3
"""azurekv.py - a protocol-faithful Azure Key Vault (secrets) emulator for
the tests, with the Entra ID (AAD) token endpoints and the managed
identity endpoints a client needs to get a token.

Two servers (httpbase.EmulatorServer), sharing one request log, one set of
fault rules and one state:

- the main server, https (a throw-away CA; Azure SDKs refuse bearer
  tokens over http), answers both
  * the Key Vault data plane (docs/azure.md): /secrets,
    /secrets/{name}[/{version}|/versions], /deletedsecrets[/{name}
    [/recover]], every call needing ?api-version= and a bearer token
    (else the 401 challenge), and
  * the login host: POST /{tenant}/oauth2/v2.0/token (client secret and
    client assertion / workload identity), GET /{tenant}/v2.0/.well-known/
    openid-configuration and GET /common/discovery/instance, which MSAL
    (azure-identity, @azure/identity) reads before asking for a token;
- the metadata server, plain http like the real ones: IMDS
  (GET /metadata/identity/oauth2/token, header Metadata: true) and the
  App Service identity endpoint (GET /msi/token, header X-IDENTITY-HEADER).

Tokens are opaque random strings, each bound to an identity (client id),
tenant, audience (the scope without /.default, or the resource) and
expiry. Key Vault takes a token only for audience https://vault.azure.net
and this tenant, before its expiry; the identity then needs the operation
in its permission set (get, list, set, delete, recover, purge).

    emu = AzureEmulator(tenant="...").start()
    emu.add_client("app-id", "app-secret", perms={"get", "list"})
    emu.set_secret("db-password", "pw")            # -> the version
    SecretClient(emu.vault_url, ClientSecretCredential(
        emu.tenant, "app-id", "app-secret", authority=emu.login_url, ...),
        verify_challenge_resource=False, connection_verify=emu.ca_file)
    emu.stop()

Run by hand:  /usr/bin/python3 tests/emulators/azurekv.py --port 0 \\
                  --client ID:SECRET [--secret NAME=VALUE] [-v]

(Not azure.py: tests/emulators is on sys.path, and a module named azure
would shadow the azure namespace package of the real SDKs.)

Choices where Azure is not fully documented are listed in the class
docstring and in tests/emulators/README.md.
"""

import json
import re
import secrets as _random
import sys
import threading
import time
import urllib.parse
import uuid

import httpbase  # noqa: E402
from httpbase import EmulatorServer, Response, Struct

DEFAULT_TENANT = "5ec2e7f5-0000-4a1e-9d3b-7e57a2c0ffee"
VAULT_AUDIENCE = "https://vault.azure.net"
PUBLIC_LOGIN = "https://login.microsoftonline.com"
API_VERSIONS = ("2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5",
                "7.6", "2025-07-01")
ALL_PERMS = frozenset({"get", "list", "set", "delete", "recover", "purge"})
NAME_OK = re.compile(r"[0-9A-Za-z-]{1,127}\Z")
MAX_RESULTS = 25
MAX_VALUE = 25 * 1024
RECOVERABLE_DAYS = 90
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

NOT_FOUND = ("A secret with (name/id) {} was not found in this key vault. If "
             "you recently deleted this secret you may be able to recover it "
             "using the correct recovery command. For help resolving this "
             "issue, please see https://go.microsoft.com/fwlink/?linkid="
             "2125182")
DELETED_CONFLICT = ("Secret {} is currently in a deleted but recoverable "
                    "state, and its name cannot be reused; in this state, the "
                    "secret can only be recovered or purged.")


def _new_version():
    return uuid.uuid4().hex


def _new_token():
    return "azemu." + _random.token_urlsafe(48)


class KvError(Exception):
    """A Key Vault error: {"error":{"code","message","innererror"?}}."""

    def __init__(self, status, code, message, inner=None, headers=()):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.inner, self.headers = inner, list(headers)


class AadError(Exception):
    """An Entra ID token endpoint error: {"error","error_description",
    "error_codes",...}."""

    def __init__(self, status, error, description, code):
        super().__init__(description)
        self.status, self.error, self.code = status, error, code
        self.description = description


class Version:
    def __init__(self, vid, value, content_type, tags, enabled, nbf, exp,
                 now):
        self.id, self.value = vid, value
        self.content_type, self.tags = content_type, tags
        self.enabled, self.nbf, self.exp = enabled, nbf, exp
        self.created = self.updated = now


class Secret:
    def __init__(self, name):
        self.name = name                # as first written
        self.versions = {}              # id -> Version, in creation order
        self.deleted_date = None        # set while soft-deleted
        self.scheduled_purge = None

    @property
    def latest(self):
        return next(reversed(self.versions.values()))


class Identity:
    """Who a token speaks for: a client id with a permission set."""

    def __init__(self, client_id, kind, perms, secret=None):
        self.client_id = client_id
        self.object_id = str(uuid.uuid4())
        self.kind = kind        # "client", "federated", "managed"
        self.perms = set(ALL_PERMS if perms is None else perms)
        self.secret = secret
        self.assertions = set()


class Token:
    def __init__(self, value, identity, tenant, audience, expires, source):
        self.value, self.identity, self.tenant = value, identity, tenant
        self.audience, self.expires, self.source = audience, expires, source

    def __repr__(self):
        return (f"Token({self.source}, {self.identity.client_id}, "
                f"{self.audience}, expires {self.expires:.0f})")


class AzureEmulator(EmulatorServer):
    """Key Vault + login + managed identity endpoints.

    Knobs (attributes, settable at any time):
      token_lifetime      seconds an issued token lives (default 3599)
      challenge_authority None: the 401 challenge names
                          https://login.microsoftonline.com/<tenant>;
                          a URL (e.g. emu.login_url): that host instead
      challenge_scope     also send scope="https://vault.azure.net/.default"
      challenge_resource  the resource= of the challenge
      imds_numbers        IMDS/App Service send expires_in/expires_on as
                          JSON numbers instead of strings
      identity_header     the X-IDENTITY-HEADER App Service wants
      api_versions        the api-version values Key Vault accepts
      vault_host          host[:port] written into ids (default: the
                          request's Host header)
      on_secret           called with every value and credential it is
                          given or hands out (leak checking)

    Every logged Request gets .op: a Key Vault operation ("GetSecret",
    "SetSecret", "UpdateSecret", "GetSecrets", "GetSecretVersions",
    "DeleteSecret", "GetDeletedSecret", "GetDeletedSecrets",
    "RecoverDeletedSecret", "PurgeDeletedSecret"), "token", "openid",
    "discovery", "imds" or "appservice"; and .token (the bearer it carried),
    .identity (client id) once authenticated, .kv_error / .aad_error when
    answered with one.

    Choices where Azure is not fully documented:
    - api-version is checked first (400 MissingApiVersionParameter /
      BadParameter), then the token (401 + challenge), then the name, then
      permissions (403 before 404, as Key Vault checks the access policy
      before looking).
    - Wrong-audience, foreign-tenant, expired and unknown tokens all get
      401 Unauthorized with the challenge (messages AKV10022, AKV10032,
      AKV10000 as real vaults write them).
    - nbf/exp are stored and returned, not enforced (Key Vault documents
      them as informational for secrets).
    - Soft delete and recover take effect at once (real ones take seconds).
    - DeletedSecretBundle and the recover answer carry no value.
    """

    name = "azure"

    def __init__(self, tenant=DEFAULT_TENANT, *, tls=True, on_secret=None,
                 metadata=True, **server_kw):
        super().__init__(tls=tls, **server_kw)
        self.tenant = tenant
        self.on_secret = on_secret
        self.token_lifetime = 3599
        self.challenge_authority = None
        self.challenge_scope = False
        self.challenge_resource = VAULT_AUDIENCE
        self.imds_numbers = False
        self.identity_header = "azemu-identity-" + _random.token_hex(8)
        self.api_versions = set(API_VERSIONS)
        self.vault_host = None
        self._lock = threading.RLock()
        self._secrets = {}          # lower-case name -> Secret (live)
        self._deleted = {}          # lower-case name -> Secret (deleted)
        self._identities = {}       # client id -> Identity
        self._managed = []          # client ids of managed identities
        self._tokens = {}           # value -> Token
        self.issued = []            # Tokens in order of issue
        self._imds_status_next = []  # (status, headers) for IMDS
        self._req_local = threading.local()
        self._secret_value(self.identity_header)
        self.metadata = _MetadataServer(self, host=self.host) \
            if metadata else None

    # ------------------------------------------------------- lifecycle

    def start(self):
        super().start()
        if self.metadata is not None:
            self.metadata.start()
        return self

    def stop(self):
        if self.metadata is not None:
            self.metadata.stop()
        super().stop()

    @property
    def ca_file(self):
        """The test CA (a path string) clients must trust; None without
        TLS."""
        return str(self.tls.ca_file) if self.tls else None

    @property
    def vault_url(self):
        return self.url

    @property
    def login_url(self):
        """What clients take as authority host (AZURE_AUTHORITY_HOST)."""
        return self.url

    @property
    def metadata_url(self):
        return self.metadata.url

    @property
    def imds_url(self):
        """AZURE_POD_IDENTITY_AUTHORITY_HOST / IMDS_ENDPOINT for clients."""
        return self.metadata.url

    @property
    def identity_endpoint(self):
        """IDENTITY_ENDPOINT (App Service); IDENTITY_HEADER is
        emu.identity_header."""
        return self.metadata.url + "/msi/token"

    def _secret_value(self, value):
        if self.on_secret and value:
            self.on_secret(value)
        return value

    # ============================================================ test API

    def set_secret(self, name, value, tags=None, enabled=True,
                   content_type=None, nbf=None, exp=None):
        """Add a version (creating the secret); returns the version id."""
        if not NAME_OK.match(name):
            raise ValueError(f"invalid Key Vault secret name {name!r}")
        self._secret_value(value)
        with self._lock:
            if name.lower() in self._deleted:
                raise ValueError(f"{name} is soft-deleted")
            return self._add_version(name, value, content_type, tags,
                                     enabled, nbf, exp).id

    def _add_version(self, name, value, content_type, tags, enabled, nbf,
                     exp):
        s = self._secrets.get(name.lower())
        if s is None:
            s = self._secrets[name.lower()] = Secret(name)
        v = Version(_new_version(), value, content_type,
                    dict(tags) if tags is not None else None, enabled, nbf,
                    exp, int(time.time()))
        s.versions[v.id] = v
        return v

    def get_secret(self, name, version=None):
        """The value of the latest (or the given) version; KeyError when
        absent or soft-deleted."""
        return self.version(name, version).value

    def version(self, name, version=None):
        """The Version object (.id .value .enabled .tags .content_type
        .created .updated .nbf .exp)."""
        with self._lock:
            s = self._secrets[name.lower()]
            return s.versions[version] if version else s.latest

    def versions(self, name):
        """Version ids, oldest first."""
        with self._lock:
            return list(self._secrets[name.lower()].versions)

    def names(self):
        with self._lock:
            return sorted(s.name for s in self._secrets.values())

    def deleted_names(self):
        with self._lock:
            return sorted(s.name for s in self._deleted.values())

    def disable(self, name, version=None, enabled=False):
        """Disable the latest (or given) version; enable with
        enabled=True."""
        with self._lock:
            v = self.version(name, version)
            v.enabled = enabled
            v.updated = int(time.time())

    def enable(self, name, version=None):
        self.disable(name, version, enabled=True)

    def soft_delete(self, name):
        with self._lock:
            s = self._secrets.pop(name.lower())
            self._mark_deleted(s)

    def _mark_deleted(self, s):
        now = int(time.time())
        s.deleted_date = now
        s.scheduled_purge = now + RECOVERABLE_DAYS * 86400
        self._deleted[s.name.lower()] = s

    def recover(self, name):
        with self._lock:
            s = self._deleted.pop(name.lower())
            s.deleted_date = s.scheduled_purge = None
            self._secrets[name.lower()] = s

    def purge(self, name):
        with self._lock:
            del self._deleted[name.lower()]

    def add_client(self, client_id, secret, perms=None):
        """An app registration with a client secret. perms: None (all) or
        a subset of get, list, set, delete, recover, purge."""
        self._secret_value(secret)
        with self._lock:
            ident = self._identity(client_id, "client", perms)
            ident.secret = secret
            return ident

    def add_federated(self, client_id, assertion, perms=None):
        """Accept assertion (a federated token, e.g. the content of
        AZURE_FEDERATED_TOKEN_FILE) as client_assertion for client_id; call
        again to accept another one (rotation)."""
        self._secret_value(assertion)
        with self._lock:
            ident = self._identity(client_id, "federated", perms)
            ident.assertions.add(assertion)
            return ident

    def reject_assertion(self, client_id, assertion):
        with self._lock:
            self._identities[client_id].assertions.discard(assertion)

    def add_managed_identity(self, client_id=None, perms=None):
        """A managed identity served by IMDS and App Service. The first one
        added is the system-assigned identity (used when the request names
        no client_id); client_id None makes one up. Returns the
        Identity (.client_id)."""
        with self._lock:
            ident = self._identity(client_id or str(uuid.uuid4()), "managed",
                                   perms)
            self._managed.append(ident.client_id)
            return ident

    def _identity(self, client_id, kind, perms):
        ident = self._identities.get(client_id)
        if ident is None:
            ident = self._identities[client_id] = Identity(client_id, kind,
                                                           perms)
        elif perms is not None:
            ident.perms = set(perms)
        return ident

    def set_perms(self, client_id, perms):
        with self._lock:
            self._identities[client_id].perms = set(perms)

    def issue_token(self, client_id, audience=VAULT_AUDIENCE, lifetime=None,
                    tenant=None, source="test"):
        """A token as if the token endpoint had handed it out."""
        with self._lock:
            return self._issue(self._identities[client_id], audience,
                               lifetime, tenant, source)

    def _issue(self, ident, audience, lifetime=None, tenant=None,
               source="token"):
        life = self.token_lifetime if lifetime is None else lifetime
        t = Token(_new_token(), ident, tenant or self.tenant,
                  audience.rstrip("/"), time.time() + life, source)
        self._secret_value(t.value)
        with self._lock:
            self._tokens[t.value] = t
            self.issued.append(t)
        return t

    def issued_by(self, source):
        """Tokens handed out by "token" (the login host), "imds",
        "appservice" or "test"."""
        return [t for t in self.issued if t.source == source]

    def expire_tokens(self):
        """Every token issued so far expires now."""
        with self._lock:
            for t in self._tokens.values():
                t.expires = time.time() - 1

    def revoke_tokens(self):
        with self._lock:
            self._tokens.clear()

    def imds_status_next(self, n=1, status=410, retry_after=None):
        """The next n IMDS token requests are answered status (410: IMDS
        is updating, 429, 5xx, 404) in IMDS's own error shape."""
        hdrs = [("Retry-After", str(retry_after))] if retry_after else []
        with self._lock:
            self._imds_status_next += [(status, hdrs)] * n

    # ------------------------------------------------------ the log

    def calls(self, op=None):
        """Requests of op ("GetSecret", "token", "imds"...), all if None."""
        return [r for r in self.requests
                if op is None or getattr(r, "op", None) == op]

    def count_op(self, op):
        return len(self.calls(op))

    def ops(self):
        return [getattr(r, "op", None) for r in self.requests]

    def vault_calls(self):
        """Requests to the Key Vault data plane, in order."""
        return [r for r in self.requests
                if r.path.startswith(("/secrets", "/deletedsecrets"))]

    # ------------------------------------------------------ fault bodies

    def fault_path(self, req):
        # error_response has no req: remember which protocol it speaks
        self._req_local.req = req
        req.op = self._op_of(req)       # also for requests a fault answers
        return req.path

    def _op_of(self, req):
        kind = self._kind(req)
        if kind in ("imds", "appservice"):
            return kind
        if kind == "kv":
            return self._route(req)[0] or "kv"
        parts = req.path.strip("/").split("/")
        if req.path.startswith("/common/discovery/instance"):
            return "discovery"
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return "openid"
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return "token"
        return "login"

    def error_response(self, status, message=None):
        req = getattr(self._req_local, "req", None)
        kind = self._kind(req) if req is not None else "kv"
        if kind in ("imds", "appservice"):
            return _json(status, {"error": "service_unavailable" if status
                                  >= 500 else "too_many_requests" if
                                  status == 429 else "invalid_request",
                                  "error_description": message or
                                  f"HTTP {status}"})
        if kind == "login":
            return self._aad_error(AadError(
                status, "temporarily_unavailable" if status >= 429 else
                "invalid_request", message or "AADSTS90033: A transient "
                "error has occurred. Please try again.", 90033))
        codes = {400: ("BadParameter", "Bad request"),
                 401: ("Unauthorized", "AKV10000: Request is missing a "
                       "Bearer or PoP token."),
                 403: ("Forbidden", "Access denied"),
                 404: ("SecretNotFound", "Secret not found"),
                 409: ("Conflict", "Conflict"),
                 429: ("Throttled", "Request was not processed because too "
                       "many requests were received. Reason: A generic "
                       "throttling rule was violated. Please retry after "
                       "a few seconds."),
                 500: ("InternalServerError", "Internal server error"),
                 502: ("BadGateway", "Bad gateway"),
                 503: ("ServiceUnavailable", "The service is unavailable")}
        code, text = codes.get(status, ("InternalServerError", f"HTTP "
                                        f"{status}"))
        return self._kv_error(KvError(status, code, message or text))

    def garbage_body(self, kind, req):
        presets = {
            "not-json": b"<html><body>502 Bad Gateway</body></html>\n",
            "truncated": b'{"value":"tru',
            "empty": b"",
            "null": b"null",
            "array": b"[1,2,3]",
            "no-value": _bytes({"id": "https://v/secrets/x/" + "0" * 32,
                                "attributes": {"enabled": True}}),
            "wrong-types": _bytes({"value": 42, "id": ["x"],
                                   "attributes": "yes"}),
        }
        try:
            return presets[kind]
        except KeyError:
            raise ValueError(f"unknown garbage kind {kind!r}") from None

    def huge_body(self, size, req):
        return _bytes({"value": "A" * size,
                       "id": f"https://{req.header('Host')}/secrets/huge/"
                       + "0" * 32,
                       "attributes": {"enabled": True}})

    # ============================================================ serving

    @staticmethod
    def _kind(req):
        p = req.path
        if p.startswith("/metadata/"):
            return "imds"
        if p.startswith("/msi/"):
            return "appservice"
        if p == "/secrets" or p.startswith(("/secrets/", "/deletedsecrets")):
            return "kv"
        return "login"

    def handle(self, req):
        kind = self._kind(req)
        if kind == "kv":
            try:
                return self._kv(req)
            except KvError as e:
                req.kv_error = e.inner or e.code
                return self._kv_error(e)
        if kind == "login":
            return self._login(req)
        return Response(404, b"Not Found\n", [("Content-Type",
                                                "text/plain")])

    def handle_metadata(self, req):
        kind = self._kind(req)
        if kind == "imds":
            req.op = "imds"
            return self._imds(req)
        if kind == "appservice":
            req.op = "appservice"
            return self._appservice(req)
        return Response(404, b"Not Found\n", [("Content-Type",
                                                "text/plain")])

    # ------------------------------------------------------------ errors

    def _kv_error(self, e):
        err = Struct(code=e.code, message=e.message)
        if e.inner:
            err["innererror"] = Struct(code=e.inner)
        headers = [("x-ms-request-id", str(uuid.uuid4()))] + e.headers
        return _json(e.status, Struct(error=err), headers)

    def _aad_error(self, e, req=None):
        if req is not None:
            req.aad_error = e.error
        now = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        return _json(e.status, Struct(
            error=e.error,
            error_description=f"{e.description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {corr}\r\nTimestamp: {now}",
            error_codes=[e.code], timestamp=now, trace_id=trace,
            correlation_id=corr, error_uri=f"{PUBLIC_LOGIN}/error?code="
            f"{e.code}"))

    def _challenge(self):
        base = (self.challenge_authority or PUBLIC_LOGIN).rstrip("/")
        parts = [f'authorization="{base}/{self.tenant}"',
                 f'resource="{self.challenge_resource}"']
        if self.challenge_scope:
            parts.append(f'scope="{self.challenge_resource}/.default"')
        return "Bearer " + ", ".join(parts)

    def _unauthorized(self, message):
        return KvError(401, "Unauthorized", message, headers=[
            ("WWW-Authenticate", self._challenge())])

    # --------------------------------------------------------- Key Vault

    def _host(self, req):
        return self.vault_host or req.header("Host") or \
            f"{self.host}:{self.port}"

    def _authenticate(self, req):
        auth = req.header("Authorization")
        if not auth:
            raise self._unauthorized("AKV10000: Request is missing a Bearer "
                                     "or PoP token.")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise self._unauthorized("AKV10000: Request is missing a Bearer "
                                     "or PoP token.")
        value = value.strip()
        req.token = value
        with self._lock:
            tok = self._tokens.get(value)
        if tok is None:
            raise self._unauthorized("AKV10000: Request is missing a Bearer "
                                     "or PoP token.")
        if tok.expires <= time.time():
            raise self._unauthorized("AKV10000: Token is expired.")
        if tok.audience.rstrip("/") != VAULT_AUDIENCE:
            raise self._unauthorized(
                f"AKV10022: Invalid audience. Expected {VAULT_AUDIENCE}, "
                f"found: {tok.audience}.")
        if tok.tenant != self.tenant:
            raise self._unauthorized(
                "AKV10032: Invalid issuer. Expected one of https://"
                f"sts.windows.net/{self.tenant}/, found: https://"
                f"sts.windows.net/{tok.tenant}/.")
        req.identity = tok.identity.client_id
        return tok.identity

    def _authorize(self, req, ident, perm):
        if perm not in ident.perms:
            raise KvError(
                403, "Forbidden", "The user, group or application 'appid="
                f"{ident.client_id};oid={ident.object_id};iss=https://"
                f"sts.windows.net/{self.tenant}/' does not have secrets "
                f"{perm} permission on key vault '{self._host(req)}'. For "
                "help resolving this issue, please see https://go."
                "microsoft.com/fwlink/?linkid=2125287", "AccessDenied")

    ROUTES = [
        ("GET", r"/secrets/?", "GetSecrets", "list"),
        ("GET", r"/secrets/(?P<n>[^/]+)/versions", "GetSecretVersions",
         "list"),
        ("GET", r"/secrets/(?P<n>[^/]+)/?(?P<v>[^/]*)", "GetSecret", "get"),
        ("PUT", r"/secrets/(?P<n>[^/]+)", "SetSecret", "set"),
        ("PATCH", r"/secrets/(?P<n>[^/]+)/?(?P<v>[^/]*)", "UpdateSecret",
         "set"),
        ("DELETE", r"/secrets/(?P<n>[^/]+)", "DeleteSecret", "delete"),
        ("GET", r"/deletedsecrets/?", "GetDeletedSecrets", "list"),
        ("GET", r"/deletedsecrets/(?P<n>[^/]+)", "GetDeletedSecret", "get"),
        ("POST", r"/deletedsecrets/(?P<n>[^/]+)/recover",
         "RecoverDeletedSecret", "recover"),
        ("DELETE", r"/deletedsecrets/(?P<n>[^/]+)", "PurgeDeletedSecret",
         "purge"),
    ]

    def _route(self, req):
        path = req.path
        for method, pattern, op, perm in self.ROUTES:
            m = re.fullmatch(pattern, path)
            if m is not None and (method == req.method):
                return op, perm, m.groupdict()
        for method, pattern, op, perm in self.ROUTES:
            if re.fullmatch(pattern, path):
                return None, None, None     # known path, wrong method
        return "", None, None

    def _kv(self, req):
        op, perm, args = self._route(req)
        req.op = op or "kv"
        api = req.qs("api-version")
        if api is None:
            raise KvError(400, "MissingApiVersionParameter",
                          "The api-version query parameter (?api-version=) "
                          "is required for all requests.")
        if api not in self.api_versions:
            raise KvError(400, "BadParameter", f"The specified version "
                          f"({api}) is not recognized. Consider using the "
                          "latest supported version (7.4).")
        ident = self._authenticate(req)
        if op is None:
            raise KvError(405, "MethodNotAllowed", f"The requested resource "
                          f"does not support http method '{req.method}'.")
        if op == "":
            raise KvError(404, "NotFound", "The requested resource was not "
                          "found.")
        name = args.get("n")
        if name is not None and not NAME_OK.match(name):
            raise KvError(400, "BadParameter", "The request URI contains an "
                          f"invalid name: {name}")
        self._authorize(req, ident, perm)
        with self._lock:
            return getattr(self, "_op_" + op)(req, name, args.get("v"))

    def _live(self, name):
        s = self._secrets.get(name.lower())
        if s is None:
            raise KvError(404, "SecretNotFound", NOT_FOUND.format(name))
        return s

    def _bundle(self, req, s, v, with_value=True):
        host = self._host(req)
        b = Struct()
        if with_value:
            b["value"] = v.value
        if v.content_type is not None:
            b["contentType"] = v.content_type
        b["id"] = f"https://{host}/secrets/{s.name}/{v.id}"
        b["attributes"] = self._attributes(v)
        if v.tags is not None:
            b["tags"] = v.tags
        return b

    @staticmethod
    def _attributes(v):
        a = Struct(enabled=v.enabled)
        if v.nbf is not None:
            a["nbf"] = v.nbf
        if v.exp is not None:
            a["exp"] = v.exp
        a["created"] = v.created
        a["updated"] = v.updated
        a["recoverableDays"] = RECOVERABLE_DAYS
        a["recoveryLevel"] = "Recoverable+Purgeable"
        return a

    def _item(self, req, s, v, with_version=False):
        host = self._host(req)
        it = Struct(id=f"https://{host}/secrets/{s.name}" +
                    (f"/{v.id}" if with_version else ""))
        it["attributes"] = self._attributes(v)
        if v.tags is not None:
            it["tags"] = v.tags
        if v.content_type is not None:
            it["contentType"] = v.content_type
        return it

    def _deleted_fields(self, req, s, obj):
        out = Struct(recoveryId=f"https://{self._host(req)}/deletedsecrets/"
                     f"{s.name}", deletedDate=s.deleted_date,
                     scheduledPurgeDate=s.scheduled_purge)
        out.update(obj)
        return out

    def _op_GetSecret(self, req, name, version):
        s = self._live(name)
        if version:
            v = s.versions.get(version.lower())
            if v is None:
                raise KvError(404, "SecretNotFound",
                              NOT_FOUND.format(f"{name}/{version}"))
        else:
            v = s.latest
        if not v.enabled:
            raise KvError(403, "Forbidden", "Operation get is not allowed on "
                          "a disabled secret.", "SecretDisabled")
        return _json(200, self._bundle(req, s, v))

    def _op_SetSecret(self, req, name, _):
        body = self._body(req)
        value = body.get("value")
        if not isinstance(value, str):
            raise KvError(400, "BadParameter", "Property value is required "
                          "and must be a string.")
        if len(value.encode()) > MAX_VALUE:
            raise KvError(400, "BadParameter", "The secret value exceeds "
                          f"the maximum size of {MAX_VALUE} bytes.")
        ctype, tags, attrs = self._meta(body)
        if name.lower() in self._deleted:
            raise KvError(409, "Conflict", DELETED_CONFLICT.format(name),
                          "ObjectIsDeletedButRecoverable")
        self._secret_value(value)
        v = self._add_version(name, value, ctype, tags,
                              attrs.get("enabled", True), attrs.get("nbf"),
                              attrs.get("exp"))
        return _json(200, self._bundle(req, self._secrets[name.lower()], v))

    def _op_UpdateSecret(self, req, name, version):
        body = self._body(req)
        s = self._live(name)
        v = s.versions.get(version.lower()) if version else s.latest
        if v is None:
            raise KvError(404, "SecretNotFound",
                          NOT_FOUND.format(f"{name}/{version}"))
        ctype, tags, attrs = self._meta(body)
        if "contentType" in body:
            v.content_type = ctype
        if "tags" in body:
            v.tags = tags
        for k in ("enabled", "nbf", "exp"):
            if k in attrs:
                setattr(v, k, attrs[k])
        v.updated = int(time.time())
        return _json(200, self._bundle(req, s, v, with_value=False))

    def _op_DeleteSecret(self, req, name, _):
        s = self._live(name)
        del self._secrets[name.lower()]
        self._mark_deleted(s)
        return _json(200, self._deleted_fields(
            req, s, self._bundle(req, s, s.latest, with_value=False)))

    def _op_GetDeletedSecret(self, req, name, _):
        s = self._deleted.get(name.lower())
        if s is None:
            raise KvError(404, "SecretNotFound", f"Deleted Secret not found: "
                          f"{name}")
        return _json(200, self._deleted_fields(
            req, s, self._bundle(req, s, s.latest, with_value=False)))

    def _op_RecoverDeletedSecret(self, req, name, _):
        s = self._deleted.get(name.lower())
        if s is None:
            raise KvError(404, "SecretNotFound", f"Deleted Secret not found: "
                          f"{name}")
        if name.lower() in self._secrets:
            raise KvError(409, "Conflict", f"Secret {name} already exists.")
        self.recover(name)
        return _json(200, self._bundle(req, s, s.latest, with_value=False))

    def _op_PurgeDeletedSecret(self, req, name, _):
        if name.lower() not in self._deleted:
            raise KvError(404, "SecretNotFound", f"Deleted Secret not found: "
                          f"{name}")
        del self._deleted[name.lower()]
        return Response(204)

    def _page(self, req, items, path):
        raw = req.qs("maxresults")
        try:
            n = MAX_RESULTS if raw in (None, "") else int(raw)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_RESULTS:
            raise KvError(400, "BadParameter", f"invalid maxresults: {raw}. "
                          f"The value must be between 1 and {MAX_RESULTS}.")
        start = 0
        skip = req.qs("$skiptoken")
        if skip:
            try:
                start = int(_unb64(skip))
            except ValueError:
                raise KvError(400, "BadParameter", "The $skiptoken is "
                              "invalid.") from None
        page = items[start:start + n]
        nxt = None
        if start + n < len(items):
            q = urllib.parse.urlencode({"api-version": req.qs("api-version"),
                                        "$skiptoken": _b64(str(start + n)),
                                        "maxresults": n})
            nxt = f"https://{self._host(req)}{path}?{q}"
        return _json(200, Struct(value=page, nextLink=nxt))

    def _op_GetSecrets(self, req, _n, _v):
        items = [self._item(req, s, s.latest) for s in
                 sorted(self._secrets.values(), key=lambda s: s.name.lower())]
        return self._page(req, items, "/secrets")

    def _op_GetSecretVersions(self, req, name, _):
        s = self._live(name)
        items = [self._item(req, s, v, with_version=True)
                 for v in s.versions.values()]
        return self._page(req, items, f"/secrets/{s.name}/versions")

    def _op_GetDeletedSecrets(self, req, _n, _v):
        items = [self._deleted_fields(req, s, self._item(req, s, s.latest))
                 for s in sorted(self._deleted.values(),
                                 key=lambda s: s.name.lower())]
        return self._page(req, items, "/deletedsecrets")

    @staticmethod
    def _body(req):
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise KvError(400, "BadParameter", "The request body is not "
                          "valid JSON.")
        return body

    @staticmethod
    def _meta(body):
        ctype = body.get("contentType")
        tags = body.get("tags")
        attrs = body.get("attributes") or {}
        if ctype is not None and not isinstance(ctype, str):
            raise KvError(400, "BadParameter", "contentType must be a "
                          "string.")
        if tags is not None and not (isinstance(tags, dict) and all(
                isinstance(v, str) for v in tags.values())):
            raise KvError(400, "BadParameter", "tags must be an object of "
                          "strings.")
        if not isinstance(attrs, dict):
            raise KvError(400, "BadParameter", "attributes must be an "
                          "object.")
        if "enabled" in attrs and not isinstance(attrs["enabled"], bool):
            raise KvError(400, "BadParameter", "attributes.enabled must be "
                          "a boolean.")
        for k in ("nbf", "exp"):
            if attrs.get(k) is not None and not isinstance(attrs[k], int):
                raise KvError(400, "BadParameter", f"attributes.{k} must be "
                              "unix seconds.")
        return ctype, tags, attrs

    # -------------------------------------------------------- login host

    def _login(self, req):
        parts = req.path.strip("/").split("/")
        if req.path.startswith("/common/discovery/instance"):
            req.op = "discovery"
            return self._discovery(req)
        if len(parts) >= 2 and parts[1:] == ["v2.0", ".well-known",
                                              "openid-configuration"]:
            req.op = "openid"
            return self._openid(req, parts[0])
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            req.op = "token"
            try:
                return self._token_endpoint(req, parts[0])
            except AadError as e:
                return self._aad_error(e, req)
        return Response(404, b"Not Found\n", [("Content-Type",
                                                "text/plain")])

    def _base(self, req):
        return f"https://{req.header('Host') or f'{self.host}:{self.port}'}"

    def _tenant_ok(self, tenant):
        return tenant in (self.tenant, "organizations", "common")

    def _openid(self, req, tenant):
        if not self._tenant_ok(tenant):
            return self._aad_error(AadError(
                400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not "
                "found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.", 90002), req)
        base, t = self._base(req), self.tenant
        return _json(200, Struct(
            token_endpoint=f"{base}/{t}/oauth2/v2.0/token",
            token_endpoint_auth_methods_supported=[
                "client_secret_post", "private_key_jwt",
                "client_secret_basic"],
            jwks_uri=f"{base}/{t}/discovery/v2.0/keys",
            response_modes_supported=["query", "fragment", "form_post"],
            subject_types_supported=["pairwise"],
            id_token_signing_alg_values_supported=["RS256"],
            response_types_supported=["code", "id_token", "code id_token",
                                      "id_token token"],
            scopes_supported=["openid", "profile", "email",
                              "offline_access"],
            issuer=f"{base}/{t}/v2.0",
            request_uri_parameter_supported=False,
            userinfo_endpoint="https://graph.microsoft.com/oidc/userinfo",
            authorization_endpoint=f"{base}/{t}/oauth2/v2.0/authorize",
            device_authorization_endpoint=f"{base}/{t}/oauth2/v2.0/"
            "devicecode",
            http_logout_supported=True, frontchannel_logout_supported=True,
            end_session_endpoint=f"{base}/{t}/oauth2/v2.0/logout",
            claims_supported=["sub", "iss", "aud", "exp", "iat", "tid"],
            kerberos_endpoint=f"{base}/{t}/kerberos",
            tenant_region_scope=None, cloud_instance_name="microsoftonline."
            "com", cloud_graph_host_name="graph.windows.net",
            msgraph_host="graph.microsoft.com", rbac_url="https://pas."
            "windows.net"))

    def _discovery(self, req):
        host = req.header("Host") or f"{self.host}:{self.port}"
        auth_ep = req.qs("authorization_endpoint") or \
            f"https://{host}/common/oauth2/v2.0/authorize"
        tenant = urllib.parse.urlsplit(auth_ep).path.strip("/").split("/")[0]
        return _json(200, Struct(
            tenant_discovery_endpoint=f"https://{host}/{tenant or 'common'}"
            "/v2.0/.well-known/openid-configuration",
            **{"api-version": "1.1"},
            metadata=[Struct(preferred_network=host, preferred_cache=host,
                             aliases=[host])]))

    def _token_endpoint(self, req, tenant):
        if req.method != "POST":
            raise AadError(405, "invalid_request", "AADSTS900561: The "
                           "endpoint only accepts POST requests.", 900561)
        ctype = (req.header("Content-Type") or "").split(";")[0].strip()
        if ctype.lower() != "application/x-www-form-urlencoded":
            raise AadError(400, "invalid_request", "AADSTS900144: The "
                           "request body must contain the following "
                           "parameter: 'grant_type'.", 900144)
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(
            req.body.decode("utf-8", "replace"),
            keep_blank_values=True).items()}
        req.form_fields = sorted(form)
        if not self._tenant_ok(tenant):
            raise AadError(400, "invalid_request", f"AADSTS90002: Tenant "
                           f"'{tenant}' not found. Check to make sure you "
                           "have the correct tenant ID and are signing into "
                           "the correct cloud.", 90002)
        for need in ("grant_type", "client_id", "scope"):
            if not form.get(need):
                raise AadError(400, "invalid_request", "AADSTS900144: The "
                               "request body must contain the following "
                               f"parameter: '{need}'.", 900144)
        if form["grant_type"] != "client_credentials":
            raise AadError(400, "unsupported_grant_type", "AADSTS70003: The "
                           "app requested an unsupported grant type '"
                           f"{form['grant_type']}'.", 70003)
        scope = form["scope"].split()
        if len(scope) != 1 or not scope[0].endswith("/.default"):
            raise AadError(400, "invalid_scope", "AADSTS1002012: The "
                           f"provided value for scope {form['scope']} is not "
                           "valid. Client credential flows must have a scope "
                           "value with /.default suffixed to the resource "
                           "identifier (application ID URI).", 1002012)
        audience = scope[0][:-len("/.default")]
        cid = form["client_id"]
        with self._lock:
            ident = self._identities.get(cid)
        if ident is None or ident.kind == "managed":
            raise AadError(400, "unauthorized_client", "AADSTS700016: "
                           f"Application with identifier '{cid}' was not "
                           f"found in the directory '{self.tenant}'.",
                           700016)
        req.identity = cid
        if "client_secret" in form:
            if ident.secret is None or not _eq(form["client_secret"],
                                               ident.secret):
                raise AadError(401, "invalid_client", "AADSTS7000215: "
                               "Invalid client secret provided. Ensure the "
                               "secret being sent in the request is the "
                               "client secret value, not the client secret "
                               f"ID, for a secret added to app '{cid}'.",
                               7000215)
        elif "client_assertion" in form:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise AadError(400, "invalid_request", "AADSTS50027: "
                               "client_assertion_type must be "
                               f"{JWT_BEARER}.", 50027)
            with self._lock:
                ok = form["client_assertion"] in ident.assertions
            if not ok:
                raise AadError(400, "invalid_client", "AADSTS700213: No "
                               "matching federated identity record found for "
                               "presented assertion.", 700213)
        else:
            raise AadError(401, "invalid_client", "AADSTS7000218: The "
                           "request body must contain the following "
                           "parameter: 'client_assertion' or "
                           "'client_secret'.", 7000218)
        tok = self._issue(ident, audience, source="token")
        life = max(0, int(round(tok.expires - time.time())))
        return _json(200, Struct(token_type="Bearer", expires_in=life,
                                 ext_expires_in=life,
                                 access_token=tok.value))

    # ------------------------------------------------- managed identity

    def _mi_identity(self, req):
        """The managed Identity a request names (client_id), or the
        system-assigned one."""
        cid = req.qs("client_id")
        with self._lock:
            if not self._managed:
                return None
            if cid is None:
                if req.qs("object_id") or req.qs("msi_res_id") or \
                        req.qs("mi_res_id") or req.qs("principal_id"):
                    return None
                return self._identities[self._managed[0]]
            return self._identities[cid] if cid in self._managed else None

    def _mi_token(self, req, source, with_times):
        resource = req.qs("resource")
        ident = self._mi_identity(req)
        if ident is None:
            return _json(400, Struct(error="invalid_request",
                                     error_description="Identity not found"))
        req.identity = ident.client_id
        tok = self._issue(ident, resource, source=source)
        life = max(0, int(round(tok.expires - time.time())))
        num = (lambda x: x) if self.imds_numbers else str
        body = Struct(access_token=tok.value, client_id=ident.client_id)
        if with_times:
            body["expires_in"] = num(life)
        body["expires_on"] = num(int(tok.expires))
        if with_times:
            body["ext_expires_in"] = num(life)
            body["not_before"] = num(int(tok.expires) - life)
        body["resource"] = resource
        body["token_type"] = "Bearer"
        return _json(200, body)

    def _imds(self, req):
        with self._lock:
            forced = self._imds_status_next.pop(0) \
                if self._imds_status_next else None
        if req.path.rstrip("/") != "/metadata/identity/oauth2/token":
            return _json(404, Struct(error="invalid_request",
                                     error_description="Not found"))
        if req.method != "GET":
            return _json(405, Struct(error="invalid_request",
                                     error_description="Method not allowed"))
        if (req.header("Metadata") or "").lower() != "true":
            return _json(400, Struct(error="invalid_request",
                                     error_description="Required metadata "
                                     "header not specified"))
        if forced is not None:
            status, hdrs = forced
            return _json(status, Struct(
                error="service_unavailable" if status != 429 else
                "too_many_requests", error_description="IMDS is updating" if
                status == 410 else f"HTTP {status}"), hdrs)
        if not req.qs("api-version"):
            return _json(400, Struct(error="invalid_request",
                                     error_description="Required query "
                                     "variable 'api-version' is missing"))
        if not req.qs("resource"):
            return _json(400, Struct(error="invalid_request",
                                     error_description="Required query "
                                     "variable 'resource' is missing"))
        return self._mi_token(req, "imds", with_times=True)

    def _appservice(self, req):
        if req.path.rstrip("/") != "/msi/token" or req.method != "GET":
            return Response(404, b"Not Found\n", [("Content-Type",
                                                    "text/plain")])
        given = req.header("X-IDENTITY-HEADER")
        if given is None or not _eq(given, self.identity_header):
            return _json(401, Struct(statusCode=401, message="Unauthorized "
                                     "request: X-IDENTITY-HEADER is missing "
                                     "or wrong"))
        if req.qs("api-version") != "2019-08-01":
            return _json(400, Struct(statusCode=400, message="api-version "
                                     "must be 2019-08-01"))
        if not req.qs("resource"):
            return _json(400, Struct(statusCode=400, message="resource is "
                                     "required"))
        return self._mi_token(req, "appservice", with_times=False)


class _MetadataServer(EmulatorServer):
    """The plain-http server for IMDS and App Service: its requests, fault
    rules and errors go to the AzureEmulator's."""

    name = "azure-metadata"

    def __init__(self, parent, **kw):
        super().__init__(tls=False, **kw)
        self.parent = parent
        self.faults = parent.faults
        self.errors = parent.errors
        self.conn_errors = parent.conn_errors
        self.verbose = parent.verbose

    def _log(self, req):
        self.parent._log(req)

    def fault_path(self, req):
        return self.parent.fault_path(req)

    def handle(self, req):
        return self.parent.handle_metadata(req)

    def error_response(self, status, message=None):
        return self.parent.error_response(status, message)


def _bytes(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _json(status, obj, headers=()):
    # Key Vault and Entra write compact JSON, keys in their own order
    return Response(status, _bytes(obj), [("Content-Type", "application/"
                                           "json; charset=utf-8"),
                                          ("Cache-Control", "no-cache")]
                    + list(headers))


def _eq(a, b):
    import hmac
    return hmac.compare_digest(a.encode(), b.encode())


def _b64(text):
    import base64
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text):
    import base64
    import binascii
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) \
            .decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ValueError(str(e)) from None


# ------------------------------------------------------------------- CLI

def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="Azure Key Vault emulator (with "
                                 "Entra ID token, IMDS and App Service "
                                 "endpoints)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--metadata-port", type=int, default=0,
                    help="port of the plain-http IMDS/App Service server")
    ap.add_argument("--tenant", default=DEFAULT_TENANT)
    ap.add_argument("--client", action="append", default=[],
                    metavar="CLIENT_ID:SECRET")
    ap.add_argument("--federated", action="append", default=[],
                    metavar="CLIENT_ID=ASSERTION_FILE",
                    help="accept the file's content as client_assertion")
    ap.add_argument("--managed-identity", action="append", default=[],
                    metavar="CLIENT_ID", help="'system' for a made-up one")
    ap.add_argument("--secret", action="append", default=[],
                    metavar="NAME=VALUE")
    ap.add_argument("--token-lifetime", type=int, default=3599)
    ap.add_argument("--tls", metavar="DIR",
                    help="keep the test CA in DIR (default: a temporary "
                    "directory)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    emu = AzureEmulator(a.tenant, host=a.host, port=a.port, cert_dir=a.tls,
                        verbose=a.verbose)
    emu.metadata.port = a.metadata_port
    emu.token_lifetime = a.token_lifetime
    for spec in a.client or ["secretfs-test-client:secretfs-test-secret"]:
        cid, _, secret = spec.partition(":")
        emu.add_client(cid, secret)
    for spec in a.federated:
        cid, _, path = spec.partition("=")
        with open(path) as fh:
            emu.add_federated(cid, fh.read())
    for cid in a.managed_identity:
        emu.add_managed_identity(None if cid == "system" else cid)
    for spec in a.secret:
        name, _, value = spec.partition("=")
        emu.set_secret(name, value)
    emu.start()
    print(f"azure emulator: vault and login on {emu.url}  tenant "
          f"{emu.tenant}\n  AZURE_AUTHORITY_HOST={emu.login_url}\n"
          f"  AZURE_POD_IDENTITY_AUTHORITY_HOST={emu.imds_url}\n"
          f"  IDENTITY_ENDPOINT={emu.identity_endpoint} "
          f"IDENTITY_HEADER={emu.identity_header}", flush=True)
    return httpbase.serve_until_signal(emu)


if __name__ == "__main__":
    sys.exit(main())
