#!/usr/bin/python3
"""gcpsm.py - a protocol-faithful GCP Secret Manager v1 emulator for the
tests, with the Google token endpoints a client needs: OAuth 2.0
(JWT-bearer and refresh-token grants), STS token exchange (workload
identity federation), IAM credentials generateAccessToken (service
account impersonation) and the metadata server.

Two servers (httpbase.EmulatorServer) share one state, one request log
and one set of fault rules:

- the main server, https (a throw-away CA), answers
  * Secret Manager v1 REST (the JSON mapping of the gRPC API, lowerCamelCase
    fields, int64 as decimal strings, Google's error envelope
    {"error":{"code","message","status"}}) under /v1/projects/P/... and
    /v1/projects/P/locations/L/... (regional secrets: what
    secretmanager.L.rep.googleapis.com serves, on the same host here);
  * the OAuth token endpoint, POST /token (oauth2.googleapis.com/token);
  * STS, POST /v1/token (sts.googleapis.com/v1/token);
  * IAM credentials, POST /v1/projects/-/serviceAccounts/E:generateAccessToken
    (iamcredentials.googleapis.com);
- the metadata server, plain http like the real one
  (metadata.google.internal): /computeMetadata/v1/..., requiring
  Metadata-Flavor: Google and answering with it.

Bearer tokens are opaque ("ya29.emu-..."), bound to an identity, scopes and
an expiry; Secret Manager also takes a service account's self-signed JWT
(RS256, iss = sub = the account, aud https://secretmanager.googleapis.com/
or a scope claim), as Google does and as google-auth-library sends by
default for service-account keys.

    emu = GcpEmulator(project="p1").start()
    sa = emu.add_service_account("app@p1.iam.gserviceaccount.com",
                                 perms={"accessor"})
    sa.write_adc(path)            # service_account ADC JSON, mode 0600
    n = emu.add_version("p1", "db", b"pw")        # creates the secret
    ...
    emu.stop()

Run by hand:  /usr/bin/python3 tests/emulators/gcpsm.py --port 0 [-v]

(Not google*.py: tests/emulators is on sys.path and would shadow the real
google namespace package.)

Choices where Google is not fully documented are listed in the class
docstring and in tests/emulators/README.md.
"""

import base64
import binascii
import datetime
import hmac
import json
import os
import re
import secrets as _random
import sys
import threading
import time
import urllib.parse

import httpbase  # noqa: E402
from httpbase import EmulatorServer, Response, Struct

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SM_AUDIENCE = "https://secretmanager.googleapis.com/"
GOOGLE_TOKEN_AUDIENCES = ("https://oauth2.googleapis.com/token",
                          "https://www.googleapis.com/oauth2/v4/token",
                          "https://accounts.google.com/o/oauth2/token")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = ("urn:ietf:params:oauth:token-type:jwt",
                       "urn:ietf:params:oauth:token-type:id_token",
                       "urn:ietf:params:aws:token-type:aws4_request",
                       "urn:ietf:params:oauth:token-type:saml2")
MAX_PAYLOAD = 64 * 1024
MAX_PAGE = 25000
SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")
ALIAS = re.compile(r"[A-Za-z0-9_-]{1,63}\Z")
JWT_SKEW = 300

# permissions (Google's names) and the roles tests name them by
P_ACCESS = "secretmanager.versions.access"
P_ADD = "secretmanager.versions.add"
P_VGET = "secretmanager.versions.get"
P_VLIST = "secretmanager.versions.list"
P_ENABLE = "secretmanager.versions.enable"
P_DISABLE = "secretmanager.versions.disable"
P_DESTROY = "secretmanager.versions.destroy"
P_CREATE = "secretmanager.secrets.create"
P_GET = "secretmanager.secrets.get"
P_LIST = "secretmanager.secrets.list"
P_UPDATE = "secretmanager.secrets.update"
P_DELETE = "secretmanager.secrets.delete"
ALL_PERMS = frozenset({P_ACCESS, P_ADD, P_VGET, P_VLIST, P_ENABLE, P_DISABLE,
                       P_DESTROY, P_CREATE, P_GET, P_LIST, P_UPDATE,
                       P_DELETE})
ROLES = {
    # roles/secretmanager.secretAccessor
    "accessor": {P_ACCESS},
    # roles/secretmanager.secretVersionAdder
    "versionAdder": {P_ADD},
    # roles/secretmanager.viewer
    "viewer": {P_GET, P_LIST, P_VGET, P_VLIST},
    # roles/secretmanager.secretVersionManager
    "versionManager": {P_ADD, P_VGET, P_VLIST, P_ENABLE, P_DISABLE,
                       P_DESTROY},
    # roles/secretmanager.admin
    "admin": set(ALL_PERMS),
}
STATES = {"STATE_UNSPECIFIED": 0, "ENABLED": 1, "DISABLED": 2,
          "DESTROYED": 3}

HTTP_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED",
               403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION",
               429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
               501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE",
               503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
DEFAULT_MESSAGES = {
    429: "Quota exceeded for quota metric 'Access requests' and limit "
         "'Access requests per minute per project per region' of service "
         "'secretmanager.googleapis.com' for consumer 'project_number:{}'.",
    500: "Internal error encountered.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected "
                   "OAuth 2 access token, login cookie or other valid "
                   "authentication credential. See https://developers.google"
                   ".com/identity/sign-in/web/devconsole-project.")
NO_CREDENTIALS = ("Method doesn't allow unregistered callers (callers without "
                  "established identity). Please use API Key or other form "
                  "of API consumer identity to call this API.")
CRC_MISMATCH = ("Checksum mismatch: the data_crc32c in the request does not "
                "match the CRC32C of the payload data.")


# ------------------------------------------------------------------ CRC32C

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data):
    """CRC-32C (Castagnoli), as Secret Manager's dataCrc32c."""
    c = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ------------------------------------------------------------ time and b64

def rfc3339(t):
    """Google's Timestamp JSON: UTC, 'Z', fractional seconds (micro)."""
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unb64_bytes(text):
    """A JSON bytes field: standard or URL-safe base64, padding optional
    (the proto3 JSON mapping accepts either)."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    t = text.replace("-", "+").replace("_", "/")
    t += "=" * (-len(t) % 4)
    return base64.b64decode(t, validate=True)


def _eq(a, b):
    return hmac.compare_digest(str(a).encode(), str(b).encode())


# ------------------------------------------------------------------ errors

class GError(Exception):
    """A Google API error: {"error":{"code","message","status",
    "details"?}}."""

    def __init__(self, code, status, message, details=None):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message
        self.details = details


class OAuthError(Exception):
    """An OAuth/STS endpoint error: {"error","error_description"}."""

    def __init__(self, status, error, description):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _error_info(reason, metadata=None):
    d = Struct([("@type", "type.googleapis.com/google.rpc.ErrorInfo"),
                ("reason", reason), ("domain", "googleapis.com")])
    if metadata:
        d["metadata"] = metadata
    return [d]


# ------------------------------------------------------------------- state

class Version:
    def __init__(self, n, data, now, client_crc):
        self.n = n
        self.data = data
        self.state = "ENABLED"
        self.create_time = now
        self.destroy_time = None
        self.client_crc = client_crc     # the client sent dataCrc32c
        self.crc = crc32c(data)
        self.etag = '"%x"' % int(now * 1e6)


class Secret:
    def __init__(self, project, location, sid, replication, labels,
                 annotations, now):
        self.project, self.location, self.id = project, location, sid
        self.replication = replication       # None for regional secrets
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})
        self.aliases = {}                    # alias -> version number
        self.versions = {}                   # n -> Version
        self.next = 1
        self.create_time = now
        self.touch(now)

    def touch(self, now):
        self.etag = '"%x"' % int(now * 1e6)

    @property
    def latest(self):
        return self.versions[max(self.versions)] if self.versions else None


class Identity:
    """Who a token speaks for: a service account, a user, an external
    (federated) principal or the metadata server's account."""

    def __init__(self, name, kind, perms):
        self.name = name
        self.kind = kind       # service_account, user, external, metadata
        self.perms = _perm_set(perms)
        self.impersonators = set()   # identities that may impersonate this

    def __repr__(self):
        return f"Identity({self.kind}, {self.name})"


