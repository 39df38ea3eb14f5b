#!/usr/bin/python3
"""vault.py - a protocol-faithful HashiCorp Vault emulator for the tests.

Speaks what docs/vault.md says secretfs asks of Vault, with the shapes
of real Vault (checked against hashicorp/vault and vault-plugin-secrets-kv
source): KV v2 (data, metadata, delete/undelete/destroy, config, CAS,
merge-PATCH, both 404 shapes, the "Invalid path for a versioned K/V
secrets engine" 404), KV v1, LIST by method or ?list=true,
sys/internal/ui/mounts, tokens (lookup-self, renew-self with max TTL,
expiry), AppRole and Kubernetes logins, ACL policies with Vault's glob
rules and priority, namespaces, sealed and standby modes, Vault Agent's
X-Vault-Request check, and every fault of faults.py.

    emu = VaultEmulator(mounts={"secret/": 2, "kv1/": 1}).start()
    emu.put("secret/", "billing", {"DB": "pw"})
    tok = emu.create_token(["billing-read"], ttl=60)
    ...
    emu.stop()

Run by hand:  /usr/bin/python3 tests/emulators/vault.py --port 8200 \
                  --root-token root [--mount kv1/=1] [--tls DIR]

Choices where Vault itself differs between versions or setups (kept in
one place, see also tests/emulators/README.md):
- sys/internal/ui/mounts/<p> for a path under no mount answers 403
  "preflight capability check returned 403, ..." as current Vault does
  (it hides which mounts exist); ui_mounts="404" makes it answer 404 like
  a Vault too old to have the endpoint, which the CLI treats as KV v1.
- A missing, unknown or expired token answers 403 {"errors":["permission
  denied"]}; a token whose policies deny the path answers 403 with Vault's
  multierror text "1 error occurred:\\n\\t* permission denied\\n\\n".
- With require_request_header=True a request without X-Vault-Request:
  true gets Vault Agent/Proxy's answer, 412 {"errors":["missing
  \\"X-Vault-Request\\" header"]} (command/agent.go verifyRequestHeader).
- Tokens and policies are global; a namespace (X-Vault-Namespace header,
  or a path prefix naming a namespace made with add_namespace) only
  selects a separate set of mounts and their data.
"""

import copy
import re
import secrets as _random
import string
import sys
import threading
import time
import uuid

import httpbase  # noqa: E402
from httpbase import EmulatorServer, Response, Struct, go_json

DEFAULT_LEASE = 2764800             # 768h, Vault's default max/default TTL
DEFAULT_MAX_VERSIONS = 10
PERMISSION_DENIED = "permission denied"
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
UNSUPPORTED = "1 error occurred:\n\t* unsupported operation\n\n"
CAPABILITIES = {"create", "read", "update", "patch", "delete", "list",
                "sudo", "deny", "subscribe"}

ERROR_TEXT = {
    400: "bad request",
    403: PERMISSION_DENIED,
    412: "required index state not present",
    429: "rate limit quota exceeded",
    500: "internal error",
    501: "Vault is not initialized",
    502: "upstream rate limited",
    503: "Vault is sealed",
}


def _now_ns():
    return time.time_ns()


def rfc3339(ns):
    """Go's time.RFC3339Nano in UTC: fraction without trailing zeros."""
    if ns is None:
        return ""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    f = f"{frac:09d}".rstrip("0")
    return f"{base}.{f}Z" if f else f"{base}Z"


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60,
         "h": 3600, "d": 86400}


def parse_duration(v):
    """Seconds from 3600, "3600", "1h", "1h30m", "90s"; None when absent."""
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise ValueError("bad duration")
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    if re.fullmatch(r"\d+", s):
        return int(s)
    pos, total = 0, 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            raise ValueError(f"bad duration {s!r}")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"bad duration {s!r}")
    return int(total)


def _rand(n=24):
    alphabet = string.ascii_letters + string.digits
    return "".join(_random.choice(alphabet) for _ in range(n))


def new_token():
    return "hvs." + _rand(24)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class VaultError(Exception):
    """An error answer: status and the errors list (or a raw Response)."""

    def __init__(self, status, *errors, response=None):
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors)
        self.response = response


# ------------------------------------------------------------------ state

class Version:
    def __init__(self, data, created, deletion=None):
        self.data = data
        self.created = created
        self.deletion = deletion        # ns; deleted once it is in the past
        self.destroyed = False

    def deleted(self, now):
        return self.deletion is not None and self.deletion <= now


class Secret:
    """One KV v2 key: its versions and metadata."""

    def __init__(self, now):
        self.versions = {}
        self.current = 0
        self.oldest = 0
        self.created = now
        self.updated = now
        self.max_versions = 0
        self.cas_required = False
        self.custom_metadata = None
        self.delete_version_after = 0

    def add(self, data, now, mount):
        dva = self.delete_version_after or mount.delete_version_after
        v = Version(copy.deepcopy(data), now,
                    now + dva * 1_000_000_000 if dva else None)
        self.current += 1
        self.versions[self.current] = v
        self.updated = now
        if not self.created:
            self.created = now
        keep = max(self.max_versions, mount.max_versions) or DEFAULT_MAX_VERSIONS
        if self.current - self.oldest >= keep:
            drop = self.current - keep
            for i in range(self.oldest, drop + 1):
                self.versions.pop(i, None)
            self.oldest = drop + 1
        return v

    def version_meta(self, n):
        v = self.versions[n]
        return Struct(created_time=rfc3339(v.created),
                      deletion_time=rfc3339(v.deletion),
                      destroyed=v.destroyed)


