#!/usr/bin/python3
"""aws.py - a protocol-faithful AWS Secrets Manager emulator for the tests,
with every link of the credential chain beside it.

One server (httpbase.EmulatorServer) answers, on one port:
- Secrets Manager, JSON 1.1 (POST / with X-Amz-Target: secretsmanager.Op):
  GetSecretValue, PutSecretValue, CreateSecret, DescribeSecret, ListSecrets
  with versions, staging labels (AWSCURRENT/AWSPREVIOUS/custom),
  ClientRequestToken idempotency, AWS's error shapes, and SigV4 checked by
  recomputing the signature with botocore's own signer (Debian
  python3-botocore) over exactly the headers the client signed;
- STS AssumeRoleWithWebIdentity (query protocol, form body, XML answer);
- ECS container credentials on any registered path (relative or full URI),
  with the Authorization header checked against an expected token;
- EC2 IMDSv2 (PUT /latest/api/token, GET .../iam/security-credentials/).

Credentials handed out by STS, ECS and IMDS carry an Expiration; Secrets
Manager accepts them until then and answers ExpiredTokenException after.

    emu = AwsEmulator(region="us-east-1").start()
    emu.add_credentials("AKIDTEST", "secret-key", token=None, expires=None,
                        allow=[("GetSecretValue", "prod/*")])
    emu.put_secret("prod/billing", string='{"DB":"pw"}')
    boto3.client("secretsmanager", endpoint_url=emu.url, region_name=
                 "us-east-1", aws_access_key_id="AKIDTEST",
                 aws_secret_access_key="secret-key").get_secret_value(...)
    emu.count_op("GetSecretValue"); emu.faults.fail_next(1, 500,
                                               path=r"GetSecretValue$")
    emu.stop()

Run by hand:  /usr/bin/python3 tests/emulators/aws.py --port 4566 \\
                  --credentials AKID:SECRET [--secret NAME=VALUE] [-v]

Choices where AWS is not fully documented (see also the class docstring):
- Authentication errors are HTTP 400 with {"__type": T, "message": M}
  (lower-case "message", as the Coral front end writes them); service
  errors are 400 with "Message". qualified_errors=True writes __type as
  "namespace#Type" and adds x-amzn-ErrorType "Type:http://internal.amazon.
  com/coral/namespace/", both forms real AWS services use, so a client's
  stripping of prefix and suffix is exercised.
- Clock skew: more than 5 minutes either way is InvalidSignatureException
  "Signature expired: ..." / "Signature not yet current: ...", Secrets
  Manager's text. clock_offset shifts the emulator's clock (and the Date
  header) to fake a skewed client.
- A wrong Content-Type, or an X-Amz-Target naming no operation, is 400
  {"__type":"UnknownOperationException"}; an unparsable body is 400
  SerializationException.
- PutSecretValue and CreateSecret with a value but no ClientRequestToken
  are refused (ValidationException) unless require_client_request_token is
  False: raw HTTP callers must send one (the API reference says so) and the
  provider's idempotent retries depend on it.
- ECS/IMDS mint new keys on every credential fetch (real ones reuse keys
  until shortly before expiry) so a refetch is visible in emu.issued.
- A wrong or missing ECS Authorization header is 401
  {"code":"AccessDenied","message":...}.
"""

import base64
import binascii
import datetime
import email.utils
import fnmatch
import hmac
import json
import re
import secrets as _random
import string
import sys
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape as _xml_escape

import httpbase  # noqa: E402
from httpbase import EmulatorServer, Response

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials
except ImportError:      # reported when an emulator is made
    SigV4Auth = None

ACCOUNT = "123456789012"
JSON_TYPE = "application/x-amz-json-1.1"
SKEW_S = 300
SM_NS = "com.amazonaws.secretsmanager"
CORAL_NS = "com.amazon.coral.service"
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
NAME_OK = re.compile(r"[A-Za-z0-9/_+=.@-]+\Z")
AMZ_DATE = "%Y%m%dT%H%M%SZ"
ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"

SIG_MISMATCH = ("The request signature we calculated does not match the "
                "signature you provided. Check your AWS Secret Access Key "
                "and signing method. Consult the service documentation for "
                "details.")
TOKEN_INVALID = "The security token included in the request is invalid."
TOKEN_EXPIRED = "The security token included in the request is expired"
NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_DELETED = ("You can't perform this operation on the secret because "
                  "it was marked for deletion.")
VERSION_EXISTS = ("You can't modify an existing version, you can only "
                  "create a new version.")

SM_OPS = ("GetSecretValue", "PutSecretValue", "CreateSecret",
          "DescribeSecret", "ListSecrets")

_ALNUM = string.ascii_letters + string.digits


def _rand(n, alphabet=_ALNUM):
    return "".join(_random.choice(alphabet) for _ in range(n))


def new_access_key(temporary=True):
    return ("ASIA" if temporary else "AKIA") + \
        _rand(16, string.ascii_uppercase + string.digits)


def new_secret_key():
    return _rand(40, _ALNUM + "+/")


def new_session_token():
    return "FwoGZXIvYXdzE" + _rand(200, _ALNUM + "+/")


def iso_seconds(epoch):
    return time.strftime(ISO_SECONDS, time.gmtime(epoch))


def amz_date(epoch):
    return time.strftime(AMZ_DATE, time.gmtime(epoch))


# ------------------------------------------------------------ JSON like AWS

class Ts(float):
    """An epoch-seconds timestamp: encoded as AWS's Java services write
    doubles (1.523477145713E9)."""


def java_double(x):
    """Java's Double.toString for x >= 1e7 (computerized scientific
    notation), else Python's repr."""
    x = float(x)
    if not 1e7 <= abs(x) < 1e16:
        return repr(x)
    sign = "-" if x < 0 else ""
    ip, _, fp = repr(abs(x)).partition(".")
    digits = ip + fp
    mant = digits[0] + "." + (digits[1:].rstrip("0") or "0")
    return f"{sign}{mant}E{len(ip) - 1}"