def _perm_set(perms):
    if perms is None:
        return set(ALL_PERMS)
    out = set()
    for p in ([perms] if isinstance(perms, str) else perms):
        if p in ROLES:
            out |= ROLES[p]
        elif p.startswith("roles/secretmanager."):
            short = p[len("roles/secretmanager."):]
            short = {"secretAccessor": "accessor",
                     "secretVersionAdder": "versionAdder",
                     "secretVersionManager": "versionManager"}.get(short,
                                                                   short)
            out |= ROLES[short]
        elif p in ALL_PERMS:
            out.add(p)
        else:
            raise ValueError(f"unknown permission or role {p!r}")
    return out


class ServiceAccount(Identity):
    """A service account with an RSA key pair (made at test time)."""

    def __init__(self, email, perms, project, key_pem, key_id, public_key):
        super().__init__(email, "service_account", perms)
        self.email = email
        self.project = project
        self.private_key = key_pem          # PKCS#8 PEM text
        self.private_key_id = key_id
        self.public_keys = {key_id: public_key}
        self.client_id = str(100000000000000000000 + _random.randbelow(
            10 ** 20))

    def adc(self, token_uri):
        return Struct(type="service_account", project_id=self.project,
                      private_key_id=self.private_key_id,
                      private_key=self.private_key, client_email=self.email,
                      client_id=self.client_id,
                      auth_uri="https://accounts.google.com/o/oauth2/auth",
                      token_uri=token_uri,
                      auth_provider_x509_cert_url="https://www.googleapis."
                      "com/oauth2/v1/certs",
                      client_x509_cert_url="https://www.googleapis.com/"
                      "robot/v1/metadata/x509/" +
                      urllib.parse.quote(self.email),
                      universe_domain="googleapis.com")


class User(Identity):
    def __init__(self, email, perms, client_id, client_secret,
                 refresh_token):
        super().__init__(email, "user", perms)
        self.email = email
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.refresh_token = refresh_token

    def adc(self, quota_project=None):
        d = Struct(type="authorized_user", client_id=self.client_id,
                   client_secret=self.client_secret,
                   refresh_token=self.refresh_token)
        if quota_project:
            d["quota_project_id"] = quota_project
        d["universe_domain"] = "googleapis.com"
        return d


class External(Identity):
    """A workload identity pool provider's principal: STS takes
    subject_token for audience and answers a federated token for it."""

    def __init__(self, name, perms, audience, subject_tokens):
        super().__init__(name, "external", perms)
        self.audience = audience
        self.subject_tokens = set(subject_tokens)


class Token:
    def __init__(self, value, identity, scopes, expires, source):
        self.value, self.identity, self.scopes = value, identity, scopes
        self.expires, self.source = expires, source

    def __repr__(self):
        return (f"Token({self.source}, {self.identity.name}, "
                f"expires {self.expires:.0f})")


def _new_token(prefix="ya29.emu-"):
    return prefix + _random.token_urlsafe(40)