class KVMount:
    def __init__(self, path, version, legacy_options=False):
        self.path = path
        self.version = version
        self.uuid = str(uuid.uuid4())
        self.accessor = f"kv_{_rand(8).lower()}"
        self.legacy_options = legacy_options
        self.cas_required = False
        self.max_versions = 0
        self.delete_version_after = 0
        self.v1 = {}        # key -> dict
        self.v2 = {}        # key -> Secret

    def fresh_copy(self):
        m = KVMount(self.path, self.version, self.legacy_options)
        m.cas_required = self.cas_required
        m.max_versions = self.max_versions
        return m

    def keys(self):
        return self.v2.keys() if self.version == 2 else self.v1.keys()

    def info(self):
        options = None if self.legacy_options else {"version": str(self.version)}
        return Struct(
            accessor=self.accessor,
            config=Struct(default_lease_ttl=0, force_no_cache=False,
                          max_lease_ttl=0),
            description="key/value secret storage",
            external_entropy_access=False, local=False, options=options,
            plugin_version="", running_plugin_version="v0.16.1+builtin",
            running_sha256="", seal_wrap=False, type="kv", uuid=self.uuid)


class Token:
    def __init__(self, tid, policies, ttl, max_ttl, renewable, path,
                 meta=None, display_name="token", num_uses=0):
        self.id = tid
        self.accessor = _rand(24)
        self.policies = list(policies)
        self.ttl = int(ttl or 0)                # creation TTL
        self.max_ttl = int(max_ttl or 0)        # explicit max TTL
        self.renewable = bool(renewable) and self.ttl > 0
        self.path = path
        self.meta = meta
        self.display_name = display_name
        self.num_uses = num_uses
        self.entity_id = "" if path == "auth/token/root" else str(uuid.uuid4())
        self.created = time.time()
        self.expire_at = self.created + self.ttl if self.ttl else None
        self.last_renewal = None

    @property
    def root(self):
        return "root" in self.policies

    def remaining(self, now=None):
        if self.expire_at is None:
            return 0
        return max(0, round(self.expire_at - (now or time.time())))


class Policy:
    """Vault ACL rules: {pattern: set(capabilities)}."""

    HCL = re.compile(r'path\s+"([^"]*)"\s*\{(.*?)\}', re.S)
    CAPS = re.compile(r'capabilities\s*=\s*\[([^\]]*)\]', re.S)

    def __init__(self, name, rules):
        self.name = name
        self.rules = {}
        if isinstance(rules, str):
            parsed = {}
            for m in self.HCL.finditer(rules):
                c = self.CAPS.search(m.group(2))
                parsed[m.group(1)] = re.findall(r'"([^"]*)"', c.group(1)) if c else []
            rules = parsed
        for pattern, caps in rules.items():
            caps = {caps} if isinstance(caps, str) else set(caps)
            bad = caps - CAPABILITIES
            if bad:
                raise ValueError(f"policy {name}: unknown capabilities {bad}")
            self.rules[pattern] = caps


def _pattern_regex(pattern):
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    parts = []
    for seg in body.split("/"):
        parts.append("[^/]+" if seg == "+" else re.escape(seg))
    return re.compile("/".join(parts) + (".*" if glob else "") + r"\Z")


def _priority(pattern):
    """Sort key: the highest is the rule Vault applies (policies docs:
    later first wildcard, no trailing *, fewer +, longer, lexically
    larger)."""
    idx = [i for i in (pattern.find("+"), pattern.find("*")) if i >= 0]
    first = min(idx) if idx else len(pattern) + 1
    return (first, not pattern.endswith("*"), -pattern.split("/").count("+"),
            len(pattern), pattern)


# -------------------------------------------------------------- emulator