def aws_json(obj):
    """Compact JSON with sorted keys (as Secrets Manager answers) and Ts
    values as Java doubles."""
    marker = "ts-" + uuid.uuid4().hex + "-"
    stamps = []

    def conv(o):
        if isinstance(o, Ts):
            stamps.append(java_double(o))
            return f"{marker}{len(stamps) - 1}"
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [conv(v) for v in o]
        return o

    text = json.dumps(conv(obj), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    text = re.sub('"' + re.escape(marker) + r'(\d+)"',
                  lambda m: stamps[int(m.group(1))], text)
    return text.encode()


def _ms(epoch):
    return Ts(round(epoch, 3))


class AwsError(Exception):
    """An error answer. generic=True: a Coral front-end error (lower-case
    "message", namespace com.amazon.coral.service); else a Secrets Manager
    service error ("Message")."""

    def __init__(self, type_, message=None, status=400, generic=False):
        super().__init__(type_, message)
        self.type = type_
        self.message = message
        self.status = status
        self.generic = generic


class StsError(Exception):
    def __init__(self, code, message, status=400, fault="Sender"):
        super().__init__(code, message)
        self.code, self.message = code, message
        self.status, self.fault = status, fault


def _validation(field, value, constraint):
    shown = "null" if value is None else f"'{value}'"
    return AwsError("ValidationException",
                    f"1 validation error detected: Value {shown} at "
                    f"'{field}' failed to satisfy constraint: {constraint}",
                    generic=True)


# ------------------------------------------------------------------ state

class Version:
    def __init__(self, vid, string_=None, binary=None, created=None):
        self.id = vid
        self.string = string_
        self.binary = binary
        self.created = created if created is not None else time.time()

    def same_value(self, string_, binary):
        return self.string == string_ and self.binary == binary


class Secret:
    """One secret: its versions (in creation order) and staging labels."""

    def __init__(self, name, arn, created, description=None, kms_key=None,
                 tags=None):
        self.name = name
        self.arn = arn
        self.created = created
        self.changed = created
        self.accessed = None
        self.deleted = None
        self.description = description
        self.kms_key = kms_key
        self.tags = list(tags or [])
        self.versions = {}          # id -> Version, oldest first
        self.stages = {}            # label -> version id

    def stages_of(self, vid):
        return sorted(s for s, v in self.stages.items() if v == vid)

    def versions_to_stages(self):
        out = {}
        for vid in self.versions:
            st = self.stages_of(vid)
            if st:
                out[vid] = st
        return out

    def add_version(self, version, stages=None, now=None):
        """Store version and move labels as PutSecretValue does."""
        first = not self.versions
        self.versions[version.id] = version
        labels = list(stages) if stages else ["AWSCURRENT"]
        if first and "AWSCURRENT" not in labels:
            labels.append("AWSCURRENT")
        for label in labels:
            old = self.stages.get(label)
            if label == "AWSCURRENT" and old is not None and \
                    old != version.id:
                self.stages["AWSPREVIOUS"] = old
            self.stages[label] = version.id
        self.changed = now if now is not None else time.time()

    def current(self):
        vid = self.stages.get("AWSCURRENT")
        return self.versions.get(vid) if vid else None


class Cred:
    """An access key the emulator accepts: secret, optional session token,
    optional expiry (epoch), allow list (None: everything), principal."""

    def __init__(self, access, secret, token=None, expires=None, allow=None,
                 principal=None, source="static"):
        self.access = access
        self.secret = secret
        self.token = token
        self.expires = expires
        self.allow = _rules(allow)
        self.principal = principal or \
            f"arn:aws:iam::{ACCOUNT}:user/secretfs-test"
        self.source = source
        self.issued_at = time.time()
        self.revoked = False

    def allows(self, action, resources):
        if self.allow is None:
            return True
        for act, pattern in self.allow:
            if not fnmatch.fnmatchcase(action, act):
                continue
            if any(fnmatch.fnmatchcase(r, pattern) for r in resources):
                return True
        return False

    def __repr__(self):
        return (f"Cred({self.access}, source={self.source}, "
                f"expires={self.expires})")


def _rules(allow):
    """[(action glob, resource glob)] from pairs, "Action:glob" strings or
    {action: [globs]}; actions may carry the secretsmanager: prefix."""
    if allow is None:
        return None
    if isinstance(allow, dict):
        allow = [(a, p) for a, ps in allow.items()
                 for p in ([ps] if isinstance(ps, str) else ps)]
    out = []
    for item in allow:
        if isinstance(item, str):
            if item.startswith("secretsmanager:"):
                item = item[len("secretsmanager:"):]
            act, _, pattern = item.partition(":")
            item = (act, pattern or "*")
        act, pattern = item
        if act.startswith("secretsmanager:"):
            act = act[len("secretsmanager:"):]
        out.append((act, pattern))
    return out


class Role:
    def __init__(self, arn, tokens, allow, ttl, max_session, subject,
                 audience, provider):
        self.arn = arn
        self.name = arn.rsplit("/", 1)[-1]
        self.tokens = set(tokens)
        self.allow = allow
        self.ttl = ttl
        self.max_session = max_session
        self.subject = subject
        self.audience = audience
        self.provider = provider


class ContainerEndpoint:
    def __init__(self, emu, path, auth_token, ttl, allow, role_arn):
        self.emu = emu
        self.path = path
        self.auth_token = auth_token
        self.ttl = ttl
        self.allow = allow
        self.role_arn = role_arn

    @property
    def full_uri(self):
        return self.emu.url + self.path


class _Verifier(SigV4Auth if SigV4Auth else object):
    """botocore's SigV4 signer, fed exactly the headers the client named in
    SignedHeaders (botocore would drop some, e.g. user-agent, and add
    others) and its SignedHeaders string verbatim."""

    def __init__(self, creds, service, region, signed, headers):
        super().__init__(creds, service, region)
        self._signed = signed
        self._names = signed.split(";")
        self._headers = headers

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._names:
            for k, v in self._headers:
                if k.lower() == name:
                    out[name] = v
        return out

    def signed_headers(self, headers_to_sign):
        return self._signed


# -------------------------------------------------------------- emulator

class AwsEmulator(EmulatorServer):
    """Secrets Manager + STS + ECS + IMDS. Knobs (attributes, settable at
    any time): region, account, clock_offset, qualified_errors,
    require_client_request_token, imds_v1 (accept IMDSv1 GETs without a
    token), on_secret (called with every secret key, session token, web
    identity token, container auth token and IMDS token it is given or
    hands out).

    Every logged Request gets .op ("secretsmanager.GetSecretValue",
    "sts.AssumeRoleWithWebIdentity", "ecs", "imds"), .access_key once its
    signature was parsed, and .aws_error (the error type) when it was
    answered with an AWS error; emu.calls(op), count_op(op), ops() and
    issued_by(source) read them."""

    name = "aws"

    def __init__(self, region="us-east-1", *, account=ACCOUNT,
                 on_secret=None, qualified_errors=False,
                 require_client_request_token=True, **server_kw):
        if SigV4Auth is None:
            raise RuntimeError("the AWS emulator needs botocore "
                               "(apt-get install python3-botocore)")
        super().__init__(**server_kw)
        self.region = region
        self.account = account
        self.on_secret = on_secret
        self.qualified_errors = qualified_errors
        self.require_client_request_token = require_client_request_token
        self.clock_offset = 0.0
        self.imds_v1 = False
        self._lock = threading.RLock()
        self._secrets = {}          # name -> Secret
        self._creds = {}            # access key -> Cred
        self._roles = {}            # arn -> Role
        self._containers = {}       # path -> ContainerEndpoint
        self._imds_role = None      # (name, ttl, allow)
        self._imds_tokens = {}      # token -> expiry
        self._expired_web_tokens = set()
        self.issued = []            # Creds handed out by STS/ECS/IMDS
        self._seq = 0

    def _secret_value(self, value):
        if self.on_secret and value:
            self.on_secret(value)
        return value

    def clock(self):
        return time.time() + self.clock_offset

    # ============================================================ test API

    def arn_prefix(self):
        return f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:"

    def add_credentials(self, access, secret, token=None, expires=None,
                        allow=None, principal=None):
        """Accept this key. expires: epoch seconds after which requests get
        ExpiredTokenException. allow: None (everything) or rules such as
        [("GetSecretValue", "prod/*"), "DescribeSecret:*"]."""
        self._secret_value(secret)
        self._secret_value(token)
        c = Cred(access, secret, token, expires, allow, principal)
        with self._lock:
            self._creds[access] = c
        return c

    def new_credentials(self, temporary=False, ttl=None, allow=None):
        """Random credentials (with a session token when temporary)."""
        return self.add_credentials(
            new_access_key(temporary), new_secret_key(),
            token=new_session_token() if temporary else None,
            expires=int(time.time() + ttl) if ttl else None, allow=allow)

    def revoke(self, access):
        with self._lock:
            self._creds[access].revoked = True

    def expire(self, access):
        with self._lock:
            self._creds[access].expires = time.time() - 1

    def credentials(self, access):
        with self._lock:
            return self._creds.get(access)

    def put_secret(self, name, string=None, binary=None, stages=None,
                   version_id=None, description=None, tags=None):
        """Create the secret if needed and add a version (the new
        AWSCURRENT unless stages says otherwise). Returns the version id."""
        if (string is None) == (binary is None):
            raise ValueError("give exactly one of string and binary")
        with self._lock:
            now = time.time()
            s = self._secrets.get(name)
            if s is None:
                s = self._create(name, now, description, None, tags)
            vid = version_id or str(uuid.uuid4())
            s.add_version(Version(vid, string, None if binary is None
                                  else bytes(binary), now), stages, now)
            return vid

    def create_secret(self, name, description=None, tags=None):
        """A secret without any version (GetSecretValue: not found)."""
        with self._lock:
            return self._create(name, time.time(), description, None, tags)

    def _create(self, name, now, description, kms_key, tags):
        arn = self.arn_prefix() + name + "-" + _rand(6)
        s = Secret(name, arn, now, description, kms_key, tags)
        self._secrets[name] = s
        return s

    def secret(self, name):
        """The Secret object (live; read it under no assumptions), or None."""
        with self._lock:
            return self._secrets.get(name)

    def get_secret(self, name, version_id=None, stage=None):
        """str or bytes of a version (default AWSCURRENT), None if absent."""
        with self._lock:
            s = self._secrets.get(name)
            if s is None:
                return None
            vid = version_id or s.stages.get(stage or "AWSCURRENT")
            v = s.versions.get(vid)
            if v is None:
                return None
            return v.string if v.string is not None else v.binary

    def versions(self, name):
        """{version id: [labels]} of every version (oldest first)."""
        with self._lock:
            s = self._secrets[name]
            return {vid: s.stages_of(vid) for vid in s.versions}

    def delete_secret(self, name, force=False):
        """Schedule for deletion (force: gone at once)."""
        with self._lock:
            if force:
                self._secrets.pop(name, None)
            else:
                self._secrets[name].deleted = time.time()

    def restore_secret(self, name):
        with self._lock:
            self._secrets[name].deleted = None

    def names(self):
        with self._lock:
            return sorted(self._secrets)

    def add_role(self, arn, web_tokens=(), allow=None, ttl=None,
                 max_session=3600, subject="system:serviceaccount:app:app",
                 audience="sts.amazonaws.com",
                 provider="arn:aws:iam::123456789012:oidc-provider/"
                 "oidc.example.com"):
        """A role AssumeRoleWithWebIdentity accepts web_tokens for. ttl
        (seconds) overrides what the issued credentials live (AWS's
        minimum is 900 s; tests want seconds)."""
        for t in web_tokens:
            self._secret_value(t)
        r = Role(arn, web_tokens, allow, ttl, max_session, subject,
                 audience, provider)
        with self._lock:
            self._roles[arn] = r
        return r

    def accept_web_token(self, role_arn, token):
        self._secret_value(token)
        with self._lock:
            self._roles[role_arn].tokens.add(token)

    def reject_web_token(self, role_arn, token):
        with self._lock:
            self._roles[role_arn].tokens.discard(token)

    def expire_web_token(self, token):
        with self._lock:
            self._expired_web_tokens.add(token)

    def add_container_endpoint(self, path=None, auth_token=None, ttl=3600,
                               allow=None, role_arn=None):
        """Serve ECS-style credentials on GET path (default a fresh
        /v2/credentials/<uuid>); auth_token: the Authorization header
        required (None: no check)."""
        path = path or f"/v2/credentials/{uuid.uuid4()}"
        self._secret_value(auth_token)
        ep = ContainerEndpoint(self, path, auth_token, ttl, allow,
                               role_arn or f"arn:aws:iam::{self.account}:"
                               "role/ecs-task")
        with self._lock:
            self._containers[path] = ep
        return ep

    def set_imds_role(self, name="secretfs-test-role", ttl=21600,
                      allow=None):
        """The instance profile role IMDS reports (None: no role)."""
        with self._lock:
            self._imds_role = None if name is None else (name, ttl, allow)

    def expire_imds_tokens(self):
        with self._lock:
            self._imds_tokens.clear()

    # ------------------------------------------------- log and counting

    def fault_path(self, req):
        """Fault rules see Secrets Manager calls as /secretsmanager.<Op>
        and STS calls as /sts.<Action>; IMDS and ECS keep their paths."""
        op = self._op_of(req)
        return "/" + op if op.startswith(("secretsmanager.", "sts.")) \
            else req.path

    def _op_of(self, req):
        op = getattr(req, "op", None)
        if op is not None:
            return op
        target = req.header("X-Amz-Target")
        if target is not None:
            op = target
        elif req.path.startswith("/latest/"):
            op = "imds"
        elif req.method == "GET" and req.path in self._containers:
            op = "ecs"
        elif req.method == "POST":
            form = _form(req.body)
            op = "sts." + form.get("Action", "") if form is not None else ""
        else:
            op = ""
        req.op = op
        return op

    def calls(self, op=None):
        """Requests of one Secrets Manager operation ("GetSecretValue"),
        STS action ("sts.AssumeRoleWithWebIdentity"), or "imds"/"ecs";
        every request when op is None."""
        want = None if op is None else \
            op if "." in op or op in ("imds", "ecs") else \
            "secretsmanager." + op
        return [r for r in self.requests
                if want is None or self._op_of(r) == want]

    def count_op(self, op):
        return len(self.calls(op))

    def ops(self):
        """The operation of every request so far, in order."""
        return [self._op_of(r) for r in self.requests]

    # ------------------------------------------------------- fault bodies

    def error_response(self, status, message=None):
        if 300 <= status < 400:
            return Response(status)
        kinds = {400: ("ThrottlingException", "Rate exceeded", True),
                 429: ("ThrottlingException", "Rate exceeded", True),
                 403: ("AccessDeniedException", "Access denied", False),
                 404: ("ResourceNotFoundException", NOT_FOUND, False),
                 500: ("InternalServiceError", "An error occurred on the "
                       "server side.", False),
                 503: ("ServiceUnavailable", "Service is unavailable",
                       True)}
        t, m, generic = kinds.get(status, ("InternalFailure", "The request "
                                           "processing has failed.", True))
        return self._error(AwsError(t, message or m, status, generic))

    def error_next(self, n=1, type_="InternalServiceError", message=None,
                   status=400, op=None, generic=False):
        """The next n calls (of op, e.g. "GetSecretValue") answer this
        AWS error; e.g. error_next(2, "ThrottlingException", "Rate
        exceeded", generic=True)."""
        resp = self._error(AwsError(type_, message or type_, status,
                                    generic))
        path = None if op is None else \
            r"^/secretsmanager\." + re.escape(op) + "$"
        return self.faults.fail_next(n, status, body=resp.body,
                                     content_type=JSON_TYPE,
                                     headers=dict(resp.headers[1:]),
                                     path=path)

    # What a proxy or an AWS-compatible server in front of the API may send
    # for a refusal: a page with no AWS error type (no x-amzn-errortype, no
    # JSON __type).
    REFUSAL_PAGES = {
        "html": (b"<html><head><title>403 Forbidden</title></head><body>"
                 b"<h1>Forbidden</h1></body></html>\n", "text/html"),
        "xml": (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                b"<Code>AccessDenied</Code><Message>Access Denied</Message>"
                b"</Error>\n", "application/xml"),
    }

    def refuse_next(self, n=1, status=403, kind="html", op=None):
        """The next n calls (of op; n=None: until removed) answer status
        (401 or 403) with an HTML or XML page (kind) instead of AWS's JSON
        error shape; returns the fault rule."""
        body, ctype = self.REFUSAL_PAGES[kind]
        path = None if op is None else \
            r"^/secretsmanager\." + re.escape(op) + "$"
        return self.faults.fail_next(n, status, body=body,
                                     content_type=ctype, path=path)

    def throttle_next(self, n=1, op=None):
        return self.error_next(n, "ThrottlingException", "Rate exceeded",
                               400, op, generic=True)

    def garbage_body(self, kind, req):
        presets = {
            "not-json": b"<html><body>502 Bad Gateway</body></html>\n",
            "truncated": b'{"ARN":"arn:aws:secretsmanager:us-east-1:1:secr',
            "empty": b"",
            "null": b"null",
            "array": b"[1,2,3]",
            "wrong-types": aws_json({"ARN": 7, "Name": ["x"],
                                     "SecretString": 42,
                                     "VersionStages": "AWSCURRENT"}),
            "no-value": aws_json({"ARN": "arn:aws:secretsmanager:"
                                  "us-east-1:1:secret:x-abcdef",
                                  "Name": "x", "VersionId": "v" * 32,
                                  "VersionStages": ["AWSCURRENT"]}),
            "bad-base64": aws_json({"Name": "x", "VersionId": "v" * 32,
                                    "SecretBinary": "!!not base64!!",
                                    "VersionStages": ["AWSCURRENT"]}),
            "xml": b"<?xml version=\"1.0\"?><Response/>",
        }
        try:
            return presets[kind]
        except KeyError:
            raise ValueError(f"unknown garbage kind {kind!r}") from None

    def huge_body(self, size, req):
        return aws_json({"ARN": self.arn_prefix() + "huge-abcdef",
                         "Name": "huge", "VersionId": str(uuid.uuid4()),
                         "SecretString": "A" * size,
                         "VersionStages": ["AWSCURRENT"],
                         "CreatedDate": _ms(time.time())})

    # ============================================================ serving

    def handle(self, req):
        op = self._op_of(req)
        if op == "imds":
            return self._imds(req)
        if op == "ecs":
            return self._ecs(req)
        if req.header("X-Amz-Target") is not None:
            return self._sm(req)
        if op.startswith("sts."):
            return self._sts(req)
        if req.method == "POST":
            return self._error(AwsError("UnknownOperationException",
                                        generic=True))
        return Response(404, b"Not Found\n", [("Content-Type",
                                                "text/plain")])

    def _headers(self, ctype=JSON_TYPE):
        return [("Content-Type", ctype),
                ("x-amzn-RequestId", str(uuid.uuid4()))]

    def _ok(self, obj):
        return Response(200, aws_json(obj), self._headers())

    def _error(self, e, req=None):
        ns = CORAL_NS if e.generic else SM_NS
        body = {"__type": f"{ns}#{e.type}" if self.qualified_errors
                else e.type}
        if e.message is not None:
            body["message" if e.generic else "Message"] = e.message
        headers = self._headers()
        if self.qualified_errors:
            headers.append(("x-amzn-ErrorType", f"{e.type}:http://internal."
                            f"amazon.com/coral/{ns}/"))
        if req is not None:
            req.aws_error = e.type
        return Response(e.status, json.dumps(body, separators=(",", ":"))
                        .encode(), headers)

    # ------------------------------------------------------------- SigV4

    def _authenticate(self, req, service):
        """The Cred that signed req, or AwsError exactly as AWS answers."""
        auth = req.header("Authorization")
        if auth is None:
            raise AwsError("MissingAuthenticationTokenException",
                           "Missing Authentication Token", generic=True)
        alg, _, rest = auth.strip().partition(" ")
        if alg != "AWS4-HMAC-SHA256":
            raise AwsError("IncompleteSignatureException",
                           f"Unsupported AWS 'algorithm': '{alg}'",
                           generic=True)
        parts = {}
        for item in rest.split(","):
            k, eq, v = item.strip().partition("=")
            if eq:
                parts[k] = v
        dates = [v for k, v in req.header_list if k.lower() == "x-amz-date"]
        missing = [f"Authorization header requires '{k}' parameter."
                   for k in ("Credential", "Signature", "SignedHeaders")
                   if not parts.get(k)]
        if not dates and req.header("Date") is None:
            missing.append("Authorization header requires existence of "
                           "either a 'X-Amz-Date' or a 'Date' header.")
        if missing:
            raise AwsError("IncompleteSignatureException",
                           " ".join(missing) + f" Authorization={auth}",
                           generic=True)
        if dates:
            stamp = dates[0].strip()
            try:
                when = datetime.datetime.strptime(stamp, AMZ_DATE).replace(
                    tzinfo=datetime.timezone.utc).timestamp()
            except ValueError:
                raise AwsError("IncompleteSignatureException",
                               f"Date must be in ISO-8601 'basic format'. "
                               f"Got '{stamp}'. See http://en.wikipedia.org"
                               "/wiki/ISO_8601", generic=True) from None
        else:
            try:
                when = email.utils.parsedate_to_datetime(
                    req.header("Date")).timestamp()
            except (TypeError, ValueError):
                raise AwsError("IncompleteSignatureException",
                               "Date must be in ISO-8601 'basic format'. "
                               f"Got '{req.header('Date')}'.",
                               generic=True) from None
            stamp = amz_date(when)
        scope = parts["Credential"].split("/")
        if len(scope) != 5:
            raise AwsError("IncompleteSignatureException",
                           "Credential must have exactly 5 slash-delimited "
                           "elements, e.g. keyid/date/region/service/term,"
                           f" got '{parts['Credential']}'", generic=True)
        access, day, region, svc, term = scope
        signed = parts["SignedHeaders"]
        names = signed.split(";")
        if "host" not in names:
            raise AwsError("IncompleteSignatureException",
                           "'Host' or ':authority' must be a 'SignedHeader' "
                           "in the AWS Authorization.", generic=True)
        present = {k.lower() for k, _ in req.header_list}
        for n in names:
            if n not in present:
                raise AwsError("IncompleteSignatureException",
                               f"'{n}' is named as a SignedHeader, but it "
                               "does not exist in the HTTP request.",
                               generic=True)
        if term != "aws4_request":
            raise AwsError("InvalidSignatureException",
                           "Credential should be scoped with a valid "
                           f"terminator: 'aws4_request', not '{term}'. ",
                           generic=True)
        if day != stamp[:8]:
            raise AwsError("InvalidSignatureException",
                           "Date in Credential scope does not match YYYYMMDD"
                           " from ISO-8601 version of date from HTTP: "
                           f"'{day}' != '{stamp[:8]}', from '{stamp}'.",
                           generic=True)
        if svc != service:
            raise AwsError("InvalidSignatureException",
                           "Credential should be scoped to correct service: "
                           f"'{service}'. ", generic=True)
        if region != self.region:
            raise AwsError("InvalidSignatureException",
                           "Credential should be scoped to a valid region, "
                           f"not '{region}'. ", generic=True)
        now = self.clock()
        if when < now - SKEW_S:
            raise AwsError("InvalidSignatureException",
                           f"Signature expired: {stamp} is now earlier than "
                           f"{amz_date(now - SKEW_S)} ({amz_date(now)} - 5 "
                           "min.)", generic=True)
        if when > now + SKEW_S:
            raise AwsError("InvalidSignatureException",
                           f"Signature not yet current: {stamp} is still "
                           f"later than {amz_date(now + SKEW_S)} "
                           f"({amz_date(now)} + 5 min.)", generic=True)
        with self._lock:
            cred = self._creds.get(access)
        token = req.header("X-Amz-Security-Token")
        req.access_key = access
        if cred is None or cred.revoked or (token or None) != cred.token:
            raise AwsError("UnrecognizedClientException", TOKEN_INVALID,
                           generic=True)
        if cred.expires is not None and time.time() >= cred.expires:
            raise AwsError("ExpiredTokenException", TOKEN_EXPIRED,
                           generic=True)
        self._verify(req, cred, service, signed, stamp, parts["Signature"])
        return cred

    def _verify(self, req, cred, service, signed, stamp, given):
        host = req.header("Host") or f"{self.host}:{self.port}"
        scheme = "https" if self.tls else "http"
        url = f"{scheme}://{host}{req.raw_path}"
        if req.raw_query:
            url += "?" + req.raw_query
        signer = _Verifier(Credentials(cred.access, cred.secret, cred.token),
                           service, self.region, signed, req.header_list)
        request = AWSRequest(method=req.method, url=url, data=req.body)
        request.context["timestamp"] = stamp
        canonical = signer.canonical_request(request)
        to_sign = signer.string_to_sign(request, canonical)
        want = signer.signature(to_sign, request)
        if not hmac.compare_digest(want, given.strip()):
            raise AwsError("InvalidSignatureException",
                           f"{SIG_MISMATCH}\n\nThe Canonical String for this "
                           f"request should have been\n'{canonical}'\n\nThe "
                           f"String-to-Sign should have been\n'{to_sign}'\n",
                           generic=True)

    def _authorize(self, cred, action, resources):
        if cred.allows(action, resources):
            return
        raise AwsError("AccessDeniedException",
                       f"User: {cred.principal} is not authorized to perform:"
                       f" secretsmanager:{action} on resource: "
                       f"{resources[0]} because no identity-based policy "
                       f"allows the secretsmanager:{action} action")

    # --------------------------------------------------- Secrets Manager

    def _sm(self, req):
        try:
            cred = self._authenticate(req, "secretsmanager")
            ctype = req.header("Content-Type", "").split(";")[0].strip()
            target = req.header("X-Amz-Target")
            prefix, _, op = target.partition(".")
            if ctype.lower() != JSON_TYPE or prefix != "secretsmanager" or \
                    op not in SM_OPS:
                raise AwsError("UnknownOperationException", generic=True)
            try:
                body = json.loads(req.body) if req.body.strip() else None
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise AwsError("SerializationException",
                               "Start of structure or map found where not "
                               "expected." if req.body.strip() else
                               "No content to map due to end-of-input",
                               generic=True)
            req.access_key = cred.access
            return getattr(self, "_op_" + op)(cred, body)
        except AwsError as e:
            return self._error(e, req)

    @staticmethod
    def _str(body, key, lo=None, hi=None, required=False):
        v = body.get(key)
        if v is None:
            if required:
                raise _validation(key[0].lower() + key[1:], None,
                                  "Member must not be null")
            return None
        if not isinstance(v, str):
            raise AwsError("SerializationException",
                           f"Unexpected value type for {key}", generic=True)
        field = key[0].lower() + key[1:]
        if lo is not None and len(v) < lo:
            raise _validation(field, v, "Member must have length greater "
                              f"than or equal to {lo}")
        if hi is not None and len(v) > hi:
            raise _validation(field, v, "Member must have length less than "
                              f"or equal to {hi}")
        return v

    def _value(self, body):
        """(string, binary) of a request; InvalidParameterException when
        both are given."""
        ss = self._str(body, "SecretString", 0, 65536)
        raw = self._str(body, "SecretBinary")
        sb = None
        if raw is not None:
            try:
                sb = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise AwsError("SerializationException",
                               "Unable to decode SecretBinary as base64",
                               generic=True) from None
            if len(sb) > 65536:
                raise _validation("secretBinary", "***", "Member must have "
                                  "length less than or equal to 65536")
        if ss is not None and sb is not None:
            raise AwsError("InvalidParameterException",
                           "You can't specify both a binary secret value and"
                           " a string secret value in the same secret.")
        return ss, sb

    def _token(self, body, needed):
        tok = self._str(body, "ClientRequestToken", 32, 64)
        if tok is None and needed and self.require_client_request_token:
            raise _validation("clientRequestToken", None,
                              "Member must not be null")
        return tok or (str(uuid.uuid4()) if needed else None)

    def _find(self, sid):
        """(Secret or None, the name IAM sees) for a name or ARN."""
        prefix = self.arn_prefix()
        if sid.startswith("arn:"):
            for s in self._secrets.values():
                if s.arn == sid:
                    return s, s.name
            if sid.startswith(prefix):
                name = sid[len(prefix):]
                return self._secrets.get(name), name
            return None, sid
        return self._secrets.get(sid), sid

    def _resolve(self, cred, action, body, allow_deleted=False):
        sid = self._str(body, "SecretId", 1, 2048, required=True)
        with self._lock:
            s, name = self._find(sid)
        self._authorize(cred, action, [name, s.arn if s else sid])
        if s is None:
            raise AwsError("ResourceNotFoundException", NOT_FOUND)
        if s.deleted is not None and not allow_deleted:
            raise AwsError("InvalidRequestException", MARKED_DELETED)
        return s

    @staticmethod
    def _value_fields(v):
        if v.string is not None:
            return {"SecretString": v.string}
        if v.binary is not None:
            return {"SecretBinary": base64.b64encode(v.binary).decode()}
        return {}

    def _op_GetSecretValue(self, cred, body):
        vid = self._str(body, "VersionId", 32, 64)
        stage = self._str(body, "VersionStage", 1, 256)
        with self._lock:
            s = self._resolve(cred, "GetSecretValue", body)
            if vid is not None:
                v = s.versions.get(vid)
                if v is None:
                    raise AwsError("ResourceNotFoundException",
                                   "Secrets Manager can't find the specified"
                                   f" secret value for VersionId: {vid}")
                if stage is not None and s.stages.get(stage) != vid:
                    raise AwsError("InvalidRequestException",
                                   "You provided a VersionStage that is not "
                                   "associated to the provided VersionId.")
            else:
                label = stage or "AWSCURRENT"
                v = s.versions.get(s.stages.get(label))
                if v is None:
                    raise AwsError("ResourceNotFoundException",
                                   "Secrets Manager can't find the specified"
                                   f" secret value for staging label: "
                                   f"{label}")
            now = time.time()
            s.accessed = now - now % 86400
            out = {"ARN": s.arn, "Name": s.name, "VersionId": v.id,
                   "VersionStages": s.stages_of(v.id),
                   "CreatedDate": _ms(v.created)}
            out.update(self._value_fields(v))
            return self._ok(out)

    def _op_PutSecretValue(self, cred, body):
        ss, sb = self._value(body)
        stages = body.get("VersionStages")
        if stages is not None and (not isinstance(stages, list) or not
                                   all(isinstance(x, str) for x in stages)):
            raise AwsError("SerializationException",
                           "Unexpected value type for VersionStages",
                           generic=True)
        if stages is not None and not 1 <= len(stages) <= 20:
            raise _validation("versionStages", stages, "Member must have "
                              "length between 1 and 20")
        tok = self._token(body, needed=True)
        with self._lock:
            s = self._resolve(cred, "PutSecretValue", body)
            if ss is None and sb is None:
                raise AwsError("InvalidRequestException",
                               "You must provide either SecretString or "
                               "SecretBinary.")
            old = s.versions.get(tok)
            if old is not None:
                if not old.same_value(ss, sb):
                    raise AwsError("ResourceExistsException", VERSION_EXISTS)
            else:
                now = time.time()
                s.add_version(Version(tok, ss, sb, now), stages, now)
            return self._ok({"ARN": s.arn, "Name": s.name, "VersionId": tok,
                             "VersionStages": s.stages_of(tok)})

    def _op_CreateSecret(self, cred, body):
        name = self._str(body, "Name", 1, 512, required=True)
        desc = self._str(body, "Description", 0, 2048)
        kms = self._str(body, "KmsKeyId", 0, 2048)
        ss, sb = self._value(body)
        tags = body.get("Tags")
        if tags is not None and (not isinstance(tags, list) or not all(
                isinstance(t, dict) and isinstance(t.get("Key"), str) and
                isinstance(t.get("Value", ""), str) for t in tags)):
            raise AwsError("SerializationException",
                           "Unexpected value type for Tags", generic=True)
        has_value = ss is not None or sb is not None
        tok = self._token(body, needed=has_value)
        self._authorize(cred, "CreateSecret", [name, self.arn_prefix() +
                                               name])
        if not NAME_OK.match(name):
            raise AwsError("InvalidParameterException",
                           "Invalid name. Must be a valid name containing "
                           "alphanumeric characters, or any of the following:"
                           " -/_+=.@!")
        with self._lock:
            s = self._secrets.get(name)
            if s is not None:
                if s.deleted is not None:
                    raise AwsError("InvalidRequestException",
                                   "You can't create this secret because a "
                                   "secret with this name is already "
                                   "scheduled for deletion.")
                v = s.versions.get(tok) if tok else None
                if v is not None and v.same_value(ss, sb):
                    return self._ok({"ARN": s.arn, "Name": s.name,
                                     "VersionId": v.id})
                raise AwsError("ResourceExistsException",
                               f"The operation failed because the secret "
                               f"{name} already exists.")
            now = time.time()
            s = self._create(name, now, desc, kms, tags)
            out = {"ARN": s.arn, "Name": s.name}
            if has_value:
                s.add_version(Version(tok, ss, sb, now), None, now)
                out["VersionId"] = tok
            return self._ok(out)

    def _describe(self, s, versions_key):
        out = {"ARN": s.arn, "Name": s.name,
               "LastChangedDate": _ms(s.changed),
               "CreatedDate": _ms(s.created),
               versions_key: s.versions_to_stages()}
        if s.description is not None:
            out["Description"] = s.description
        if s.kms_key is not None:
            out["KmsKeyId"] = s.kms_key
        if s.accessed is not None:
            out["LastAccessedDate"] = _ms(s.accessed)
        if s.deleted is not None:
            out["DeletedDate"] = _ms(s.deleted)
        if s.tags:
            out["Tags"] = [dict(t) for t in s.tags]
        return out

    def _op_DescribeSecret(self, cred, body):
        with self._lock:
            s = self._resolve(cred, "DescribeSecret", body,
                              allow_deleted=True)
            return self._ok(self._describe(s, "VersionIdsToStages"))

    def _op_ListSecrets(self, cred, body):
        self._authorize(cred, "ListSecrets", ["*"])
        limit = body.get("MaxResults", 100)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise AwsError("SerializationException",
                           "Unexpected value type for MaxResults",
                           generic=True)
        if not 1 <= limit <= 100:
            raise _validation("maxResults", limit, "Member must have value "
                              f"{'greater' if limit < 1 else 'less'} than or"
                              f" equal to {1 if limit < 1 else 100}")
        order = body.get("SortOrder", "desc")
        if order not in ("asc", "desc"):
            raise _validation("sortOrder", order, "Member must satisfy enum "
                              "value set: [asc, desc]")
        start = 0
        nt = body.get("NextToken")
        if nt is not None:
            try:
                start = json.loads(base64.b64decode(nt, validate=True))["o"]
                if not isinstance(start, int) or start < 0:
                    raise ValueError
            except (ValueError, TypeError, KeyError, binascii.Error):
                raise AwsError("InvalidNextTokenException",
                               "The NextToken value is invalid.") from None
        filters = self._filters(body.get("Filters"))
        with self._lock:
            rows = [s for s in self._secrets.values()
                    if (s.deleted is None or body.get(
                        "IncludePlannedDeletion")) and
                    all(f(s) for f in filters)]
            rows.sort(key=lambda s: s.created, reverse=order == "desc")
            page = rows[start:start + limit]
            out = {"SecretList": [self._describe(s, "SecretVersionsToStages")
                                  for s in page]}
            if start + limit < len(rows):
                out["NextToken"] = base64.b64encode(json.dumps(
                    {"o": start + limit}).encode()).decode()
            return self._ok(out)

    @staticmethod
    def _filters(raw):
        """Predicates for ListSecrets Filters (prefix matches, ! negates)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise AwsError("SerializationException",
                           "Unexpected value type for Filters", generic=True)
        out = []
        for f in raw:
            key, values = f.get("Key"), f.get("Values") or []
            if key not in ("description", "name", "tag-key", "tag-value",
                           "primary-region", "all"):
                raise _validation("filters.member.key", key, "Member must "
                                  "satisfy enum value set: [description, "
                                  "name, tag-key, tag-value, primary-region,"
                                  " all]")

            def fields(s, key=key):
                return {"name": [s.name],
                        "description": [s.description or ""],
                        "tag-key": [t["Key"] for t in s.tags],
                        "tag-value": [t.get("Value", "") for t in s.tags],
                        "primary-region": [],
                        "all": [s.name, s.description or ""] +
                        [t["Key"] for t in s.tags] +
                        [t.get("Value", "") for t in s.tags]}[key]

            def match(s, key=key, values=tuple(values)):
                fold = key in ("description", "all")
                hits = []
                for v in values:
                    neg = v.startswith("!")
                    v = v[1:] if neg else v
                    cands = fields(s)
                    if fold:
                        v = v.lower()
                        cands = [c.lower() for c in cands]
                    found = any(c.startswith(v) for c in cands)
                    hits.append(found != neg)
                return any(hits) if hits else True
            out.append(match)
        return out

    # --------------------------------------------------------------- STS

    def _sts(self, req):
        form = _form(req.body) or {}
        try:
            if req.header("Authorization") is not None:
                try:
                    self._authenticate(req, "sts")
                except AwsError as e:
                    raise StsError(
                        {"UnrecognizedClientException":
                         "InvalidClientTokenId",
                         "InvalidSignatureException": "SignatureDoesNotMatch",
                         "IncompleteSignatureException": "IncompleteSignature",
                         "ExpiredTokenException": "ExpiredToken",
                         }.get(e.type, e.type),
                        (e.message or "").split("\n")[0], 403 if e.type in (
                            "UnrecognizedClientException",
                            "InvalidSignatureException") else 400) from None
            action = form.get("Action")
            if action != "AssumeRoleWithWebIdentity":
                raise StsError("InvalidAction", f"Could not find operation "
                               f"{action} for version "
                               f"{form.get('Version', '')}")
            return self._assume_web(form)
        except StsError as e:
            req.aws_error = e.code
            body = (f'<ErrorResponse xmlns="{STS_XMLNS}">\n  <Error>\n'
                    f"    <Type>{e.fault}</Type>\n"
                    f"    <Code>{_x(e.code)}</Code>\n"
                    f"    <Message>{_x(e.message)}</Message>\n  </Error>\n"
                    f"  <RequestId>{uuid.uuid4()}</RequestId>\n"
                    "</ErrorResponse>\n")
            return Response(e.status, body.encode(),
                            self._headers("text/xml"))

    def _assume_web(self, form):
        errs = []
        for field, key in (("roleArn", "RoleArn"),
                           ("roleSessionName", "RoleSessionName"),
                           ("webIdentityToken", "WebIdentityToken")):
            if not form.get(key):
                errs.append(f"Value null at '{field}' failed to satisfy "
                            "constraint: Member must not be null")
        session = form.get("RoleSessionName") or ""
        if session and not re.fullmatch(r"[\w+=,.@-]{2,64}", session):
            errs.append(f"Value '{session}' at 'roleSessionName' failed to "
                        "satisfy constraint: Member must satisfy regular "
                        r"expression pattern: [\w+=,.@-]*")
        duration = form.get("DurationSeconds")
        if duration is not None:
            try:
                duration = int(duration)
            except ValueError:
                duration = -1
            if not 900 <= duration <= 43200:
                errs.append(f"Value '{form.get('DurationSeconds')}' at "
                            "'durationSeconds' failed to satisfy constraint:"
                            " Member must have value between 900 and 43200")
        if errs:
            raise StsError("ValidationError", f"{len(errs)} validation "
                           f"error{'s' if len(errs) > 1 else ''} detected: "
                           + "; ".join(errs))
        token = form["WebIdentityToken"]
        with self._lock:
            role = self._roles.get(form["RoleArn"])
            if role is None:
                raise StsError("AccessDenied", "Not authorized to perform "
                               "sts:AssumeRoleWithWebIdentity", 403)
            if token in self._expired_web_tokens:
                raise StsError("ExpiredTokenException", "Token expired: "
                               f"current date/time {int(time.time())} must "
                               "be before the expiration date/time"
                               f"{int(time.time()) - 60}")
            if token not in role.tokens:
                raise StsError("InvalidIdentityToken", "The web identity "
                               "token that was passed could not be validated"
                               " by AWS. Get a new identity token from the "
                               "identity provider and then retry the "
                               "request.")
            if duration is not None and duration > role.max_session:
                raise StsError("ValidationError", "The requested "
                               "DurationSeconds exceeds the "
                               "MaxSessionDuration set for this role.")
            ttl = role.ttl or duration or 3600
            principal = (f"arn:aws:sts::{self.account}:assumed-role/"
                         f"{role.name}/{session}")
            c = self._issue("sts", ttl, role.allow, principal)
        body = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_XMLNS}">\n'
            "  <AssumeRoleWithWebIdentityResult>\n"
            f"    <Audience>{_x(role.audience)}</Audience>\n"
            "    <AssumedRoleUser>\n"
            f"      <AssumedRoleId>AROA{_rand(17, string.ascii_uppercase)}:"
            f"{_x(session)}</AssumedRoleId>\n"
            f"      <Arn>{_x(principal)}</Arn>\n"
            "    </AssumedRoleUser>\n"
            f"    <Provider>{_x(role.provider)}</Provider>\n"
            "    <Credentials>\n"
            f"      <AccessKeyId>{c.access}</AccessKeyId>\n"
            f"      <SecretAccessKey>{_x(c.secret)}</SecretAccessKey>\n"
            f"      <SessionToken>{_x(c.token)}</SessionToken>\n"
            f"      <Expiration>{iso_seconds(c.expires)}</Expiration>\n"
            "    </Credentials>\n"
            "    <SubjectFromWebIdentityToken>"
            f"{_x(role.subject)}</SubjectFromWebIdentityToken>\n"
            "  </AssumeRoleWithWebIdentityResult>\n"
            "  <ResponseMetadata>\n"
            f"    <RequestId>{uuid.uuid4()}</RequestId>\n"
            "  </ResponseMetadata>\n"
            "</AssumeRoleWithWebIdentityResponse>\n")
        return Response(200, body.encode(), self._headers("text/xml"))

    def _issue(self, source, ttl, allow, principal):
        """New temporary credentials valid for ttl seconds (expiry on a
        whole second: what the Expiration text says is what is enforced)."""
        c = Cred(new_access_key(True), new_secret_key(), new_session_token(),
                 int(time.time() + ttl), allow, principal, source)
        self._secret_value(c.secret)
        self._secret_value(c.token)
        with self._lock:
            self._creds[c.access] = c
            self.issued.append(c)
        return c

    def issued_by(self, source):
        """Credentials handed out by "sts", "ecs" or "imds", oldest first."""
        with self._lock:
            return [c for c in self.issued if c.source == source]

    # --------------------------------------------------------------- ECS

    def _ecs(self, req):
        ep = self._containers[req.path]
        if ep.auth_token is not None and \
                req.header("Authorization") != ep.auth_token:
            req.aws_error = "AccessDenied"
            return Response(401, json.dumps(
                {"code": "AccessDenied",
                 "message": "Authorization token is missing or invalid"}
            ).encode(), [("Content-Type", "application/json")])
        c = self._issue("ecs", ep.ttl, ep.allow,
                        ep.role_arn.replace(":iam::", ":sts::").replace(
                            ":role/", ":assumed-role/") + "/ecs-task")
        return Response(200, json.dumps(
            {"RoleArn": ep.role_arn, "AccessKeyId": c.access,
             "SecretAccessKey": c.secret, "Token": c.token,
             "Expiration": iso_seconds(c.expires)}).encode(),
            [("Content-Type", "application/json")])

    # -------------------------------------------------------------- IMDS

    def _imds(self, req):
        path = req.path
        if path == "/latest/api/token":
            return self._imds_token(req)
        if req.method not in ("GET", "HEAD"):
            return Response(405, b"", [("Content-Type", "text/plain")])
        tok = req.header("X-aws-ec2-metadata-token")
        with self._lock:
            exp = self._imds_tokens.get(tok) if tok is not None else None
        if tok is not None and (exp is None or time.time() >= exp):
            return Response(401, b"", [("Content-Type", "text/plain")])
        if tok is None and not self.imds_v1:
            return Response(401, b"", [("Content-Type", "text/plain")])
        base = "/latest/meta-data/iam/security-credentials/"
        with self._lock:
            role = self._imds_role
        if path == base:
            if role is None:
                return _imds_404()
            return Response(200, role[0].encode(),
                            [("Content-Type", "text/plain")])
        if path.startswith(base) and role is not None and \
                path[len(base):] == role[0]:
            name, ttl, allow = role
            c = self._issue("imds", ttl, allow,
                            f"arn:aws:sts::{self.account}:assumed-role/"
                            f"{name}/i-0123456789abcdef0")
            body = json.dumps({
                "Code": "Success", "LastUpdated": iso_seconds(time.time()),
                "Type": "AWS-HMAC", "AccessKeyId": c.access,
                "SecretAccessKey": c.secret, "Token": c.token,
                "Expiration": iso_seconds(c.expires)}, indent=2)
            return Response(200, body.encode(),
                            [("Content-Type", "text/plain")])
        return _imds_404()

    def _imds_token(self, req):
        if req.method != "PUT":
            return Response(405, b"", [("Content-Type", "text/plain")])
        if req.header("X-Forwarded-For") is not None:
            return Response(403, b"", [("Content-Type", "text/plain")])
        raw = req.header("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(raw)
        except (TypeError, ValueError):
            ttl = 0
        if not 1 <= ttl <= 21600:
            return Response(400, b"", [("Content-Type", "text/plain")])
        tok = "AQAEA" + _rand(51, _ALNUM + "-_") + "=="
        self._secret_value(tok)
        with self._lock:
            self._imds_tokens[tok] = time.time() + ttl
        return Response(200, tok.encode(), [
            ("Content-Type", "text/plain"),
            ("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])


def _imds_404():
    body = (b'<?xml version="1.0" encoding="iso-8859-1"?>\n'
            b"<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN"
            b'" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            b'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" '
            b'lang="en">\n <head>\n  <title>404 - Not Found</title>\n '
            b"</head>\n <body>\n  <h1>404 - Not Found</h1>\n </body>\n"
            b"</html>\n")
    return Response(404, body, [("Content-Type", "text/html")])


def _x(text):
    return _xml_escape(str(text))


def _form(body):
    """The form fields of an x-www-form-urlencoded body, None if it has no
    Action (so it is no STS call)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = urllib.parse.parse_qs(text, keep_blank_values=True)
    if "Action" not in fields:
        return None
    return {k: v[-1] for k, v in fields.items()}


# ------------------------------------------------------------------- CLI

def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="AWS Secrets Manager emulator "
                                 "(with STS, ECS and IMDS credentials)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4566)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--credentials", action="append", default=[],
                    metavar="ACCESS:SECRET[:TOKEN]")
    ap.add_argument("--secret", action="append", default=[],
                    metavar="NAME=VALUE", help="a string secret")
    ap.add_argument("--secret-file", action="append", default=[],
                    metavar="NAME=PATH", help="a binary secret from a file")
    ap.add_argument("--role", action="append", default=[],
                    metavar="ROLE_ARN=WEB_TOKEN",
                    help="AssumeRoleWithWebIdentity accepts WEB_TOKEN")
    ap.add_argument("--container", action="append", default=[],
                    metavar="PATH[=AUTH_TOKEN]",
                    help="serve ECS container credentials on PATH")
    ap.add_argument("--imds-role", metavar="NAME",
                    help="serve IMDSv2 credentials for role NAME")
    ap.add_argument("--ttl", type=int, default=3600,
                    help="lifetime of issued credentials (s)")
    ap.add_argument("--tls", metavar="DIR",
                    help="serve https with a test CA written to DIR")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    emu = AwsEmulator(a.region, host=a.host, port=a.port, tls=bool(a.tls),
                      cert_dir=a.tls, verbose=a.verbose)
    for spec in a.credentials or ["AKIDEXAMPLE:secretfs-example-key"]:
        access, secret, *tok = spec.split(":", 2)
        emu.add_credentials(access, secret, tok[0] if tok else None)
    for spec in a.secret:
        name, _, value = spec.partition("=")
        emu.put_secret(name, string=value)
    for spec in a.secret_file:
        name, _, path = spec.partition("=")
        with open(path, "rb") as fh:
            emu.put_secret(name, binary=fh.read())
    for spec in a.role:
        arn, _, tok = spec.partition("=")
        emu.add_role(arn, [tok], ttl=a.ttl)
    for spec in a.container:
        path, _, tok = spec.partition("=")
        emu.add_container_endpoint(path, tok or None, ttl=a.ttl)
    if a.imds_role:
        emu.set_imds_role(a.imds_role, ttl=a.ttl)
    emu.start()
    print(f"aws emulator on {emu.url}  region {emu.region}  credentials: "
          + ", ".join(c.split(":")[0] for c in a.credentials or
                      ["AKIDEXAMPLE:secretfs-example-key"]), flush=True)
    return httpbase.serve_until_signal(emu)


if __name__ == "__main__":
    sys.exit(main())