def generate_rsa_key():
    """(PKCS#8 PEM text, public key object) of a new RSA-2048 key pair
    (python3-cryptography)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def verify_rs256(public_key, signing_input, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(),
                          hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def write_json_0600(path, obj):
    """Write obj as JSON to path, mode 0600 (created so, never wider)."""
    path = os.fspath(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- emulator

class GcpEmulator(EmulatorServer):
    """Secret Manager + OAuth + STS + IAM credentials + metadata server.

    Knobs (attributes, settable at any time):
      token_lifetime    seconds an issued access token lives (3599)
      default_page_size list page size when the request gives none or 0
                        (Google: "the server decides"; here 25000 = all)
      metadata_account  the Identity the metadata server hands tokens for
                        (add_metadata_account sets it)
      accept_self_signed_jwt  Secret Manager takes service-account
                        self-signed JWTs as bearer tokens (True, as Google)
      on_secret         called with every value and credential it is given
                        or hands out (leak checking)

    Every logged Request gets .op: the Secret Manager method
    ("AccessSecretVersion", "AddSecretVersion", "CreateSecret",
    "GetSecret", "ListSecrets", "UpdateSecret", "DeleteSecret",
    "ListSecretVersions", "GetSecretVersion", "EnableSecretVersion",
    "DisableSecretVersion", "DestroySecretVersion"), "token" (OAuth),
    "sts", "generateAccessToken" or "metadata"; .identity (the name) once
    authenticated; .had_token (an Authorization header came);
    .grant (the OAuth grant type); .g_error / .oauth_error when answered
    with one.

    Choices where Google is not fully documented:
    - Order of checks: the token (401 UNAUTHENTICATED), then the project
      (unknown: 403), then the permission (403 PERMISSION_DENIED "...
      (or it may not exist)", before any 404), then existence.
    - Names in answers carry the project number, as Google's do, whatever
      the request named (id or number).
    - `latest` is the newest version whatever its state: a disabled newest
      version makes `latest` FAILED_PRECONDITION (Google documents it so).
    - Regional secrets (projects/P/locations/L/...) are a separate
      namespace per location and are served on the same host (Google
      serves them only on secretmanager.L.rep.googleapis.com); they carry
      no replication.
    - REST clients asking ?$alt=json;enum-encoding=int get enum fields
      (SecretVersion.state) as numbers, as Google's ESF does.
    """

    name = "gcp"

    def __init__(self, project="p1", project_number=None, *, tls=True,
                 on_secret=None, metadata=True, **server_kw):
        super().__init__(tls=tls, **server_kw)
        self.project = project
        self.on_secret = on_secret
        self.token_lifetime = 3599
        self.default_page_size = MAX_PAGE
        self.accept_self_signed_jwt = True
        self.metadata_account = None
        self.metadata_project = project
        self.zone = "us-central1-a"
        self._lock = threading.RLock()
        self._projects = {}          # id -> number (str)
        self._secrets = {}           # (number, location, id) -> Secret
        self._identities = {}        # name -> Identity
        self._tokens = {}            # value -> Token
        self._corrupt = []           # [how, remaining]
        self._subject_urls = {}      # id -> (subject token, format)
        self.issued = []             # Tokens in order of issue
        self.jwt_claims = []         # (header, claims) of each verified JWT
        self.add_project(project, project_number)
        self.metadata = _MetadataServer(self, host=self.host) \
            if metadata else None

    # --------------------------------------------------------- lifecycle

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
        return str(self.tls.ca_file) if self.tls else None

    @property
    def token_url(self):
        """OAuth token endpoint (token_uri of service_account ADC files;
        what authorized_user clients must be pointed at)."""
        return self.url + "/token"

    @property
    def sts_url(self):
        """STS token exchange (token_url of external_account files)."""
        return self.url + "/v1/token"

    def impersonation_url(self, email):
        """service_account_impersonation_url for email."""
        return (f"{self.url}/v1/projects/-/serviceAccounts/"
                f"{email}:generateAccessToken")

    @property
    def metadata_url(self):
        return self.metadata.url

    @property
    def metadata_host(self):
        """GCE_METADATA_HOST / GCE_METADATA_IP / GCE_METADATA_ROOT value."""
        return f"{self.metadata.host}:{self.metadata.port}"

    def _secret_value(self, value):
        if self.on_secret and value:
            self.on_secret(value)
        return value

    # ============================================================ test API

    def add_project(self, project, number=None):
        """Register a project id with its number (made up if None)."""
        with self._lock:
            if number is None:
                number = str(100000000000 + _random.randbelow(10 ** 11))
            self._projects[project] = str(number)
            return str(number)

    def project_number(self, project=None):
        return self._projects[project or self.project]

    def _num(self, project):
        """The number of a project given by id or number; None if
        unknown."""
        with self._lock:
            if project in self._projects:
                return self._projects[project]
            if project in self._projects.values():
                return project
        return None

    def _key(self, project, secret, location=None):
        num = self._num(project)
        if num is None:
            raise KeyError(f"unknown project {project}")
        return (num, location, secret)

    def create_secret(self, project, secret, replication=None, labels=None,
                      annotations=None, location=None):
        """Create a secret (no versions). replication: None (automatic),
        or a list of locations (user-managed). Regional secrets
        (location=...) have none."""
        with self._lock:
            k = self._key(project, secret, location)
            if k in self._secrets:
                raise ValueError(f"secret {secret} exists")
            if location is not None:
                rep = None
            elif replication is None:
                rep = Struct(automatic=Struct())
            else:
                rep = Struct(userManaged=Struct(replicas=[
                    Struct(location=loc) for loc in replication]))
            s = Secret(k[0], location, secret, rep, labels, annotations,
                       time.time())
            self._secrets[k] = s
            return s

    def add_version(self, project, secret, data, location=None):
        """Add a version (creating the secret, automatic replication);
        returns its number."""
        if isinstance(data, str):
            data = data.encode()
        self._secret_value(data.decode("utf-8", "replace"))
        with self._lock:
            k = self._key(project, secret, location)
            if k not in self._secrets:
                self.create_secret(project, secret, location=location)
            return self._new_version(self._secrets[k], data, False).n

    def _new_version(self, s, data, client_crc):
        now = time.time()
        v = Version(s.next, data, now, client_crc)
        s.versions[v.n] = v
        s.next += 1
        return v

    def secret(self, project, secret, location=None):
        """The Secret object (.versions {n: Version}, .aliases, .labels,
        .annotations, .replication); KeyError if absent."""
        with self._lock:
            return self._secrets[self._key(project, secret, location)]

    def version(self, project, secret, version="latest", location=None):
        """The Version object (.n .data .state .crc .client_crc)."""
        with self._lock:
            s = self.secret(project, secret, location)
            return self._resolve(s, str(version))

    def access(self, project, secret, version="latest", location=None):
        """The bytes of a version (whatever its state; destroyed: None)."""
        return self.version(project, secret, version, location).data

    def names(self, project=None, location=None):
        num = self._num(project or self.project)
        with self._lock:
            return sorted(s.id for k, s in self._secrets.items()
                          if k[0] == num and k[1] == location)

    def _set_state(self, project, secret, version, state, location):
        with self._lock:
            v = self.version(project, secret, version, location)
            v.state = state
            if state == "DESTROYED":
                v.data = None
                v.destroy_time = time.time()

    def disable(self, project, secret, version, location=None):
        self._set_state(project, secret, version, "DISABLED", location)

    def enable(self, project, secret, version, location=None):
        self._set_state(project, secret, version, "ENABLED", location)

    def destroy(self, project, secret, version, location=None):
        self._set_state(project, secret, version, "DESTROYED", location)

    def set_alias(self, project, secret, alias, version, location=None):
        """Point alias at version (None removes it)."""
        with self._lock:
            s = self.secret(project, secret, location)
            if version is None:
                s.aliases.pop(alias, None)
            else:
                s.aliases[alias] = int(version)

    def delete_secret(self, project, secret, location=None):
        with self._lock:
            del self._secrets[self._key(project, secret, location)]

    # --------------------------------------------------------- identities

    def add_service_account(self, email, perms=None, project=None):
        """A service account with a fresh RSA key; returns the
        ServiceAccount (.email .private_key .private_key_id .adc(uri)).
        perms: None (all) or roles (accessor, versionAdder, viewer,
        versionManager, admin) and/or permission names."""
        pem, pub = generate_rsa_key()
        self._secret_value(pem)
        kid = _random.token_hex(20)
        sa = ServiceAccount(email, perms, project or self.project, pem, kid,
                            pub)
        with self._lock:
            self._identities[email] = sa
        return sa

    def add_service_account_key(self, email):
        """A second key for email (rotation); returns (pem, key id)."""
        pem, pub = generate_rsa_key()
        self._secret_value(pem)
        kid = _random.token_hex(20)
        with self._lock:
            self._identities[email].public_keys[kid] = pub
        return pem, kid

    def remove_service_account_key(self, email, key_id):
        with self._lock:
            self._identities[email].public_keys.pop(key_id, None)

    def add_user(self, email, perms=None, client_id=None, client_secret=None,
                 refresh_token=None):
        """A user (authorized_user ADC: client id/secret of the OAuth
        client, and a refresh token)."""
        client_id = client_id or (f"{_random.randbelow(10 ** 12)}-emu."
                                  "apps.googleusercontent.com")
        client_secret = client_secret or "GOCSPX-" + _random.token_urlsafe(21)
        refresh_token = refresh_token or "1//emu-" + _random.token_urlsafe(40)
        self._secret_value(client_secret)
        self._secret_value(refresh_token)
        u = User(email, perms, client_id, client_secret, refresh_token)
        with self._lock:
            self._identities[email] = u
        return u

    def revoke_refresh_token(self, email, refresh_token=None):
        with self._lock:
            u = self._identities[email]
            if refresh_token is None:
                u.refresh_tokens.clear()
            else:
                u.refresh_tokens.discard(refresh_token)

    def pool_audience(self, pool="emu-pool", provider="emu-provider",
                      project=None):
        """The audience of a workload identity pool provider."""
        num = self._num(project or self.project)
        return (f"//iam.googleapis.com/projects/{num}/locations/global/"
                f"workloadIdentityPools/{pool}/providers/{provider}")

    def add_external(self, subject_token, audience=None, perms=None,
                     name=None, impersonate=None):
        """A federated principal: STS exchanges subject_token (the content
        of the credential_source file or URL) for a token when the request
        names audience. impersonate: a service account email it may
        impersonate (roles/iam.workloadIdentityUser)."""
        audience = audience or self.pool_audience()
        self._secret_value(subject_token)
        name = name or (audience.replace("//iam.googleapis.com/",
                                         "principal://iam.googleapis.com/")
                        .rsplit("/providers/", 1)[0] + "/subject/emu-"
                        + _random.token_hex(4))
        with self._lock:
            ext = self._identities.get(name)
            if ext is None or ext.kind != "external":
                ext = self._identities[name] = External(
                    name, perms if perms is not None else set(), audience,
                    [])
            ext.subject_tokens.add(subject_token)
        if impersonate:
            self.allow_impersonation(name, impersonate)
        return ext

    def serve_subject_token(self, token, fmt="text"):
        """A URL on the metadata server's port answering token (text/plain,
        or JSON {"id_token": token} with fmt="json") for URL-sourced
        external_account credentials; returns the URL."""
        self._secret_value(token)
        with self._lock:
            n = len(self._subject_urls)
            self._subject_urls[str(n)] = (token, fmt)
        return f"{self.metadata.url}/subject-token/{n}"

    def reject_subject_token(self, name, subject_token):
        with self._lock:
            self._identities[name].subject_tokens.discard(subject_token)

    def allow_impersonation(self, source, target):
        """Let identity source get tokens for service account target
        (roles/iam.serviceAccountTokenCreator)."""
        with self._lock:
            self._identities[target].impersonators.add(source)

    def add_metadata_account(self, email=None, perms=None):
        """The account the metadata server hands tokens for (the VM's or
        the GKE workload's)."""
        email = email or (f"{self._projects[self.project]}-compute@"
                          "developer.gserviceaccount.com")
        with self._lock:
            ident = self._identities.get(email)
            if ident is None:
                ident = self._identities[email] = Identity(email, "metadata",
                                                           perms)
            self.metadata_account = ident
        return ident

    def identity(self, name):
        with self._lock:
            return self._identities[name]

    def set_perms(self, identity, perms):
        """Replace the permissions of identity (name or Identity)."""
        name = getattr(identity, "name", identity)
        with self._lock:
            self._identities[name].perms = _perm_set(perms)

    def issue_token(self, identity, scopes=(CLOUD_PLATFORM,), lifetime=None,
                    source="test"):
        """An access token for identity (name or Identity), as the token
        endpoints would issue it."""
        name = getattr(identity, "name", identity)
        with self._lock:
            return self._issue(self._identities[name], scopes, source,
                               lifetime)

    def _issue(self, ident, scopes, source, lifetime=None):
        life = self.token_lifetime if lifetime is None else lifetime
        tok = Token(_new_token(), ident, frozenset(scopes),
                    time.time() + life, source)
        self._secret_value(tok.value)
        with self._lock:
            self._tokens[tok.value] = tok
            self.issued.append(tok)
        return tok

    def issued_by(self, source):
        return [t for t in self.issued if t.source == source]

    def expire_tokens(self):
        with self._lock:
            for t in self._tokens.values():
                t.expires = min(t.expires, time.time() - 1)

    def revoke_tokens(self):
        with self._lock:
            self._tokens.clear()

    # -------------------------------------------------------------- faults

    def corrupt_next(self, n=1, how="crc"):
        """Corrupt the next n successful AccessSecretVersion answers:
        how="crc" serves a wrong dataCrc32c with the right data, "data"
        flips a bit of the data and keeps the original CRC, "no-crc"
        leaves dataCrc32c out (an old version written before checksums)."""
        if how not in ("crc", "data", "no-crc"):
            raise ValueError(how)
        with self._lock:
            self._corrupt.append([how, n])

    def _take_corruption(self):
        with self._lock:
            if not self._corrupt:
                return None
            rule = self._corrupt[0]
            rule[1] -= 1
            if rule[1] <= 0:
                self._corrupt.pop(0)
            return rule[0]

    def quota_exceeded_next(self, n=1, retry_after=None, path=None):
        """429 RESOURCE_EXHAUSTED in Google's envelope."""
        return self.faults.rate_limit_next(n, retry_after=retry_after,
                                           path=path)

    # ------------------------------------------------------------ the log

    def calls(self, op):
        return [r for r in self.requests if getattr(r, "op", None) == op]

    def count_op(self, op):
        return len(self.calls(op))

    def ops(self):
        return [getattr(r, "op", None) for r in self.requests]

    def sm_calls(self):
        return [r for r in self.requests
                if getattr(r, "op", None) not in (None, "token", "sts",
                                                  "generateAccessToken",
                                                  "metadata",
                                                  "subject-token")]

    # ============================================================= serving

    def error_response(self, status, message=None):
        name = HTTP_STATUS.get(status, "UNKNOWN")
        if message is None:
            message = DEFAULT_MESSAGES.get(status, name).format(
                self._projects.get(self.project, "0"))
        return _gjson(status, {"error": Struct(code=status, message=message,
                                               status=name)})

    def garbage_body(self, kind, req):
        if kind == "html":
            return (b"<!DOCTYPE html>\n<html lang=en><title>Error 502 (Server"
                    b" Error)!!1</title><p><b>502.</b> <ins>That's an error."
                    b"</ins></html>\n")
        return super().garbage_body(kind, req)

    def handle(self, req):
        req.identity = None
        req.had_token = bool(req.header("Authorization"))
        p = req.path
        try:
            if p == "/token":
                req.op = "token"
                return self._oauth_token(req)
            if p == "/v1/token":
                req.op = "sts"
                return self._sts(req)
            m = re.fullmatch(r"/v1/projects/-/serviceAccounts/([^/:]+)"
                             r":generateAccessToken", p)
            if m:
                req.op = "generateAccessToken"
                return self._generate_access_token(req, m.group(1))
            if p.startswith("/v1/projects/"):
                return self._secret_manager(req)
            raise GError(404, "NOT_FOUND", "The requested URL was not found "
                         "on this server.")
        except GError as e:
            req.g_error = e.status
            body = Struct(code=e.code, message=e.message, status=e.status)
            if e.details:
                body["details"] = e.details
            return _gjson(e.code, {"error": body})
        except OAuthError as e:
            req.oauth_error = e.error
            return _gjson(e.status, Struct(error=e.error,
                                           error_description=e.description))

    # ---------------------------------------------------- authentication

    def _bearer(self, req, need_scope=True):
        """The Identity of the request's bearer token, or GError 401."""
        auth = req.header("Authorization")
        if not auth:
            raise GError(401, "UNAUTHENTICATED", NO_CREDENTIALS,
                         _error_info("CREDENTIALS_MISSING"))
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise GError(401, "UNAUTHENTICATED", UNAUTHENTICATED,
                         _error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED"))
        req.token = value
        with self._lock:
            tok = self._tokens.get(value)
        if tok is None and value.count(".") == 2 and \
                self.accept_self_signed_jwt and not value.startswith("ya29."):
            ident = self._self_signed(value)
            req.identity = ident.name
            req.auth_kind = "self-signed-jwt"
            return ident
        if tok is None:
            raise GError(401, "UNAUTHENTICATED", UNAUTHENTICATED,
                         _error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED"))
        if tok.expires <= time.time():
            raise GError(401, "UNAUTHENTICATED", UNAUTHENTICATED,
                         _error_info("ACCESS_TOKEN_EXPIRED"))
        req.identity = tok.identity.name
        req.auth_kind = tok.source
        if need_scope and CLOUD_PLATFORM not in tok.scopes:
            raise GError(403, "PERMISSION_DENIED", "Request had insufficient "
                         "authentication scopes.",
                         _error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT"))
        return tok.identity

    def _verify_jwt(self, jwt, bad):
        """(header, claims, ServiceAccount) of an RS256 JWT signed by a
        known service account key; bad(message) raises otherwise."""
        try:
            h64, c64, s64 = jwt.split(".")
            header = json.loads(_unb64url(h64))
            claims = json.loads(_unb64url(c64))
            sig = _unb64url(s64)
        except (ValueError, binascii.Error):
            bad("Invalid JWT: malformed")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            bad("Invalid JWT: malformed")
        if header.get("alg") != "RS256":
            bad("Invalid JWT: unsupported algorithm")
        iss = claims.get("iss")
        with self._lock:
            sa = self._identities.get(iss)
        if not isinstance(sa, ServiceAccount):
            bad("Invalid JWT Signature.")
        kid = header.get("kid")
        keys = [sa.public_keys[kid]] if kid in sa.public_keys else \
            ([] if kid is not None else list(sa.public_keys.values()))
        signing_input = f"{h64}.{c64}".encode()
        if not any(verify_rs256(k, signing_input, sig) for k in keys):
            bad("Invalid JWT Signature.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or \
                not isinstance(exp, (int, float)) or exp - iat > 3600 or \
                iat > now + JWT_SKEW or exp < now - JWT_SKEW or exp <= iat:
            bad("Invalid JWT: Token must be a short-lived token (60 minutes) "
                "and in a reasonable timeframe. Check your iat and exp "
                "values in the JWT claim.")
        with self._lock:
            self.jwt_claims.append((header, claims))
        return header, claims, sa

    def _self_signed(self, jwt):
        def bad(_msg):
            raise GError(401, "UNAUTHENTICATED", UNAUTHENTICATED,
                         _error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED"))
        _h, claims, sa = self._verify_jwt(jwt, bad)
        if claims.get("sub", claims["iss"]) != claims["iss"]:
            bad("sub")
        aud = claims.get("aud")
        scope = claims.get("scope")
        if aud is not None:
            if aud.rstrip("/") + "/" != SM_AUDIENCE:
                bad("aud")
        elif not (isinstance(scope, str) and CLOUD_PLATFORM in scope.split()):
            bad("scope")
        if claims["exp"] <= time.time():
            raise GError(401, "UNAUTHENTICATED", UNAUTHENTICATED,
                         _error_info("ACCESS_TOKEN_EXPIRED"))
        return sa

    # ----------------------------------------------------------- OAuth

    @staticmethod
    def _form(req):
        ctype = (req.header("Content-Type") or "").split(";")[0].strip()
        if ctype.lower() != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "Invalid Content-Type; "
                             "expected application/x-www-form-urlencoded")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(
            req.body.decode("utf-8", "replace"),
            keep_blank_values=True).items()}
        req.form_fields = sorted(form)
        return form

    def _token_answer(self, tok, extra=()):
        life = max(0, int(round(tok.expires - time.time())))
        body = Struct(access_token=tok.value, expires_in=life)
        for k, v in extra:
            body[k] = v
        body["token_type"] = "Bearer"
        return _gjson(200, body, [("Cache-Control", "no-cache, no-store, "
                                   "max-age=0, must-revalidate"),
                                  ("Pragma", "no-cache")])

    def _oauth_token(self, req):
        if req.method != "POST":
            raise OAuthError(405, "invalid_request", "Method Not Allowed")
        form = self._form(req)
        grant = form.get("grant_type")
        req.grant = grant
        if grant == JWT_BEARER:
            return self._jwt_grant(req, form)
        if grant == "refresh_token":
            return self._refresh_grant(req, form)
        if not grant:
            raise OAuthError(400, "unsupported_grant_type",
                             "Invalid grant_type: ")
        raise OAuthError(400, "unsupported_grant_type",
                         f"Invalid grant_type: {grant}")

    def _jwt_grant(self, req, form):
        assertion = form.get("assertion")
        if not assertion:
            raise OAuthError(400, "invalid_request", "Missing required "
                             "parameter: assertion")

        def bad(msg):
            raise OAuthError(400, "invalid_grant", msg)
        header, claims, sa = self._verify_jwt(assertion, bad)
        req.identity = sa.name
        req.jwt_header, req.jwt_claims = header, claims
        aud = claims.get("aud")
        if aud not in GOOGLE_TOKEN_AUDIENCES and aud != self.token_url:
            bad("Invalid JWT: Failed audience check. The right audience is "
                f"{GOOGLE_TOKEN_AUDIENCES[0]}")
        sub = claims.get("sub")
        if sub is not None and sub != sa.email:
            raise OAuthError(401, "unauthorized_client", "Client is "
                             "unauthorized to retrieve access tokens using "
                             "this method, or client not authorized for any "
                             "of the scopes requested.")
        if "target_audience" in claims:
            raise OAuthError(400, "invalid_request", "ID tokens are not "
                             "served by this emulator")
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope.split():
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID "
                             "token audience provided.")
        tok = self._issue(sa, scope.split(), "token")
        return self._token_answer(tok)

    def _refresh_grant(self, req, form):
        for need in ("client_id", "refresh_token"):
            if not form.get(need):
                raise OAuthError(400, "invalid_request", "Missing required "
                                 f"parameter: {need}")
        cid, secret = form["client_id"], form.get("client_secret")
        with self._lock:
            users = [u for u in self._identities.values()
                     if isinstance(u, User) and u.client_id == cid]
        if not users:
            raise OAuthError(401, "invalid_client", "The OAuth client was "
                             "not found.")
        if secret is None or not any(_eq(secret, u.client_secret)
                                     for u in users):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        user = next((u for u in users
                     if form["refresh_token"] in u.refresh_tokens), None)
        if user is None:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        req.identity = user.name
        scopes = form.get("scope", "").split() or \
            [CLOUD_PLATFORM, "openid",
             "https://www.googleapis.com/auth/userinfo.email"]
        tok = self._issue(user, scopes, "token")
        return self._token_answer(tok, [("scope", " ".join(scopes))])

    # ------------------------------------------------------------- STS

    def _sts(self, req):
        if req.method != "POST":
            raise OAuthError(405, "invalid_request", "Method Not Allowed")
        form = self._form(req)
        req.grant = form.get("grant_type")
        if form.get("grant_type") != TOKEN_EXCHANGE:
            raise OAuthError(400, "unsupported_grant_type", "The grant_type "
                             f"\"{form.get('grant_type', '')}\" is not "
                             "supported. Expected: "
                             f"\"{TOKEN_EXCHANGE}\".")
        for need in ("audience", "subject_token", "subject_token_type",
                     "requested_token_type"):
            if not form.get(need):
                raise OAuthError(400, "invalid_request", f"Parameter "
                                 f"\"{need}\" is required.")
        if form["requested_token_type"] != ACCESS_TOKEN_TYPE:
            raise OAuthError(400, "invalid_request", "Invalid value for "
                             "\"requested_token_type\".")
        if form["subject_token_type"] not in SUBJECT_TOKEN_TYPES:
            raise OAuthError(400, "invalid_request", "Invalid value for "
                             "\"subject_token_type\".")
        aud = form["audience"]
        with self._lock:
            ext = next((i for i in self._identities.values()
                        if isinstance(i, External) and i.audience == aud and
                        form["subject_token"] in i.subject_tokens), None)
            pool_known = any(isinstance(i, External) and i.audience == aud
                             for i in self._identities.values())
        if not pool_known:
            raise OAuthError(400, "invalid_target", "The target service "
                             "indicated by the \"audience\" parameters is "
                             "invalid. This might either be because the pool"
                             " or provider is disabled or deleted or because "
                             "it doesn't exist.")
        if ext is None:
            raise OAuthError(400, "invalid_grant", "The audience in ID Token "
                             "does not match the expected audience, or the "
                             "subject token is not valid.")
        req.identity = ext.name
        scopes = form.get("scope", "").split() or [CLOUD_PLATFORM]
        tok = self._issue(ext, scopes, "sts")
        return self._token_answer(tok, [("issued_token_type",
                                         ACCESS_TOKEN_TYPE)])

    # ------------------------------------------------- IAM credentials

    def _generate_access_token(self, req, email):
        if req.method != "POST":
            raise GError(404, "NOT_FOUND", "Method not found.")
        caller = self._bearer(req)
        try:
            body = req.json() or {}
        except ValueError:
            raise GError(400, "INVALID_ARGUMENT", "Invalid JSON payload "
                         "received.")
        scope = body.get("scope")
        if not isinstance(scope, list) or not scope:
            raise GError(400, "INVALID_ARGUMENT", "Request contains an "
                         "invalid argument.")
        life = body.get("lifetime", "3600s")
        m = re.fullmatch(r"(\d+)(?:\.\d+)?s", str(life))
        if not m or not 0 < int(m.group(1)) <= 3600:
            raise GError(400, "INVALID_ARGUMENT", "The lifetime must be "
                         "between 1s and 3600s.")
        with self._lock:
            target = self._identities.get(email)
        if not isinstance(target, ServiceAccount) or \
                caller.name not in target.impersonators:
            raise GError(403, "PERMISSION_DENIED", "Permission "
                         "'iam.serviceAccounts.getAccessToken' denied on "
                         "resource (or it may not exist).",
                         _error_info("IAM_PERMISSION_DENIED", {
                             "permission":
                             "iam.serviceAccounts.getAccessToken"}))
        req.impersonated = email
        life = min(int(m.group(1)), self.token_lifetime)
        tok = self._issue(target, scope, "generateAccessToken", life)
        return _gjson(200, Struct(accessToken=tok.value,
                                  expireTime=rfc3339(tok.expires)
                                  .split(".")[0] + "Z"))

    # ------------------------------------------------- Secret Manager

    _ROUTES = [
        # (method, regex over the path after /v1/, op, verb)
        ("GET", r"(?P<parent>projects/[^/]+(?:/locations/[^/]+)?)/secrets",
         "ListSecrets"),
        ("POST", r"(?P<parent>projects/[^/]+(?:/locations/[^/]+)?)/secrets",
         "CreateSecret"),
        ("GET", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)", "GetSecret"),
        ("PATCH", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)", "UpdateSecret"),
        ("DELETE", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)", "DeleteSecret"),
        ("POST", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+):addVersion", "AddSecretVersion"),
        ("GET", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)/versions", "ListSecretVersions"),
        ("GET", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)/versions/(?P<v>[^/:]+)", "GetSecretVersion"),
        ("GET", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)/versions/(?P<v>[^/:]+):access", "AccessSecretVersion"),
        ("POST", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)/versions/(?P<v>[^/:]+):enable", "EnableSecretVersion"),
        ("POST", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)/versions/(?P<v>[^/:]+):disable", "DisableSecretVersion"),
        ("POST", r"(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/"
         r"[^/:]+)/versions/(?P<v>[^/:]+):destroy", "DestroySecretVersion"),
    ]
    _ROUTES = [(m, re.compile(rx), op) for m, rx, op in _ROUTES]

    PERMS = {"ListSecrets": P_LIST, "CreateSecret": P_CREATE,
             "GetSecret": P_GET, "UpdateSecret": P_UPDATE,
             "DeleteSecret": P_DELETE, "AddSecretVersion": P_ADD,
             "ListSecretVersions": P_VLIST, "GetSecretVersion": P_VGET,
             "AccessSecretVersion": P_ACCESS,
             "EnableSecretVersion": P_ENABLE,
             "DisableSecretVersion": P_DISABLE,
             "DestroySecretVersion": P_DESTROY}

    def _secret_manager(self, req):
        rest = req.path[len("/v1/"):]
        route = None
        for method, rx, op in self._ROUTES:
            m = rx.fullmatch(rest)
            if m:
                if method == req.method:
                    route = (op, m)
                    break
                route = route or ("?", None)
        if route is None or route[0] == "?":
            raise GError(404, "NOT_FOUND", "The requested URL "
                         f"<code>{req.raw_path}</code> was not found on this "
                         "server.")
        op, m = route
        req.op = op
        ident = self._bearer(req)
        groups = m.groupdict()
        target = groups.get("secret") or groups.get("parent")
        parts = target.split("/")
        project = parts[1]
        location = parts[3] if len(parts) > 2 and parts[2] == "locations" \
            else None
        sid = parts[-1] if groups.get("secret") else None
        num = self._num(project)
        resource = rest.split(":")[0]
        if num is None or self.PERMS[op] not in ident.perms:
            perm = self.PERMS[op]
            raise GError(403, "PERMISSION_DENIED", f"Permission '{perm}' "
                         f"denied for resource '{resource}' (or it may not "
                         "exist).", _error_info("IAM_PERMISSION_DENIED", {
                             "permission": perm, "resource": resource}))
        req.enum_int = "enum-encoding=int" in (req.qs("$alt") or "")
        with self._lock:
            return getattr(self, "_op_" + op)(req, num, location, sid,
                                              groups.get("v"))

    def _sname(self, s):
        loc = f"/locations/{s.location}" if s.location else ""
        return f"projects/{s.project}{loc}/secrets/{s.id}"

    def _get_secret(self, num, location, sid):
        s = self._secrets.get((num, location, sid))
        if s is None:
            loc = f"/locations/{location}" if location else ""
            raise GError(404, "NOT_FOUND", f"Secret [projects/{num}{loc}/"
                         f"secrets/{sid}] not found.")
        return s

    def _resolve(self, s, v):
        """The Version v names (number, latest or alias); KeyError if
        none."""
        if v == "latest":
            if not s.versions:
                raise KeyError(v)
            return s.latest
        if v.isdigit():
            return s.versions[int(v)]
        return s.versions[s.aliases[v]]

    def _version_of(self, s, v):
        try:
            return self._resolve(s, v)
        except KeyError:
            if v == "latest":
                raise GError(404, "NOT_FOUND", f"Secret [{self._sname(s)}] "
                             "not found or has no versions.") from None
            raise GError(404, "NOT_FOUND", f"Secret Version "
                         f"[{self._sname(s)}/versions/{v}] not found.") \
                from None

    def _secret_json(self, s):
        out = Struct(name=self._sname(s))
        if s.replication is not None:
            out["replication"] = s.replication
        out["createTime"] = rfc3339(s.create_time)
        if s.labels:
            out["labels"] = dict(s.labels)
        out["etag"] = s.etag
        if s.aliases:
            out["versionAliases"] = {a: str(n) for a, n in s.aliases.items()}
        if s.annotations:
            out["annotations"] = dict(s.annotations)
        return out

    def _version_json(self, req, s, v):
        out = Struct(name=f"{self._sname(s)}/versions/{v.n}",
                     createTime=rfc3339(v.create_time))
        if v.destroy_time:
            out["destroyTime"] = rfc3339(v.destroy_time)
        out["state"] = STATES[v.state] if req.enum_int else v.state
        if s.location is None:
            if "userManaged" in s.replication:
                out["replicationStatus"] = Struct(userManaged=Struct(
                    replicas=[Struct(location=r["location"]) for r in
                              s.replication["userManaged"]["replicas"]]))
            else:
                out["replicationStatus"] = Struct(automatic=Struct())
        out["etag"] = v.etag
        if v.client_crc:
            out["clientSpecifiedPayloadChecksum"] = True
        return out

    def _body(self, req):
        try:
            body = req.json()
        except ValueError:
            raise GError(400, "INVALID_ARGUMENT", "Invalid JSON payload "
                         "received. Unexpected token.") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise GError(400, "INVALID_ARGUMENT", "Invalid JSON payload "
                         "received. Expected an object.")
        return body

    def _page(self, req, items, what):
        size = req.qs("pageSize") or "0"
        try:
            size = int(size)
        except ValueError:
            raise GError(400, "INVALID_ARGUMENT", "Invalid value at "
                         f"'page_size' (TYPE_INT32), \"{size}\"") from None
        if size < 0:
            raise GError(400, "INVALID_ARGUMENT", "page_size must be "
                         "non-negative")
        size = min(size or self.default_page_size, MAX_PAGE)
        start = 0
        tok = req.qs("pageToken")
        if tok:
            try:
                start = int(_unb64url(tok).decode().split(":", 1)[1])
            except (ValueError, IndexError, binascii.Error):
                raise GError(400, "INVALID_ARGUMENT", "Invalid page token.") \
                    from None
        out = Struct()
        page = items[start:start + size]
        if page:
            out[what] = page
        if start + size < len(items):
            out["nextPageToken"] = _b64url(
                f"{what}:{start + size}".encode())
        if items:
            out["totalSize"] = len(items)
        return _gjson(200, out)

    @staticmethod
    def _filter_ok(flt, name, labels, state=None):
        """A subset of Google's list filter: space-separated terms, all of
        which must hold: name:X (substring), labels.K=V, labels.K:*,
        state:S (versions)."""
        for term in (flt or "").split():
            if term.upper() == "AND":
                continue
            m = re.fullmatch(r"([\w.]+)([:=])(.*)", term)
            if not m:
                raise GError(400, "INVALID_ARGUMENT",
                             f"Invalid filter: {flt}")
            field, op, val = m.groups()
            val = val.strip('"')
            if field == "name":
                if val not in name if op == ":" else val != name:
                    return False
            elif field.startswith("labels."):
                k = field[len("labels."):]
                if k not in labels or (val != "*" and labels[k] != val):
                    return False
            elif field == "state" and state is not None:
                if state != val.upper():
                    return False
            else:
                raise GError(400, "INVALID_ARGUMENT",
                             f"Invalid filter: {flt}")
        return True

    def _op_ListSecrets(self, req, num, location, _sid, _v):
        flt = req.qs("filter")
        items = [self._secret_json(s) for s in
                 sorted(self._secrets.values(), key=lambda s: s.id)
                 if s.project == num and s.location == location and
                 self._filter_ok(flt, s.id, s.labels)]
        return self._page(req, items, "secrets")

    def _op_CreateSecret(self, req, num, location, _sid, _v):
        sid = req.qs("secretId")
        body = self._body(req)
        if not sid or not SECRET_ID.match(sid):
            raise GError(400, "INVALID_ARGUMENT", "The provided Secret ID "
                         f"[{sid or ''}] does not match the expected format "
                         "[[a-zA-Z_0-9]+].")
        rep = body.get("replication")
        if location is None:
            if not isinstance(rep, dict) or len(rep) != 1 or not (
                    rep.get("automatic") is not None and
                    isinstance(rep["automatic"], dict) or
                    isinstance(rep.get("userManaged"), dict)):
                raise GError(400, "INVALID_ARGUMENT", "Secret.replication "
                             "must be set.")
            if "userManaged" in rep:
                replicas = rep["userManaged"].get("replicas")
                if not isinstance(replicas, list) or not replicas or \
                        not all(isinstance(r, dict) and r.get("location")
                                for r in replicas):
                    raise GError(400, "INVALID_ARGUMENT", "Secret.replication"
                                 ".user_managed.replicas must contain at "
                                 "least one replica with a location.")
                locs = [r["location"] for r in replicas]
            else:
                locs = None
        elif rep is not None:
            raise GError(400, "INVALID_ARGUMENT", "Replication policy is not "
                         "supported for regional secrets.")
        else:
            locs = None
        if (num, location, sid) in self._secrets:
            loc = f"/locations/{location}" if location else ""
            raise GError(409, "ALREADY_EXISTS", f"Secret [projects/{num}{loc}"
                         f"/secrets/{sid}] already exists.")
        for fld in ("labels", "annotations"):
            if body.get(fld) is not None and not isinstance(body[fld], dict):
                raise GError(400, "INVALID_ARGUMENT", f"Invalid value at "
                             f"'secret.{fld}'")
        s = Secret(num, location, sid, None, body.get("labels"),
                   body.get("annotations"), time.time())
        if location is None:
            s.replication = Struct(automatic=Struct()) if locs is None else \
                Struct(userManaged=Struct(replicas=[
                    Struct(location=loc) for loc in locs]))
        self._secrets[(num, location, sid)] = s
        req.secret = self._sname(s)
        return _gjson(200, self._secret_json(s))

    def _op_GetSecret(self, req, num, location, sid, _v):
        return _gjson(200, self._secret_json(
            self._get_secret(num, location, sid)))

    def _op_DeleteSecret(self, req, num, location, sid, _v):
        s = self._get_secret(num, location, sid)
        etag = req.qs("etag")
        if etag and etag != s.etag:
            raise GError(400, "FAILED_PRECONDITION", "The etag provided in "
                         "the request does not match the current etag.")
        del self._secrets[(num, location, sid)]
        return _gjson(200, Struct())

    def _op_UpdateSecret(self, req, num, location, sid, _v):
        s = self._get_secret(num, location, sid)
        body = self._body(req)
        mask = [f.strip() for f in (req.qs("updateMask") or "").split(",")
                if f.strip()]
        if not mask:
            raise GError(400, "INVALID_ARGUMENT", "update_mask must be "
                         "specified.")
        new_aliases = None
        for f in mask:
            if f in ("versionAliases", "version_aliases"):
                al = body.get("versionAliases", body.get("version_aliases"))
                al = al or {}
                if not isinstance(al, dict):
                    raise GError(400, "INVALID_ARGUMENT", "Invalid value at "
                                 "'secret.version_aliases'")
                new_aliases = {}
                for a, n in al.items():
                    if not ALIAS.match(a) or a.isdigit() or a == "latest":
                        raise GError(400, "INVALID_ARGUMENT", f"Version alias"
                                     f" [{a}] is invalid.")
                    try:
                        n = int(n)
                    except (TypeError, ValueError):
                        raise GError(400, "INVALID_ARGUMENT", "Invalid value "
                                     "at 'secret.version_aliases'") from None
                    if n not in s.versions:
                        raise GError(400, "INVALID_ARGUMENT", f"Secret "
                                     f"Version [{self._sname(s)}/versions/"
                                     f"{n}] does not exist.")
                    new_aliases[a] = n
            elif f in ("labels", "annotations"):
                pass
            else:
                raise GError(400, "INVALID_ARGUMENT", f"The update_mask "
                             f"field [{f}] is not supported.")
        if new_aliases is not None:
            s.aliases = new_aliases
        if "labels" in mask:
            s.labels = dict(body.get("labels") or {})
        if "annotations" in mask:
            s.annotations = dict(body.get("annotations") or {})
        s.touch(time.time())
        return _gjson(200, self._secret_json(s))

    def _op_AddSecretVersion(self, req, num, location, sid, _v):
        s = self._get_secret(num, location, sid)
        body = self._body(req)
        payload = body.get("payload")
        if not isinstance(payload, dict) or "data" not in payload:
            raise GError(400, "INVALID_ARGUMENT", "Secret Payload cannot be "
                         "empty.")
        try:
            data = _unb64_bytes(payload["data"])
        except (ValueError, binascii.Error):
            raise GError(400, "INVALID_ARGUMENT", "Invalid value at "
                         "'payload.data' (TYPE_BYTES), Base64 decoding "
                         "failed.") from None
        self._secret_value(data.decode("utf-8", "replace"))
        if len(data) > MAX_PAYLOAD:
            raise GError(400, "INVALID_ARGUMENT", "Secret Payload cannot be "
                         "larger than 65536 bytes.")
        crc = payload.get("dataCrc32c", payload.get("data_crc32c"))
        req.sent_crc = crc
        if crc is not None:
            try:
                crc = int(crc)
            except (TypeError, ValueError):
                raise GError(400, "INVALID_ARGUMENT", "Invalid value at "
                             "'payload.data_crc32c' (TYPE_INT64), "
                             f"\"{crc}\"") from None
            if crc != crc32c(data):
                raise GError(400, "INVALID_ARGUMENT", CRC_MISMATCH)
        v = self._new_version(s, data, crc is not None)
        return _gjson(200, self._version_json(req, s, v))

    def _op_ListSecretVersions(self, req, num, location, sid, _v):
        s = self._get_secret(num, location, sid)
        flt = req.qs("filter")
        items = [self._version_json(req, s, v) for n, v in
                 sorted(s.versions.items(), reverse=True)
                 if self._filter_ok(flt, str(n), {}, v.state)]
        return self._page(req, items, "versions")

    def _op_GetSecretVersion(self, req, num, location, sid, v):
        s = self._get_secret(num, location, sid)
        return _gjson(200, self._version_json(req, s, self._version_of(s, v)))

    def _op_AccessSecretVersion(self, req, num, location, sid, v):
        s = self._secrets.get((num, location, sid))
        if s is None:
            loc = f"/locations/{location}" if location else ""
            raise GError(404, "NOT_FOUND", f"Secret [projects/{num}{loc}/"
                         f"secrets/{sid}] not found or has no versions.")
        ver = self._version_of(s, v)
        name = f"{self._sname(s)}/versions/{ver.n}"
        req.version = ver.n
        if ver.state != "ENABLED":
            raise GError(400, "FAILED_PRECONDITION", f"Secret Version "
                         f"[{name}] is in {ver.state} state.")
        data, crc = ver.data, ver.crc
        how = self._take_corruption()
        req.corrupted = how
        if how == "crc":
            crc = crc ^ 0x1
        elif how == "data":
            data = bytes([data[0] ^ 0x01]) + data[1:] if data else b"\x01"
        payload = Struct(data=base64.b64encode(data).decode())
        if how != "no-crc":
            payload["dataCrc32c"] = str(crc)
        return _gjson(200, Struct(name=name, payload=payload))

    def _state_change(self, req, num, location, sid, v, state):
        s = self._get_secret(num, location, sid)
        ver = self._version_of(s, v)
        if ver.state == "DESTROYED":
            raise GError(400, "FAILED_PRECONDITION", f"Secret Version "
                         f"[{self._sname(s)}/versions/{ver.n}] is in "
                         "DESTROYED state.")
        body = self._body(req)
        if body.get("etag") and body["etag"] != ver.etag:
            raise GError(400, "FAILED_PRECONDITION", "The etag provided in "
                         "the request does not match the current etag.")
        ver.state = state
        ver.etag = '"%x"' % int(time.time() * 1e6)
        if state == "DESTROYED":
            ver.data = None
            ver.destroy_time = time.time()
        return _gjson(200, self._version_json(req, s, ver))

    def _op_EnableSecretVersion(self, req, num, location, sid, v):
        return self._state_change(req, num, location, sid, v, "ENABLED")

    def _op_DisableSecretVersion(self, req, num, location, sid, v):
        return self._state_change(req, num, location, sid, v, "DISABLED")

    def _op_DestroySecretVersion(self, req, num, location, sid, v):
        return self._state_change(req, num, location, sid, v, "DESTROYED")

    # -------------------------------------------------- metadata server

    def _metadata_tree(self):
        sa = self.metadata_account
        num = self._projects.get(self.metadata_project, "0")
        tree = {
            "instance/": {
                "id": "4520031799277581759",
                "zone": f"projects/{num}/zones/{self.zone}",
                "hostname": "secretfs-test.c.internal",
                "service-accounts/": {},
            },
            "project/": {
                "project-id": self.metadata_project,
                "numeric-project-id": num,
            },
            "universe/": {"universe-domain": "googleapis.com"},
        }
        if sa is not None:
            acct = {"aliases": "default", "email": sa.name,
                    "scopes": CLOUD_PLATFORM + "\n", "token": None}
            tree["instance/"]["service-accounts/"] = {
                "default/": acct, f"{sa.name}/": acct}
        return tree

    def handle_metadata(self, req):
        req.op = "metadata"
        req.had_token = False
        req.identity = None
        m = re.fullmatch(r"/subject-token/(\d+)", req.path)
        if m and m.group(1) in self._subject_urls:
            req.op = "subject-token"
            token, fmt = self._subject_urls[m.group(1)]
            if fmt == "json":
                return Response(200, json.dumps({"id_token": token}).encode(),
                                [("Content-Type", "application/json")])
            return Response(200, token.encode(),
                            [("Content-Type", "text/plain; charset=utf-8")])
        hdrs = [("Metadata-Flavor", "Google"), ("Server", "Metadata Server "
                                                "for VM")]
        if req.header("X-Forwarded-For") is not None or \
                req.header("Metadata-Flavor") != "Google":
            return Response(403, b"Missing required header \"Metadata-Flavor"
                            b"\": \"Google\"\n",
                            [("Content-Type", "text/plain; charset=utf-8")]
                            + hdrs[1:])
        p = req.path
        if p == "/":
            return Response(200, b"computeMetadata/\n",
                            [("Content-Type", "application/text")] + hdrs)
        if not p.startswith("/computeMetadata/v1"):
            return _not_found(hdrs)
        rel = p[len("/computeMetadata/v1"):].lstrip("/")
        node = self._metadata_tree()
        parts = [x for x in re.split(r"(?<=/)", rel) if x]
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                return _not_found(hdrs)
            last = i == len(parts) - 1
            if part in node:
                node = node[part]
            elif last and part + "/" in node:
                node = node[part + "/"]     # real GCE redirects; same data
            else:
                return _not_found(hdrs)
        if node is None:                     # the token leaf
            return self._metadata_token(req, hdrs)
        recursive = (req.qs("recursive") or "").lower() == "true"
        if isinstance(node, dict):
            if recursive or req.qs("alt") == "json":
                return _mdjson(_strip_tree(node), hdrs)
            text = "".join(k + "\n" for k in node)
            return Response(200, text.encode(),
                            [("Content-Type", "application/text")] + hdrs)
        if req.qs("alt") == "json":
            return _mdjson(node, hdrs)
        return Response(200, node.encode(),
                        [("Content-Type", "application/text")] + hdrs)

    def _metadata_token(self, req, hdrs):
        sa = self.metadata_account
        scopes = [s for s in (req.qs("scopes") or "").split(",") if s] or \
            [CLOUD_PLATFORM]
        req.identity = sa.name
        tok = self._issue(sa, scopes, "metadata")
        life = max(0, int(round(tok.expires - time.time())))
        return _mdjson(Struct(access_token=tok.value, expires_in=life,
                              token_type="Bearer"), hdrs)


def _strip_tree(node):
    out = {}
    for k, v in node.items():
        if v is None:
            continue
        key = k.rstrip("/")
        key = re.sub(r"-(\w)", lambda m: m.group(1).upper(), key) \
            if not isinstance(v, dict) else key
        out[key] = _strip_tree(v) if isinstance(v, dict) else \
            (v.split() if key == "scopes" else v)
    return out


def _mdjson(obj, hdrs):
    # the metadata server: compact JSON, exactly "application/json" (old
    # google-auth compares the header with that string)
    return Response(200, json.dumps(obj, separators=(",", ":")).encode(),
                    [("Content-Type", "application/json")] + list(hdrs))


def _not_found(hdrs):
    return Response(404, b"<!DOCTYPE html>\n<html lang=en><title>Error 404 "
                    b"(Not Found)!!1</title></html>\n",
                    [("Content-Type", "text/html; charset=UTF-8")] + hdrs)


class _MetadataServer(EmulatorServer):
    """The plain-http metadata server: its requests, fault rules and errors
    go to the GcpEmulator's."""

    name = "gcp-metadata"

    def __init__(self, parent, **kw):
        super().__init__(tls=False, **kw)
        self.parent = parent
        self.faults = parent.faults
        self.errors = parent.errors
        self.conn_errors = parent.conn_errors
        self.verbose = parent.verbose

    def _log(self, req):
        self.parent._log(req)

    def handle(self, req):
        return self.parent.handle_metadata(req)

    def error_response(self, status, message=None):
        return Response(status, (message or f"HTTP {status}").encode() +
                        b"\n", [("Content-Type", "text/plain"),
                                ("Metadata-Flavor", "Google")])


def _gjson(status, obj, headers=()):
    # Google's front ends write pretty JSON (2-space indent) with
    # "application/json; charset=UTF-8"; keys in the proto's field order
    body = json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n"
    return Response(status, body, [("Content-Type", "application/json; "
                                    "charset=UTF-8"),
                                   ("Vary", "Origin, X-Origin, Referer")]
                    + list(headers))


# ------------------------------------------------------------------- CLI

def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="GCP Secret Manager emulator "
                                 "(with OAuth, STS, IAM credentials and "
                                 "metadata server)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--metadata-port", type=int, default=0)
    ap.add_argument("--project", default="p1")
    ap.add_argument("--project-number", default="123456789012")
    ap.add_argument("--service-account", action="append", default=[],
                    metavar="EMAIL=ADC_FILE",
                    help="make a service account (all permissions) and "
                    "write its ADC JSON to ADC_FILE")
    ap.add_argument("--metadata-account", metavar="EMAIL",
                    help="the metadata server's account (all permissions)")
    ap.add_argument("--secret", action="append", default=[],
                    metavar="NAME=VALUE")
    ap.add_argument("--token-lifetime", type=int, default=3599)
    ap.add_argument("--tls", metavar="DIR")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    emu = GcpEmulator(a.project, a.project_number, host=a.host, port=a.port,
                      cert_dir=a.tls, verbose=a.verbose)
    emu.metadata.port = a.metadata_port
    emu.token_lifetime = a.token_lifetime
    for spec in a.secret:
        name, _, value = spec.partition("=")
        emu.add_version(a.project, name, value.encode())
    emu.add_metadata_account(a.metadata_account)
    emu.start()
    for spec in a.service_account:
        email, _, path = spec.partition("=")
        sa = emu.add_service_account(email)
        write_json_0600(path, sa.adc(emu.token_url))
    print(f"gcp emulator: secret manager, oauth, sts on {emu.url}  project "
          f"{a.project} ({emu.project_number()})\n"
          f"  token_uri={emu.token_url}\n"
          f"  GCE_METADATA_HOST={emu.metadata_host}", flush=True)
    return httpbase.serve_until_signal(emu)


if __name__ == "__main__":
    sys.exit(main())