class VaultEmulator(EmulatorServer):
    name = "vault"

    def __init__(self, mounts=None, *, root_token=None,
                 require_request_header=False, ui_mounts="normal",
                 max_lease_ttl=DEFAULT_LEASE, auto_namespaces=True,
                 on_secret=None, **server_kw):
        """mounts: {"secret/": 2, "kv1/": 1, "kv/team/": 2}; default
        {"secret/": 2} like `vault server -dev`. on_secret(value) is
        called with every credential the emulator hands out or is given
        (tokens, secret IDs, JWTs), e.g. a leak checker's add()."""
        super().__init__(**server_kw)
        self._lock = threading.RLock()
        self.on_secret = on_secret
        self.require_request_header = require_request_header
        self.ui_mounts = ui_mounts
        self.max_lease_ttl = max_lease_ttl
        self.auto_namespaces = auto_namespaces
        self.sealed = False
        self.standby_of = None
        self._ns = {"": {}}
        for path, version in (mounts or {"secret/": 2}).items():
            self.mount(path, version)
        self._tokens = {}
        self._policies = {}
        self._approle = {}      # mount -> role -> dict
        self._k8s = {}          # mount -> role -> dict
        self.issued_tokens = []
        self.root_token = self.create_token(["root"], token=root_token or
                                            new_token(), path="auth/token/root")

    def _secret(self, value):
        if self.on_secret and value:
            self.on_secret(value)
        return value

    # ============================================================ test API

    def mount(self, path, version=2, namespace="", legacy_options=False):
        """Enable a KV engine at path ("kv/team/"); version 1 or 2.
        legacy_options=True reports options null in ui/mounts, as a v1
        mount made by an old `vault secrets enable kv` does."""
        path = path.strip("/") + "/"
        if version not in (1, 2):
            raise ValueError("KV version must be 1 or 2")
        with self._lock:
            ns = self._namespace(namespace, create=True)
            ns[path] = KVMount(path, version, legacy_options)

    def unmount(self, path, namespace=""):
        with self._lock:
            self._namespace(namespace).pop(path.strip("/") + "/", None)

    def add_namespace(self, name):
        """A namespace with fresh, empty copies of the root's mounts."""
        with self._lock:
            self._namespace(name, create=True)
        return self._ns_key(name)

    def _kv(self, mount, namespace=""):
        key = mount.strip("/") + "/"
        with self._lock:
            try:
                return self._namespace(namespace)[key]
            except KeyError:
                raise KeyError(f"no KV mount {key!r} in namespace "
                               f"{namespace!r}") from None

    def put(self, mount, path, data, namespace="", cas=None):
        """Write data at mount/path like a client would (new v2 version,
        or the v1 map). Returns the new version (v2) or None (v1)."""
        m = self._kv(mount, namespace)
        with self._lock:
            if m.version == 1:
                m.v1[path] = copy.deepcopy(data)
                return None
            s = m.v2.get(path)
            if cas is not None and (s.current if s else 0) != cas:
                raise ValueError("check-and-set parameter did not match")
            if s is None:
                s = m.v2[path] = Secret(_now_ns())
            s.add(data, _now_ns(), m)
            return s.current

    def get(self, mount, path, version=None, namespace=""):
        """The data at mount/path (a copy), None when missing, deleted or
        destroyed."""
        m = self._kv(mount, namespace)
        with self._lock:
            if m.version == 1:
                return copy.deepcopy(m.v1.get(path))
            s = m.v2.get(path)
            if s is None:
                return None
            v = s.versions.get(version or s.current)
            if v is None or v.destroyed or v.deleted(_now_ns()):
                return None
            return copy.deepcopy(v.data)

    def version(self, mount, path, namespace=""):
        """Current version of a v2 secret (0 when it does not exist)."""
        m = self._kv(mount, namespace)
        with self._lock:
            s = m.v2.get(path)
            return s.current if s else 0

    def metadata(self, mount, path, namespace=""):
        """What GET <mount>/metadata/<path> returns in data, or None."""
        m = self._kv(mount, namespace)
        with self._lock:
            s = m.v2.get(path)
            return None if s is None else self._metadata_data(s)

    def delete(self, mount, path, versions=None, namespace=""):
        """v2: soft-delete the latest version (or versions); v1: remove."""
        m = self._kv(mount, namespace)
        with self._lock:
            if m.version == 1:
                m.v1.pop(path, None)
                return
            s = m.v2.get(path)
            if s is None:
                return
            now = _now_ns()
            for n in versions or [s.current]:
                v = s.versions.get(n)
                if v is not None and not v.destroyed and not v.deleted(now):
                    v.deletion = now

    def undelete(self, mount, path, versions, namespace=""):
        m = self._kv(mount, namespace)
        with self._lock:
            s = m.v2.get(path)
            for n in versions if s else ():
                v = s.versions.get(n)
                if v is not None and not v.destroyed:
                    v.deletion = None

    def destroy(self, mount, path, versions=None, namespace=""):
        m = self._kv(mount, namespace)
        with self._lock:
            s = m.v2.get(path)
            for n in (versions or [s.current]) if s else ():
                v = s.versions.get(n)
                if v is not None:
                    v.destroyed, v.data = True, None

    def delete_metadata(self, mount, path, namespace=""):
        m = self._kv(mount, namespace)
        with self._lock:
            m.v2.pop(path, None)

    def set_cas_required(self, mount, value=True, path=None, namespace=""):
        """cas_required on the whole mount (path=None) or on one secret."""
        m = self._kv(mount, namespace)
        with self._lock:
            if path is None:
                m.cas_required = value
            else:
                s = m.v2.setdefault(path, Secret(_now_ns()))
                s.cas_required = value

    def set_max_versions(self, mount, n, namespace=""):
        with self._lock:
            self._kv(mount, namespace).max_versions = n

    def create_token(self, policies=(), ttl=0, renewable=True, max_ttl=0,
                     token=None, path="auth/token/create", meta=None,
                     display_name="token"):
        """A token with these policies; ttl/max_ttl in seconds (0: none).
        Returns the token string."""
        tid = token or new_token()
        t = Token(tid, policies, ttl, max_ttl, renewable, path, meta,
                  display_name)
        with self._lock:
            self._tokens[tid] = t
            self.issued_tokens.append(tid)
        self._secret(tid)
        return tid

    def token_info(self, token):
        """The lookup-self data of a live token, or None."""
        with self._lock:
            t = self._live_token(token)
            return None if t is None else self._lookup_data(t)

    def capabilities(self, token, path):
        """The capabilities token has on path (like sys/capabilities-self)."""
        with self._lock:
            t = self._live_token(token)
        if t is None:
            return set()
        return {"root"} if t.root else self._caps(t, path)

    def revoke_token(self, token):
        with self._lock:
            self._tokens.pop(token, None)

    def expire_token(self, token):
        """Make a token expire now (as if its TTL ran out)."""
        with self._lock:
            t = self._tokens.get(token)
            if t is not None:
                t.expire_at = time.time() - 1

    def add_policy(self, name, rules):
        """rules: {"secret/data/app/*": ["read"], ...} or HCL text with
        path "..." { capabilities = [...] } blocks."""
        with self._lock:
            self._policies[name] = Policy(name, rules)

    def add_approle(self, role, role_id, secret_id, policies=(), ttl=3600,
                    max_ttl=0, secret_id_num_uses=0, mount="approle",
                    renewable=True):
        """An AppRole role at auth/<mount>; secret_id may be None (add them
        with add_secret_id). secret_id_num_uses=0: unlimited."""
        mount = mount.strip("/")
        with self._lock:
            roles = self._approle.setdefault(mount, {})
            roles[role] = {"role_id": role_id, "secret_ids": {},
                           "policies": list(policies), "ttl": ttl,
                           "max_ttl": max_ttl, "renewable": renewable}
        self._secret(role_id)
        if secret_id is not None:
            self.add_secret_id(role, secret_id, secret_id_num_uses, mount)

    def add_secret_id(self, role, secret_id, num_uses=0, mount="approle"):
        with self._lock:
            self._approle[mount.strip("/")][role]["secret_ids"][secret_id] = \
                num_uses or None
        self._secret(secret_id)

    def add_k8s_role(self, role, jwt, policies=(), ttl=3600, max_ttl=0,
                     mount="kubernetes", renewable=True):
        """A Kubernetes auth role accepting the JWT string(s) jwt."""
        jwts = {jwt} if isinstance(jwt, str) else set(jwt)
        with self._lock:
            self._k8s.setdefault(mount.strip("/"), {})[role] = {
                "jwts": jwts, "policies": list(policies), "ttl": ttl,
                "max_ttl": max_ttl, "renewable": renewable}
        for j in jwts:
            self._secret(j)

    def k8s_accept(self, role, jwts, mount="kubernetes"):
        """Replace the JWTs a Kubernetes role accepts (token rotation)."""
        jwts = {jwts} if isinstance(jwts, str) else set(jwts)
        with self._lock:
            self._k8s[mount.strip("/")][role]["jwts"] = jwts
        for j in jwts:
            self._secret(j)

    def seal(self):
        self.sealed = True

    def unseal(self):
        self.sealed = False

    def standby(self, active_url):
        """Answer every request with a 307 to active_url (None: active)."""
        self.standby_of = active_url.rstrip("/") if active_url else None

    # ========================================================== dispatch

    def error_response(self, status, message=None):
        if 300 <= status < 400:
            return Response(status)
        text = message if message is not None else ERROR_TEXT.get(status)
        return Response.json(status, {"errors": [text] if text else []})

    def garbage_body(self, kind, req):
        presets = {
            "wrong-types": go_json({"request_id": str(uuid.uuid4()),
                                    "data": "x"}),
            "data-null": go_json(self._envelope(None)),
            "data-data-string": go_json(self._envelope(
                Struct(data="x", metadata=Struct(version=1)))),
            "version-string": go_json(self._envelope(Struct(
                data={"k": "v"}, metadata=Struct(version="one")))),
            "errors-not-list": go_json({"errors": "boom"}),
        }
        if kind in presets:
            return presets[kind]
        return super().garbage_body(kind, req)

    def huge_body(self, size, req):
        return go_json(self._envelope(Struct(
            data={"HUGE": "A" * size},
            metadata=Struct(created_time=rfc3339(_now_ns()),
                            custom_metadata=None, deletion_time="",
                            destroyed=False, version=1))))

    def _envelope(self, data, warnings=None, auth=None, lease=0,
                  mount_type=""):
        return Struct(request_id=str(uuid.uuid4()), lease_id="",
                      renewable=False, lease_duration=lease, data=data,
                      wrap_info=None, warnings=warnings, auth=auth,
                      mount_type=mount_type)

    def _ok(self, data, **kw):
        return Response.json(200, self._envelope(data, **kw))

    def _raw404(self, data=None, warnings=None, mount_type="kv"):
        """logical.RespondWithStatusCode(resp, 404): the whole envelope,
        json.Marshal (no newline); no body at all for a nil resp."""
        if data is None and warnings is None:
            return Response(404, b"", [("Content-Type", "application/json")])
        return Response.json(404, self._envelope(data, warnings=warnings,
                                                 mount_type=mount_type),
                             newline=False)

    def handle(self, req):
        try:
            return self._route(req)
        except VaultError as e:
            if e.response is not None:
                return e.response
            return Response.json(e.status, {"errors": e.errors})

    def _route(self, req):
        if self.require_request_header and [
                v for k, v in req.header_list
                if k.lower() == "x-vault-request"] != ["true"]:
            raise VaultError(412, 'missing "X-Vault-Request" header')
        if not req.path.startswith("/v1/"):
            raise VaultError(404)
        path = req.path[len("/v1/"):]
        if path in ("sys/health", "sys/seal-status"):
            return self._sys_health(req, path)
        if path == "sys/unseal" and req.method in ("POST", "PUT"):
            self.unseal()       # any key will do
            return self._sys_health(req, "sys/seal-status")
        if self.sealed:
            raise VaultError(503, "Vault is sealed")
        if self.standby_of:
            loc = self.standby_of + req.raw_path + \
                ("?" + req.raw_query if req.raw_query else "")
            return Response(307, b"", [("Location", loc)])

        op = self._operation(req)
        ns_name = self._ns_key(req.header("X-Vault-Namespace", ""))
        ns_name, path = self._path_namespace(ns_name, path)
        if op == "list" and not path.endswith("/"):
            path += "/"

        login = self._login_route(path)
        if login is not None:
            return login(req)
        if path.startswith("sys/internal/ui/mounts/") or \
                path == "sys/internal/ui/mounts":
            return self._ui_mounts(req, ns_name, path)

        token = self._authenticate(req)
        if path.startswith("auth/token/"):
            return self._token_api(req, op, token, path[len("auth/token/"):])
        if path in ("sys/seal", "sys/mounts"):
            return self._sys(req, op, token, path)

        with self._lock:
            ns = self._namespace(ns_name)
            mount = self._match_mount(ns, path)
        if mount is None:
            self._authorize(token, path, op if op != "write" else "update")
            raise VaultError(404, f'no handler for route "{path}". '
                             "route entry not found.")
        rest = path[len(mount.path):]
        if mount.version == 1:
            return self._kv1(req, op, token, mount, path, rest)
        return self._kv2(req, op, token, mount, path, rest)

    def _operation(self, req):
        m = req.method
        if m == "GET":
            lv = req.qs("list")
            if lv is not None and lv != "":
                if lv.lower() in ("1", "t", "true"):
                    return "list"
                if lv.lower() not in ("0", "f", "false"):
                    raise VaultError(400)
            return "read"
        if m in ("POST", "PUT"):
            return "write"
        return {"DELETE": "delete", "LIST": "list", "PATCH": "patch"}.get(m) \
            or self._bad_method()

    @staticmethod
    def _bad_method():
        raise VaultError(405)

    # ------------------------------------------------------- namespaces

    @staticmethod
    def _ns_key(name):
        name = (name or "").strip().strip("/")
        return name + "/" if name else ""

    def _namespace(self, name, create=False):
        key = self._ns_key(name)
        ns = self._ns.get(key)
        if ns is None:
            if not (create or self.auto_namespaces):
                raise VaultError(404, f'no handler for route "{key}". '
                                 "route entry not found.")
            ns = self._ns[key] = {p: m.fresh_copy()
                                  for p, m in self._ns[""].items()}
        return ns

    def _path_namespace(self, ns_name, path):
        """A path may start with a (known) child namespace's name."""
        with self._lock:
            for key in sorted(self._ns, key=len, reverse=True):
                if not key:
                    continue
                full = ns_name + key
                if full in self._ns and path.startswith(key):
                    return full, path[len(key):]
        return ns_name, path

    @staticmethod
    def _match_mount(ns, path):
        best = None
        for mp, m in ns.items():
            if (path + "/").startswith(mp) and (best is None or
                                                len(mp) > len(best.path)):
                best = m
        return best

    # ---------------------------------------------------------- auth

    def _request_token(self, req):
        t = req.header("X-Vault-Token")
        if t:
            return t.strip()
        a = req.header("Authorization", "")
        if a[:7].lower() == "bearer ":
            return a[7:].strip()
        return None

    def _live_token(self, tid):
        t = self._tokens.get(tid) if tid else None
        if t is not None and t.expire_at is not None and \
                t.expire_at <= time.time():
            self._tokens.pop(tid, None)
            return None
        return t

    def _authenticate(self, req):
        with self._lock:
            t = self._live_token(self._request_token(req))
        if t is None:
            raise VaultError(403, PERMISSION_DENIED)
        return t

    def _caps(self, token, path):
        """The capabilities token's policies grant on path."""
        merged = {}
        with self._lock:
            for name in token.policies:
                p = self._policies.get(name)
                for pattern, caps in (p.rules.items() if p else ()):
                    merged.setdefault(pattern, set()).update(caps)
        best = None
        for pattern in merged:
            if _pattern_regex(pattern).match(path) and \
                    (best is None or _priority(pattern) > _priority(best)):
                best = pattern
        caps = merged.get(best, set())
        return set() if "deny" in caps else caps

    def _authorize(self, token, path, cap):
        if token.root:
            return
        if cap not in self._caps(token, path):
            raise VaultError(403, ACL_DENIED)

    def _has_mount_access(self, token, mount_path):
        if token.root:
            return True
        with self._lock:
            patterns = [(pat, caps) for name in token.policies
                        for pat, caps in (self._policies[name].rules.items()
                                          if name in self._policies else ())]
        for pat, caps in patterns:
            if not caps or caps == {"deny"}:
                continue
            lit = re.split(r"[+*]", pat, 1)[0]
            if lit.startswith(mount_path) or mount_path.startswith(lit):
                return True
        return False

    def _issue(self, policies, ttl, max_ttl, renewable, path, meta,
               display_name):
        tid = self.create_token(sorted({"default", *policies}), ttl,
                                renewable, max_ttl, path=path, meta=meta,
                                display_name=display_name)
        return self._tokens[tid]

    def _auth_block(self, t, lease=None):
        return Struct(
            client_token=t.id, accessor=t.accessor, policies=t.policies,
            token_policies=t.policies, metadata=t.meta,
            lease_duration=t.remaining() if lease is None else lease,
            renewable=t.renewable, entity_id=t.entity_id,
            token_type="service", orphan=True, mfa_requirement=None,
            num_uses=0)

    def _login_route(self, path):
        m = re.fullmatch(r"auth/(.+)/login", path)
        if not m:
            return None
        mount = m.group(1)
        with self._lock:
            if mount in self._approle:
                return lambda req: self._approle_login(req, mount)
            if mount in self._k8s:
                return lambda req: self._k8s_login(req, mount)
        return None

    def _body(self, req):
        try:
            body = req.json()
        except ValueError:
            raise VaultError(400, "error parsing JSON") from None
        if body is not None and not isinstance(body, dict):
            raise VaultError(400, "error parsing JSON")
        return body or {}

    def _approle_login(self, req, mount):
        if req.method not in ("POST", "PUT"):
            raise VaultError(405)
        body = self._body(req)
        role_id, secret_id = body.get("role_id"), body.get("secret_id")
        if not role_id:
            raise VaultError(400, "missing role_id")
        with self._lock:
            found = [(n, r) for n, r in self._approle[mount].items()
                     if r["role_id"] == role_id]
            if not found:
                raise VaultError(400, "invalid role or secret ID")
            name, role = found[0]
            if not secret_id:
                raise VaultError(400, "missing secret_id")
            sids = role["secret_ids"]
            if secret_id not in sids:
                raise VaultError(400, "invalid role or secret ID")
            if sids[secret_id] is not None:
                sids[secret_id] -= 1
                if sids[secret_id] <= 0:
                    del sids[secret_id]
            t = self._issue(role["policies"], role["ttl"], role["max_ttl"],
                            role["renewable"], f"auth/{mount}/login",
                            {"role_name": name}, f"{mount}")
        return self._ok(None, auth=self._auth_block(t, t.ttl),
                        mount_type="approle")

    def _k8s_login(self, req, mount):
        if req.method not in ("POST", "PUT"):
            raise VaultError(405)
        body = self._body(req)
        role_name, jwt = body.get("role"), body.get("jwt")
        if not role_name:
            raise VaultError(400, "missing role")
        if not jwt:
            raise VaultError(400, "missing jwt")
        with self._lock:
            role = self._k8s[mount].get(role_name)
            if role is None:
                raise VaultError(400, f'invalid role name "{role_name}"')
            if jwt not in role["jwts"]:
                raise VaultError(403, PERMISSION_DENIED)
            t = self._issue(role["policies"], role["ttl"], role["max_ttl"],
                            role["renewable"], f"auth/{mount}/login",
                            {"role": role_name,
                             "service_account_name": "default",
                             "service_account_namespace": "default",
                             "service_account_uid": str(uuid.uuid4()),
                             "service_account_secret_name": ""},
                            f"{mount}-default-default")
        return self._ok(None, auth=self._auth_block(t, t.ttl),
                        mount_type="kubernetes")

    def _lookup_data(self, t):
        return Struct(
            accessor=t.accessor, creation_time=int(t.created),
            creation_ttl=t.ttl, display_name=t.display_name,
            entity_id=t.entity_id,
            expire_time=None if t.expire_at is None else rfc3339(
                int(t.expire_at * 1e9)),
            explicit_max_ttl=t.max_ttl, id=t.id,
            issue_time=rfc3339(int(t.created * 1e9)), meta=t.meta,
            num_uses=0, orphan=True, path=t.path, period=None,
            policies=t.policies, renewable=t.renewable,
            ttl=t.remaining(), type="service")

    def _token_api(self, req, op, token, sub):
        if sub == "lookup-self" and op == "read":
            return self._ok(self._lookup_data(token), mount_type="token")
        if sub == "lookup" and op == "write":
            self._authorize(token, "auth/token/lookup", "update")
            with self._lock:
                t = self._live_token(self._body(req).get("token"))
            if t is None:
                raise VaultError(403, "bad token")
            return self._ok(self._lookup_data(t), mount_type="token")
        if sub == "renew-self" and op == "write":
            return self._renew(token, self._body(req).get("increment"))
        if sub == "revoke-self" and op == "write":
            self.revoke_token(token.id)
            return Response(204)
        if sub == "create" and op == "write":
            self._authorize(token, "auth/token/create", "update")
            b = self._body(req)
            try:
                ttl = parse_duration(b.get("ttl")) or 0
                max_ttl = parse_duration(b.get("explicit_max_ttl")) or 0
            except ValueError as e:
                raise VaultError(400, str(e)) from None
            pols = b.get("policies") or token.policies
            if not token.root and not set(pols) <= set(token.policies):
                raise VaultError(400, "child policies must be subset of "
                                 "parent")
            tid = self.create_token(pols, ttl, b.get("renewable", True),
                                    max_ttl, meta=b.get("meta"))
            t = self._tokens[tid]
            return self._ok(None, auth=self._auth_block(t, t.ttl),
                            mount_type="token")
        self._authorize(token, "auth/token/" + sub, "read")
        raise VaultError(405)

    def _renew(self, t, increment):
        try:
            inc = parse_duration(increment)
        except ValueError as e:
            raise VaultError(400, str(e)) from None
        with self._lock:
            if not t.renewable:
                raise VaultError(400, "lease is not renewable")
            now = time.time()
            want = inc if inc else t.ttl
            max_ttl = t.max_ttl or self.max_lease_ttl
            if t.max_ttl and self.max_lease_ttl:
                max_ttl = min(t.max_ttl, self.max_lease_ttl)
            left = max(0, int(t.created + max_ttl - now))
            lease = min(want, left)
            warnings = None
            if want > left:
                warnings = [f'TTL of "{want}s" exceeded the effective max_ttl'
                            f' of "{left}s"; TTL value is capped accordingly']
            t.expire_at = now + lease
            t.last_renewal = now
        return self._ok(None, auth=self._auth_block(t, lease),
                        warnings=warnings, mount_type="token")

    # ----------------------------------------------------------- sys

    def _sys_health(self, req, path):
        body = Struct(initialized=True, sealed=self.sealed,
                      standby=bool(self.standby_of),
                      performance_standby=False,
                      replication_performance_mode="disabled",
                      replication_dr_mode="disabled",
                      server_time_utc=int(time.time()),
                      version="1.15.6", cluster_name="vault-emulator",
                      cluster_id="00000000-0000-0000-0000-000000000000")
        if path == "sys/seal-status":
            return Response.json(200, Struct(
                type="shamir", initialized=True, sealed=self.sealed, t=1,
                n=1, progress=0, nonce="", version="1.15.6",
                build_date="2024-02-28T17:07:34Z", migration=False,
                recovery_seal=False, storage_type="inmem"))
        status = 503 if self.sealed else 429 if self.standby_of else 200
        return Response.json(status, body)

    def _sys(self, req, op, token, path):
        if path == "sys/seal" and op == "write":
            self._authorize(token, path, "update")
            self.seal()
            return Response(204)
        if path == "sys/mounts" and op == "read":
            self._authorize(token, path, "read")
            ns = self._namespace(self._ns_key(req.header(
                "X-Vault-Namespace", "")))
            data = {p: m.info() for p, m in ns.items()}
            return self._ok(data, mount_type="system")
        raise VaultError(405)

    def _ui_mounts(self, req, ns_name, path):
        if self.ui_mounts == "404":
            raise VaultError(404)
        sub = path[len("sys/internal/ui/mounts/"):] if "/mounts/" in path \
            else ""
        if not sub:
            raise VaultError(400, "path not set")
        sub = sub.lstrip("/")
        sub = sub if sub.endswith("/") else sub + "/"
        denied = VaultError(403, "preflight capability check returned 403, "
                            "please ensure client's policies grant access "
                            f'to path "{sub}"')
        with self._lock:
            token = self._live_token(self._request_token(req))
            mount = self._match_mount(self._namespace(ns_name), sub)
        if mount is None:
            raise denied
        if token is None:
            raise VaultError(403, PERMISSION_DENIED)
        if not self._has_mount_access(token, mount.path):
            raise denied
        data = mount.info()
        data["path"] = mount.path
        return self._ok(data, mount_type="system")

    # ----------------------------------------------------------- KV v1

    def _kv1(self, req, op, token, m, full, key):
        if op == "list":
            self._authorize(token, full, "list")
            with self._lock:
                keys = self._list(m.v1.keys(), key)
            if not keys:
                raise VaultError(404)
            return self._ok({"keys": keys}, mount_type="kv")
        if op == "read":
            self._authorize(token, full, "read")
            with self._lock:
                data = copy.deepcopy(m.v1.get(key))
            if data is None:
                raise VaultError(404)
            lease = DEFAULT_LEASE
            if "ttl" in data:
                try:
                    lease = parse_duration(data["ttl"]) or DEFAULT_LEASE
                except ValueError:
                    pass
            return self._ok(data, lease=lease, mount_type="kv")
        if op == "delete":
            self._authorize(token, full, "delete")
            with self._lock:
                m.v1.pop(key, None)
            return Response(204)
        if op == "write":
            with self._lock:
                exists = key in m.v1
            self._authorize(token, full, "update" if exists else "create")
            body = self._body(req)
            if not body:
                raise VaultError(400, "missing data fields")
            if not key or key.endswith("/"):
                raise VaultError(400, "missing path" if not key else
                                 "cannot write to a path ending in '/'")
            with self._lock:
                m.v1[key] = body
            return Response(204)
        self._authorize(token, full, op)
        raise VaultError(405, UNSUPPORTED)

    @staticmethod
    def _list(keys, prefix):
        out = set()
        for k in keys:
            if k.startswith(prefix) and k != prefix:
                rest = k[len(prefix):]
                i = rest.find("/")
                out.add(rest if i < 0 else rest[:i + 1])
        return sorted(out)

    # ----------------------------------------------------------- KV v2

    def _invalid(self, op, rel):
        if rel in ("metadata", "data", "delete", "undelete", "destroy"):
            w = ("Non-listing operations on the root of a K/V v2 mount are "
                 "not supported.")
        else:
            sub = {"write": "put", "patch": "patch", "read": "get",
                   "list": "list", "delete": "delete"}[op]
            w = ("Invalid path for a versioned K/V secrets engine. See the "
                 "API docs for the appropriate API endpoints to use. If "
                 f"using the Vault CLI, use 'vault kv {sub}' for this "
                 "operation.")
        raise VaultError(404, response=self._raw404(None, [w]))

    def _kv2(self, req, op, token, m, full, rel):
        head, _, key = rel.partition("/")
        if rel == "config":
            return self._kv2_config(req, op, token, m, full)
        if head == "data" and _ and key and not key.endswith("/") and \
                op != "list":
            return self._kv2_data(req, op, token, m, full, key)
        if head == "metadata" and _:
            return self._kv2_metadata(req, op, token, m, full, key)
        if head in ("delete", "undelete", "destroy") and _ and key and \
                op == "write":
            return self._kv2_versions(req, head, token, m, full, key)
        if head in ("delete", "undelete", "destroy") and _ and key:
            self._authorize(token, full, op)
            raise VaultError(405, UNSUPPORTED)
        self._authorize(token, full, "update" if op == "write" else op)
        self._invalid(op, rel)

    def _patch_body(self, req):
        ctype = req.header("Content-Type", "").split(";")[0].strip().lower()
        if not ctype:
            raise VaultError(400, "mime: no media type")
        if ctype != "application/merge-patch+json":
            raise VaultError(415, "PATCH requires Content-Type of "
                             "application/merge-patch+json, provided "
                             f"{ctype}")
        return self._body(req)

    def _check_cas(self, body, m, s):
        opts = body.get("options")
        current = s.current if s else 0
        if isinstance(opts, dict) and "cas" in opts:
            raw = opts["cas"]
            try:
                if isinstance(raw, str):
                    cas = int(raw.strip()) if raw.strip() else 0
                elif raw is None:
                    cas = 0
                else:
                    cas = int(raw)
            except (TypeError, ValueError):
                raise VaultError(400, "error parsing check-and-set "
                                 "parameter") from None
            if cas != current:
                raise VaultError(400, "check-and-set parameter did not "
                                 "match the current version")
        elif m.cas_required or (s is not None and s.cas_required):
            raise VaultError(400, "check-and-set parameter required for "
                             "this call")

    def _write_resp(self, s, v):
        return self._ok(Struct(created_time=rfc3339(v.created),
                               custom_metadata=s.custom_metadata,
                               deletion_time=rfc3339(v.deletion),
                               destroyed=False, version=s.current),
                        mount_type="kv")

    def _kv2_data(self, req, op, token, m, full, key):
        if op == "read":
            self._authorize(token, full, "read")
            try:
                want = int(req.qs("version") or 0)
            except ValueError:
                raise VaultError(400, "error converting input "
                                 f"{req.qs('version')} for field "
                                 '"version"') from None
            with self._lock:
                s = m.v2.get(key)
                if s is None:
                    raise VaultError(404)
                n = want if want > 0 else s.current
                v = s.versions.get(n)
                if v is None:
                    raise VaultError(404)
                meta = Struct(created_time=rfc3339(v.created),
                              custom_metadata=s.custom_metadata,
                              deletion_time=rfc3339(v.deletion),
                              destroyed=v.destroyed, version=n)
                if v.destroyed or v.deleted(_now_ns()):
                    raise VaultError(404, response=self._raw404(
                        Struct(data=None, metadata=meta)))
                return self._ok(Struct(data=copy.deepcopy(v.data),
                                       metadata=meta), mount_type="kv")
        if op == "write":
            with self._lock:
                exists = key in m.v2
            self._authorize(token, full, "update" if exists else "create")
            body = self._body(req)
            if "data" not in body:
                raise VaultError(400, "no data provided")
            if not isinstance(body["data"], dict):
                raise VaultError(400, "error converting input for field "
                                 '"data": expected a JSON object')
            with self._lock:
                s = m.v2.get(key)
                self._check_cas(body, m, s)
                if s is None:
                    s = m.v2[key] = Secret(_now_ns())
                v = s.add(body["data"], _now_ns(), m)
                return self._write_resp(s, v)
        if op == "patch":
            self._authorize(token, full, "patch")
            body = self._patch_body(req)
            if "data" not in body:
                raise VaultError(400, "no data provided")
            with self._lock:
                s = m.v2.get(key)
                if s is None:
                    raise VaultError(404, response=self._raw404())
                self._check_cas(body, m, s)
                v = s.versions.get(s.current)
                if v is None:
                    raise VaultError(404, response=self._raw404())
                if v.destroyed or v.deleted(_now_ns()):
                    raise VaultError(404, response=self._raw404(Struct(
                        created_time=rfc3339(v.created),
                        custom_metadata=s.custom_metadata,
                        deletion_time=rfc3339(v.deletion),
                        destroyed=v.destroyed, version=s.current)))
                patched = merge_patch(v.data, body["data"])
                nv = s.add(patched, _now_ns(), m)
                return self._write_resp(s, nv)
        if op == "delete":
            self._authorize(token, full, "delete")
            with self._lock:
                s = m.v2.get(key)
                v = s.versions.get(s.current) if s else None
                now = _now_ns()
                if v is not None and not v.destroyed and not v.deleted(now):
                    v.deletion = now
            return Response(204)
        raise VaultError(405)

    def _metadata_data(self, s):
        return Struct(
            cas_required=s.cas_required, created_time=rfc3339(s.created),
            current_version=s.current, custom_metadata=s.custom_metadata,
            delete_version_after=f"{s.delete_version_after}s"
            if s.delete_version_after else "0s",
            max_versions=s.max_versions, oldest_version=s.oldest,
            updated_time=rfc3339(s.updated),
            versions={str(n): s.version_meta(n) for n in s.versions})

    def _kv2_metadata(self, req, op, token, m, full, key):
        if op == "list":
            self._authorize(token, full, "list")
            with self._lock:
                keys = self._list(m.v2.keys(), key)
            if not keys:
                raise VaultError(404)
            return self._ok({"keys": keys}, mount_type="kv")
        if op == "read":
            self._authorize(token, full, "read")
            with self._lock:
                s = m.v2.get(key)
                if s is None:
                    raise VaultError(404)
                return self._ok(self._metadata_data(s), mount_type="kv")
        if op == "delete":
            self._authorize(token, full, "delete")
            with self._lock:
                m.v2.pop(key, None)
            return Response(204)
        if op in ("write", "patch"):
            with self._lock:
                exists = key in m.v2
            cap = "patch" if op == "patch" else \
                "update" if exists else "create"
            self._authorize(token, full, cap)
            body = self._patch_body(req) if op == "patch" else self._body(req)
            if not key:
                raise VaultError(400, "missing path")
            with self._lock:
                s = m.v2.get(key)
                if s is None:
                    if op == "patch":
                        raise VaultError(404, response=self._raw404())
                    s = Secret(_now_ns())
                try:
                    self._apply_metadata(s, body, op == "patch")
                except (TypeError, ValueError) as e:
                    raise VaultError(400, str(e)) from None
                m.v2[key] = s
            return Response(204)
        raise VaultError(405)

    @staticmethod
    def _apply_metadata(s, body, patch):
        if "max_versions" in body:
            s.max_versions = int(body["max_versions"])
        if "cas_required" in body:
            s.cas_required = bool(body["cas_required"])
        if "delete_version_after" in body:
            s.delete_version_after = parse_duration(
                body["delete_version_after"]) or 0
        if "custom_metadata" in body:
            cm = body["custom_metadata"]
            if patch:
                cm = merge_patch(s.custom_metadata or {}, cm)
            s.custom_metadata = {k: str(v) for k, v in (cm or {}).items()}

    def _kv2_versions(self, req, head, token, m, full, key):
        self._authorize(token, full, "update")
        body = self._body(req)
        versions = body.get("versions")
        if not versions:
            raise VaultError(400, "no version number provided")
        try:
            versions = [int(v) for v in versions]
        except (TypeError, ValueError):
            raise VaultError(400, "error converting input for field "
                             '"versions"') from None
        {"delete": self.delete, "undelete": self.undelete,
         "destroy": self.destroy}[head](m.path, key, versions,
                                        namespace=self._ns_of(m))
        return Response(204)

    def _ns_of(self, mount):
        with self._lock:
            for name, ns in self._ns.items():
                if mount in ns.values():
                    return name
        return ""

    def _kv2_config(self, req, op, token, m, full):
        if op == "read":
            self._authorize(token, full, "read")
            return self._ok(Struct(cas_required=m.cas_required,
                                   delete_version_after="0s",
                                   max_versions=m.max_versions),
                            mount_type="kv")
        if op == "write":
            self._authorize(token, full, "update")
            b = self._body(req)
            with self._lock:
                if "cas_required" in b:
                    m.cas_required = bool(b["cas_required"])
                if "max_versions" in b:
                    m.max_versions = int(b["max_versions"])
            return Response(204)
        raise VaultError(405)


# ------------------------------------------------------------------- CLI

def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="Vault emulator for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8200)
    ap.add_argument("--root-token", default="root")
    ap.add_argument("--mount", action="append", default=[],
                    metavar="PATH=VERSION",
                    help="KV mount, e.g. kv1/=1 (default: secret/=2)")
    ap.add_argument("--tls", metavar="DIR",
                    help="serve https with a test CA written to DIR")
    ap.add_argument("--require-request-header", action="store_true")
    ap.add_argument("--approle", action="append", default=[],
                    metavar="ROLE:ROLE_ID:SECRET_ID[:POLICY,...]")
    ap.add_argument("--k8s", action="append", default=[],
                    metavar="ROLE:JWT[:POLICY,...]")
    ap.add_argument("--policy", action="append", default=[],
                    metavar="NAME=FILE.hcl")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    mounts = {}
    for spec in a.mount or ["secret/=2"]:
        p, _, v = spec.partition("=")
        mounts[p] = int(v or 2)
    emu = VaultEmulator(mounts, root_token=a.root_token, host=a.host,
                        port=a.port, tls=bool(a.tls), cert_dir=a.tls,
                        require_request_header=a.require_request_header,
                        verbose=a.verbose)
    for spec in a.policy:
        name, _, f = spec.partition("=")
        with open(f) as fh:
            emu.add_policy(name, fh.read())
    for spec in a.approle:
        role, role_id, secret_id, *pol = spec.split(":")
        emu.add_approle(role, role_id, secret_id,
                        pol[0].split(",") if pol else ())
    for spec in a.k8s:
        role, jwt, *pol = spec.split(":")
        emu.add_k8s_role(role, jwt, pol[0].split(",") if pol else ())
    emu.start()
    print(f"vault emulator on {emu.url}  root token: {emu.root_token}  "
          f"mounts: {', '.join(f'{p} (v{v})' for p, v in mounts.items())}",
          flush=True)
    return httpbase.serve_until_signal(emu)


if __name__ == "__main__":
    sys.exit(main())
