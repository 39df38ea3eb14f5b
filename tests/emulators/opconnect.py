#!/usr/bin/python3
"""opconnect.py - a protocol-faithful 1Password Connect server emulator for
the tests (the REST API a Connect server serves in front of 1Password
vaults; docs/openapi/spec.yaml of github.com/1Password/connect, 1.7/1.8).

One server (httpbase.EmulatorServer), plain http by default like most
Connect deployments (tls=True: https with the throw-away CA):

    GET    /v1/vaults[/]                ?filter=title eq "X" (or name eq)
    GET    /v1/vaults/{v}
    GET    /v1/vaults/{v}/items[/]      ?filter=title eq "X" | title co "X"
    POST   /v1/vaults/{v}/items[/]      create (ids, generated values)
    GET    /v1/vaults/{v}/items/{i}     the full item
    PUT    /v1/vaults/{v}/items/{i}     full replace, version + 1
    PATCH  /v1/vaults/{v}/items/{i}     RFC 6902 add/replace/remove
    DELETE /v1/vaults/{v}/items/{i}     204
    GET    /v1/vaults/{v}/items/{i}/files[/]          ?inline_files=true
    GET    /v1/vaults/{v}/items/{i}/files/{f}[/]      ?inline_files=true
    GET    /v1/vaults/{v}/items/{i}/files/{f}/content the exact bytes
    GET    /heartbeat, GET /health      no token needed

Every /v1 call needs `Authorization: Bearer <token>` of a token made with
add_token() (else 401 {"status":401,"message":"Invalid bearer token"}); a
token names the vaults it may read and/or write (else 403). Errors are
{"status":N,"message":"..."}; every answer carries the
1Password-Connect-Version header (connect-sdk-go refuses the file calls
without it).

    emu = OpConnectEmulator().start()
    v = emu.add_vault("Prod")
    i = emu.add_item(v, "db", fields=[{"label": "password", "value": "pw",
                     "type": "CONCEALED", "purpose": "PASSWORD"}])
    tok = emu.add_token(vaults=[v])
    curl -H "Authorization: Bearer $tok" $URL/v1/vaults/$v/items/$i
    emu.stop()

Run by hand:  /usr/bin/python3 tests/emulators/opconnect.py --port 0 \\
                  [--token T] [--vault NAME]... \\
                  [--item 'VAULT/TITLE:label=value,label2=value2']... [-v]

(Not onepassword.py: tests/emulators is on sys.path, and a module named
onepassword would shadow the import name of 1Password's own Python SDK.)

Choices where Connect is not documented are listed in the class docstring
and in tests/emulators/README.md.
"""

import base64
import copy
import datetime
import json
import math
import os
import re
import secrets as _random
import string
import sys
import threading
import urllib.parse

import httpbase  # noqa: E402
from httpbase import EmulatorServer, Response, Struct

CONNECT_VERSION = "1.7.3"
VERSION_HEADER = "1Password-Connect-Version"
ID_OK = re.compile(r"[a-z0-9]{26}\Z")
CATEGORIES = ("LOGIN", "PASSWORD", "API_CREDENTIAL", "SERVER", "DATABASE",
              "CREDIT_CARD", "MEMBERSHIP", "PASSPORT", "SOFTWARE_LICENSE",
              "OUTDOOR_LICENSE", "SECURE_NOTE", "WIRELESS_ROUTER",
              "BANK_ACCOUNT", "DRIVER_LICENSE", "IDENTITY", "REWARD_PROGRAM",
              "DOCUMENT", "EMAIL_ACCOUNT", "SOCIAL_SECURITY_NUMBER",
              "MEDICAL_RECORD", "SSH_KEY", "CUSTOM")
FIELD_TYPES = ("STRING", "EMAIL", "CONCEALED", "URL", "TOTP", "OTP", "DATE",
               "MONTH_YEAR", "MENU", "PHONE", "ADDRESS", "REFERENCE",
               "SSHKEY", "CREDIT_CARD_NUMBER", "CREDIT_CARD_TYPE", "GENDER",
               "FILE", "UNKNOWN")
PURPOSES = ("", "USERNAME", "PASSWORD", "NOTES")
PURPOSE_IDS = {"USERNAME": "username", "PASSWORD": "password",
               "NOTES": "notesPlain"}
CHARSETS = {"LETTERS": string.ascii_letters, "DIGITS": string.digits,
            "SYMBOLS": "!@#$%^&*()_+-=[]{}|;:,.<>?/~"}
READ_ONLY = ("id", "vault", "version", "createdAt", "updatedAt",
             "lastEditedBy", "files")
INVALID_TOKEN = "Invalid bearer token"
NO_ACCESS = "Authorization: token does not have access to vault"
TOO_LARGE = ("File is too large to inline in request. Use the /v1/vaults/"
             "{vaultUUID}/items/{itemUUID}/files/{fileUUID}/content endpoint "
             "instead.")
FILTER = re.compile(r'\s*(\w+)\s+(eq|co|sw)\s+"((?:[^"\\]|\\.)*)"\s*\Z')


def new_id():
    """26 characters of lowercase base32 (16 random bytes), like the ids
    1Password gives vaults, items, fields and files."""
    return base64.b32encode(os.urandom(16)).decode().lower().rstrip("=")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _rfc3339(t):
    """As Go's time.Time marshals: RFC 3339 with nanoseconds, trailing
    zeros of the fraction dropped, Z for UTC."""
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class Vault:
    def __init__(self, vid, name, description, vtype):
        self.id, self.name, self.description = vid, name, description
        self.type = vtype
        self.created = self.updated = _now()
        self.attribute_version = 1
        self.content_version = 1
        self.items = {}         # id -> Item, in creation order

    def json(self):
        out = Struct(id=self.id, name=self.name)
        if self.description:
            out["description"] = self.description
        out.update(attributeVersion=self.attribute_version,
                   contentVersion=self.content_version,
                   items=len(self.items), type=self.type,
                   createdAt=_rfc3339(self.created),
                   updatedAt=_rfc3339(self.updated))
        return out


class File:
    def __init__(self, fid, name, content, section=None):
        self.id, self.name, self.content = fid, name, bytes(content)
        self.section = section          # section id or None


class Item:
    """One item: doc holds the editable attributes as the API writes them
    (title, category, urls, favorite, tags, sections, fields); files and
    the metadata live beside it."""

    def __init__(self, iid, vault_id, doc):
        self.id, self.vault_id = iid, vault_id
        self.doc = doc
        self.files = []                 # [File]
        self.version = 1
        self.created = self.updated = _now()
        self.last_edited_by = "OPCONNECTEMULATOR00000000A"

    def summary(self):
        d = self.doc
        out = Struct(id=self.id, title=d.get("title", ""))
        if d.get("tags"):
            out["tags"] = list(d["tags"])
        if d.get("urls"):
            out["urls"] = copy.deepcopy(d["urls"])
        if d.get("favorite"):
            out["favorite"] = True
        out.update(version=self.version, vault=Struct(id=self.vault_id),
                   category=d["category"], lastEditedBy=self.last_edited_by,
                   createdAt=_rfc3339(self.created),
                   updatedAt=_rfc3339(self.updated))
        return out

    def file_json(self, f, vault_id, inline=False):
        out = Struct(id=f.id, name=f.name, size=len(f.content),
                     content_path=f"/v1/vaults/{vault_id}/items/{self.id}"
                                  f"/files/{f.id}/content")
        if f.section:
            out["section"] = Struct(id=f.section)
        if inline:
            out["content"] = base64.b64encode(f.content).decode()
        return out

    def full(self):
        out = self.summary()
        if self.doc.get("sections"):
            out["sections"] = [Struct((k, s[k]) for k in ("id", "label")
                                      if k in s)
                               for s in self.doc["sections"]]
        out["fields"] = [_field_json(f) for f in self.doc.get("fields", [])]
        if self.files:
            out["files"] = [self.file_json(f, self.vault_id)
                            for f in self.files]
        return out


def _field_json(f):
    out = Struct(id=f["id"], type=f.get("type", "STRING"))
    if f.get("purpose"):
        out["purpose"] = f["purpose"]
    out["label"] = f.get("label", "")
    if f.get("value") is not None:
        out["value"] = f["value"]
    if f.get("section"):
        out["section"] = Struct(id=f["section"]["id"])
    if f.get("entropy"):
        out["entropy"] = f["entropy"]
    return out


class Token:
    def __init__(self, value, access, name):
        self.value, self.name = value, name
        self.access = access            # None: every vault rw; {id: "r"|"w"|"rw"}
        self.revoked = False

    def may(self, vault_id, mode):
        if self.access is None:
            return True
        return mode in self.access.get(vault_id, "")


def _new_token():
    """Shaped like a Connect token (a JWT), long enough for leak checks."""
    def part(n):
        return base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip("=")
    head = base64.urlsafe_b64encode(
        b'{"alg":"ES256","kid":"opconnect-emulator","typ":"JWT"}'
    ).decode().rstrip("=")
    return f"{head}.{part(96)}.{part(64)}"


class OpConnectEmulator(EmulatorServer):
    """1Password Connect.

    Knobs (attributes, settable at any time):
      strict_versions     False (default): a PUT's "version" is ignored, as
                          far as the public API tells (no 409 is documented
                          for PUT, and the SDKs send the version they read
                          without handling a conflict); True: a PUT or a
                          PATCH replacing "/" whose version is not the
                          current one gets 409 {"status":409,...}
      filter_case_insensitive  False: `title eq "X"` matches exactly;
                          True: case-insensitively (SCIM's caseExact=false)
      inline_limit        bytes up to which ?inline_files=true inlines a
                          file (OP_MAX_INLINE_FILE_SIZE_KB, 100 KiB); more
                          is 413
      connect_version     the 1Password-Connect-Version header (None: none,
                          like Connect before 1.3)
      on_secret           called with every field value, file content and
                          token it is given or hands out (leak checking)

    Every logged Request gets .op ("ListVaults", "GetVault", "ListItems",
    "CreateItem", "GetItem", "UpdateItem", "PatchItem", "DeleteItem",
    "ListFiles", "GetFile", "GetFileContent", "heartbeat", "health",
    None for unknown routes), .token (the bearer it carried) and .error
    ({"status","message"}) when answered with one.
    """

    name = "opconnect"

    def __init__(self, *, tls=False, on_secret=None, **server_kw):
        super().__init__(tls=tls, **server_kw)
        self.on_secret = on_secret
        self.strict_versions = False
        self.filter_case_insensitive = False
        self.inline_limit = 100 * 1024
        self.connect_version = CONNECT_VERSION
        self._lock = threading.RLock()
        self._vaults = {}               # id -> Vault
        self._tokens = {}               # value -> Token

    # ------------------------------------------------------ control API

    def _secret(self, value):
        if self.on_secret and value:
            self.on_secret(value)

    def add_vault(self, name, description="", type="USER_CREATED", id=None):
        """A vault; returns its id."""
        vid = id or new_id()
        with self._lock:
            self._vaults[vid] = Vault(vid, name, description, type)
        return vid

    def vault_id(self, vault):
        """The id of vault (an id or a name; a name must be unique)."""
        with self._lock:
            if vault in self._vaults:
                return vault
            found = [v.id for v in self._vaults.values() if v.name == vault]
        if len(found) != 1:
            raise KeyError(f"{len(found)} vaults named {vault!r}")
        return found[0]

    def vaults(self):
        with self._lock:
            return {v.id: v.name for v in self._vaults.values()}

    def _vault(self, vault):
        return self._vaults[self.vault_id(vault)]

    def add_item(self, vault, title, fields=(), sections=(), files=(),
                 category="LOGIN", tags=(), urls=(), id=None):
        """An item in vault (id or name); returns its id. Titles need not
        be unique.

        sections: labels, or {"id", "label"} dicts (ids made up if absent).
        fields: {"label", "value", "type" (default STRING), "purpose",
          "section" (a section's label or id), "id"} dicts, or (label,
          value) pairs; ids made up as Connect does ("username",
          "password", "notesPlain" for those purposes).
        files: (name, bytes) pairs or {"name", "content", "section"}.
        """
        secs = []
        for s in sections:
            s = {"label": s} if isinstance(s, str) else dict(s)
            s.setdefault("id", new_id())
            secs.append(s)
        flds = []
        for f in fields:
            if not isinstance(f, dict):
                f = {"label": f[0], "value": f[1]}
            f = dict(f)
            sec = f.pop("section", None)
            if isinstance(sec, dict):
                sec = sec.get("id")
            if sec is not None:
                match = [s["id"] for s in secs if sec in (s["id"], s.get(
                    "label"))]
                if not match:
                    raise KeyError(f"no section {sec!r}")
                f["section"] = {"id": match[0]}
            f.setdefault("type", "STRING")
            flds.append(f)
        doc = {"title": title, "category": category, "tags": list(tags),
               "urls": [dict(u) if isinstance(u, dict) else {"href": u}
                        for u in urls],
               "sections": secs, "fields": flds}
        with self._lock:
            v = self._vault(vault)
            item = Item(id or new_id(), v.id, self._validate(doc, None))
            for spec in files:
                if isinstance(spec, dict):
                    name, content = spec["name"], spec["content"]
                    sec = spec.get("section")
                else:
                    (name, content), sec = spec, None
                if isinstance(content, str):
                    content = content.encode()
                if sec is not None:
                    sec = next(s["id"] for s in secs
                               if sec in (s["id"], s.get("label")))
                item.files.append(File(new_id(), name, content, sec))
                self._secret(content)
            v.items[item.id] = item
            self._touch(v)
        return item.id

    def item(self, vault, item_id):
        """The item as GET /v1/vaults/{v}/items/{i} answers it (a dict)."""
        with self._lock:
            return json.loads(json.dumps(
                self._vault(vault).items[item_id].full()))

    def items(self, vault, title=None):
        """Ids of the items in vault (of those titled title)."""
        with self._lock:
            return [i.id for i in self._vault(vault).items.values()
                    if title is None or i.doc.get("title") == title]

    def field(self, vault, item_id, label, section=None):
        """The value of the field labelled (or with id) label."""
        return self._find_field(vault, item_id, label, section).get("value")

    def _find_field(self, vault, item_id, label, section=None):
        with self._lock:
            item = self._vault(vault).items[item_id]
            sec_ids = None
            if section is not None:
                sec_ids = {s["id"] for s in item.doc.get("sections", [])
                           if section in (s["id"], s.get("label"))}
            for f in item.doc.get("fields", []):
                if label not in (f.get("id"), f.get("label")):
                    continue
                if sec_ids is not None and \
                        (f.get("section") or {}).get("id") not in sec_ids:
                    continue
                return f
        raise KeyError(label)

    def set_field(self, vault, item_id, label, value, section=None):
        """Change a field behind the clients' backs (version + 1)."""
        with self._lock:
            self._find_field(vault, item_id, label, section)["value"] = value
            self._bump(self._vault(vault), self._vault(vault).items[item_id])
        self._secret(value)

    def set_title(self, vault, item_id, title):
        with self._lock:
            v = self._vault(vault)
            v.items[item_id].doc["title"] = title
            self._bump(v, v.items[item_id])

    def version(self, vault, item_id):
        with self._lock:
            return self._vault(vault).items[item_id].version

    def file_content(self, vault, item_id, file_id):
        with self._lock:
            item = self._vault(vault).items[item_id]
            return next(f.content for f in item.files if f.id == file_id)

    def delete_item(self, vault, item_id):
        with self._lock:
            v = self._vault(vault)
            del v.items[item_id]
            self._touch(v)

    def delete_vault(self, vault):
        with self._lock:
            del self._vaults[self.vault_id(vault)]

    def add_token(self, vaults=None, token=None, name="secretfs-test"):
        """A token the server accepts; returns its value. vaults: None
        (every vault, read and write, also vaults added later), a list of
        vault ids/names (read and write), or {vault: "r" | "w" | "rw"}."""
        value = token or _new_token()
        access = None
        if vaults is not None:
            if not isinstance(vaults, dict):
                vaults = {v: "rw" for v in vaults}
            access = {self.vault_id(v): mode for v, mode in vaults.items()}
        with self._lock:
            self._tokens[value] = Token(value, access, name)
        self._secret(value)
        return value

    def revoke(self, token):
        """The token is refused from now on (401)."""
        with self._lock:
            self._tokens[token].revoked = True

    def grant(self, token, vault, mode="rw"):
        with self._lock:
            tok = self._tokens[token]
            if tok.access is not None:
                tok.access[self.vault_id(vault)] = mode

    def calls(self, op=None):
        """Requests of op ("GetItem", "ListItems"...), all if None."""
        return [r for r in self.requests
                if op is None or getattr(r, "op", None) == op]

    def count_op(self, op):
        return len(self.calls(op))

    def ops(self):
        return [getattr(r, "op", None) for r in self.requests]

    # --------------------------------------------------- fault plumbing

    def fault_path(self, req):
        req.op = self._route(req)[0]    # also for requests a fault answers
        scheme, _, value = (req.header("Authorization") or "").partition(" ")
        req.token = value.strip() or None
        req.error = None
        return req.path

    def error_response(self, status, message=None):
        return self._error(ApiError(status, message or {
            429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}.get(status, f"HTTP {status}")))

    def garbage_body(self, kind, req):
        presets = {
            "truncated": b'{"id":"' + new_id().encode() + b'","title":"tr',
            "no-fields": httpbase.go_json({"id": new_id(), "title": "x"}),
            "wrong-types": httpbase.go_json({"id": 7, "fields": "none",
                                             "version": "two"}),
        }
        if kind in presets:
            return presets[kind]
        return super().garbage_body(kind, req)

    def huge_body(self, size, req):
        return httpbase.go_json([{"id": new_id(), "title": "A" * size}])

    def _headers(self):
        return [(VERSION_HEADER, self.connect_version)] \
            if self.connect_version else []

    def _json(self, status, obj):
        return Response.json(status, obj, self._headers())

    def _error(self, err, req=None):
        if req is not None:
            req.error = {"status": err.status, "message": err.message}
        return self._json(err.status, Struct(status=err.status,
                                             message=err.message))

    # ------------------------------------------------------------ routes

    ROUTES = [
        ("GET", ("vaults",), "ListVaults"),
        ("GET", ("vaults", "V"), "GetVault"),
        ("GET", ("vaults", "V", "items"), "ListItems"),
        ("POST", ("vaults", "V", "items"), "CreateItem"),
        ("GET", ("vaults", "V", "items", "I"), "GetItem"),
        ("PUT", ("vaults", "V", "items", "I"), "UpdateItem"),
        ("PATCH", ("vaults", "V", "items", "I"), "PatchItem"),
        ("DELETE", ("vaults", "V", "items", "I"), "DeleteItem"),
        ("GET", ("vaults", "V", "items", "I", "files"), "ListFiles"),
        ("GET", ("vaults", "V", "items", "I", "files", "F"), "GetFile"),
        ("GET", ("vaults", "V", "items", "I", "files", "F", "content"),
         "GetFileContent"),
    ]

    def _route(self, req):
        """(op, {"V":..,"I":..,"F":..}) or (None, None); op without a
        match for the method: ("405", None)."""
        if req.path in ("/heartbeat", "/health"):
            return req.path[1:], {}
        parts = req.path.split("/")
        if parts[:2] != ["", "v1"]:
            return None, None
        parts = parts[2:]
        if parts and parts[-1] == "":
            parts = parts[:-1]          # the SDKs add trailing slashes
        wrong_method = False
        for method, pattern, op in self.ROUTES:
            if len(pattern) != len(parts):
                continue
            args = {}
            for want, got in zip(pattern, parts):
                if want in "VIF":
                    if not got:
                        break
                    args[want] = got
                elif want != got:
                    break
            else:
                if method == req.method:
                    return op, args
                wrong_method = True
        return ("405" if wrong_method else None), None

    def handle(self, req):
        op, args = self._route(req)
        if op is None:
            return Response(404, b"404 page not found\n",
                            [("Content-Type", "text/plain; charset=utf-8")]
                            + self._headers())
        if op == "405":
            return Response(405, b"Method Not Allowed\n",
                            [("Content-Type", "text/plain; charset=utf-8")]
                            + self._headers())
        if op == "heartbeat":
            return Response(200, b".", [("Content-Type", "text/plain")]
                            + self._headers())
        if op == "health":
            return self._json(200, Struct(
                name="1Password Connect API", version=CONNECT_VERSION,
                dependencies=[
                    Struct(service="sync", status="ACTIVE"),
                    Struct(service="sqlite", status="ACTIVE",
                           message="Connected to./1password.sqlite")]))
        try:
            tok = self._authenticate(req)
            return getattr(self, "_op_" + op)(req, tok, **args)
        except ApiError as e:
            return self._error(e, req)

    # --------------------------------------------------- authentication

    def _authenticate(self, req):
        auth = req.header("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        with self._lock:
            tok = self._tokens.get(value) if scheme.lower() == "bearer" \
                else None
        if tok is None or tok.revoked:
            raise ApiError(401, INVALID_TOKEN)
        return tok

    def _check_id(self, value, what):
        if not ID_OK.match(value):
            raise ApiError(400, f"Invalid {what} UUID")

    def _vault_for(self, tok, vid, mode="r"):
        self._check_id(vid, "Vault")
        if not tok.may(vid, mode):
            raise ApiError(403, NO_ACCESS)
        v = self._vaults.get(vid)
        if v is None:
            raise ApiError(404, f"vault {vid} not found")
        return v

    def _item_for(self, v, iid):
        self._check_id(iid, "Item")
        item = v.items.get(iid)
        if item is None:
            raise ApiError(404, f"item {iid} not found")
        return item

    # ----------------------------------------------------------- filter

    def _filter(self, req, attrs):
        """A predicate on a title/name from ?filter= (None: no filter)."""
        raw = req.qs("filter")
        if raw is None or raw == "":
            return None
        m = FILTER.match(raw)
        if not m or m.group(1) not in attrs:
            raise ApiError(400, f"Invalid filter: {raw}")
        _, op, lit = m.groups()
        try:
            lit = json.loads(f'"{lit}"')
        except ValueError:
            raise ApiError(400, f"Invalid filter: {raw}") from None
        fold = (lambda s: s.casefold()) if self.filter_case_insensitive \
            else (lambda s: s)
        lit = fold(lit)
        if op == "eq":
            return lambda s: fold(s) == lit
        if op == "co":
            return lambda s: lit in fold(s)
        return lambda s: fold(s).startswith(lit)

    # ------------------------------------------------------------ vaults

    def _op_ListVaults(self, req, tok):
        pred = self._filter(req, ("title", "name"))
        with self._lock:
            out = [v.json() for v in self._vaults.values()
                   if tok.may(v.id, "r") or tok.may(v.id, "w")
                   if pred is None or pred(v.name)]
        return self._json(200, out)

    def _op_GetVault(self, req, tok, V):
        self._check_id(V, "Vault")
        with self._lock:
            if not (tok.may(V, "r") or tok.may(V, "w")):
                raise ApiError(403, NO_ACCESS)
            v = self._vaults.get(V)
            if v is None:
                raise ApiError(404, f"vault {V} not found")
            return self._json(200, v.json())

    # ------------------------------------------------------------- items

    def _op_ListItems(self, req, tok, V):
        pred = self._filter(req, ("title",))
        with self._lock:
            v = self._vault_for(tok, V)
            out = [i.summary() for i in v.items.values()
                   if pred is None or pred(i.doc.get("title", ""))]
        return self._json(200, out)

    def _op_GetItem(self, req, tok, V, I):
        with self._lock:
            v = self._vault_for(tok, V)
            return self._json(200, self._item_for(v, I).full())

    def _op_DeleteItem(self, req, tok, V, I):
        with self._lock:
            v = self._vault_for(tok, V, "w")
            self._item_for(v, I)
            del v.items[I]
            self._touch(v)
        return Response(204, b"", self._headers())

    def _body(self, req, kind=dict):
        try:
            body = req.json()
        except ValueError:
            raise ApiError(400, "Invalid JSON in request body") from None
        if not isinstance(body, kind):
            raise ApiError(400, "Invalid request body")
        return body

    def _op_CreateItem(self, req, tok, V):
        body = self._body(req)
        with self._lock:
            v = self._vault_for(tok, V, "w")
            vid = (body.get("vault") or {}).get("id")
            if vid not in (None, V):
                raise ApiError(400, "Item's vault does not match the vault "
                               "in the request path")
            if body.get("category") == "DOCUMENT":
                raise ApiError(400, "DOCUMENT items cannot be created "
                               "through Connect")
            item = Item(new_id(), V, self._validate(body, None))
            v.items[item.id] = item
            self._touch(v)
            return self._json(200, item.full())

    def _op_UpdateItem(self, req, tok, V, I):
        body = self._body(req)
        with self._lock:
            v = self._vault_for(tok, V, "w")
            item = self._item_for(v, I)
            self._replace(v, item, body)
            return self._json(200, item.full())

    def _replace(self, v, item, body):
        if body.get("id") not in (None, "", item.id):
            raise ApiError(400, "Item ID in the request body does not match "
                           "the item in the request path")
        if (body.get("vault") or {}).get("id") != v.id:
            raise ApiError(400, "Item's vault does not match the vault in "
                           "the request path")
        self._check_version(item, body.get("version"))
        item.doc = self._validate(body, item)
        self._bump(v, item)

    def _check_version(self, item, version):
        if self.strict_versions and version not in (None, 0) and \
                version != item.version:
            raise ApiError(409, f"item {item.id} has version {item.version},"
                           f" the request is based on version {version}")

    def _op_PatchItem(self, req, tok, V, I):
        ops = self._body(req, list)
        with self._lock:
            v = self._vault_for(tok, V, "w")
            item = self._item_for(v, I)
            doc = json.loads(json.dumps(item.full()))
            doc.pop("files", None)
            for op in ops:
                doc = self._apply(doc, op, item)
            self._check_version(item, doc.get("version")
                                if doc.get("version") != item.version
                                else None)
            if not ops:
                return self._json(200, item.full())
            doc["id"], doc["vault"] = item.id, {"id": v.id}
            item.doc = self._validate(doc, item)
            self._bump(v, item)
            return self._json(200, item.full())

    def _apply(self, doc, op, item):
        """One RFC 6902 operation (add, replace, remove) on doc; list
        members of "fields" and "sections" are addressed by their id (or
        index), others by index ("-" appends)."""
        if not isinstance(op, dict) or op.get("op") not in \
                ("add", "replace", "remove"):
            raise ApiError(400, f"Invalid patch operation: "
                           f"{op.get('op') if isinstance(op, dict) else op}")
        kind, path = op["op"], op.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ApiError(400, f"Invalid patch path: {path}")
        if kind != "remove" and "value" not in op:
            raise ApiError(400, f"Patch operation {kind} needs a value")
        value = op.get("value")
        if path == "/":
            if kind != "replace" or not isinstance(value, dict):
                raise ApiError(400, "Only replace is allowed on /")
            new = copy.deepcopy(value)
            new["version"] = value.get("version")
            return new
        segs = [s.replace("~1", "/").replace("~0", "~")
                for s in path[1:].split("/")]
        if segs[0] in READ_ONLY:
            raise ApiError(400, f"Item attribute {segs[0]} cannot be "
                           "modified")
        parent = doc
        for i, seg in enumerate(segs[:-1]):
            parent = self._step(parent, seg, segs[i - 1] if i else None,
                                path)
        last = segs[-1]
        where = segs[-2] if len(segs) > 1 else None
        if isinstance(parent, dict):
            if kind == "remove":
                if last not in parent:
                    raise ApiError(400, f"Path not found: {path}")
                del parent[last]
            elif kind == "replace" and last not in parent and \
                    not (where is None and last in ("title", "category",
                                                    "favorite", "tags",
                                                    "urls", "fields",
                                                    "sections")):
                raise ApiError(400, f"Path not found: {path}")
            elif kind == "add" and last in ("fields", "sections") and \
                    isinstance(parent.get(last), list) and where is None \
                    and isinstance(value, dict):
                parent[last].append(copy.deepcopy(value))   # PatchItemField
            else:
                parent[last] = copy.deepcopy(value)
            return doc
        if not isinstance(parent, list):
            raise ApiError(400, f"Path not found: {path}")
        idx = self._index(parent, last, where, kind == "add", path)
        if kind == "remove":
            del parent[idx]
        elif kind == "replace":
            parent[idx] = copy.deepcopy(value)
        else:
            parent.insert(idx, copy.deepcopy(value))
        return doc

    def _step(self, node, seg, where, path):
        if isinstance(node, dict):
            if seg not in node:
                raise ApiError(400, f"Path not found: {path}")
            return node[seg]
        if isinstance(node, list):
            return node[self._index(node, seg, where, False, path)]
        raise ApiError(400, f"Path not found: {path}")

    def _index(self, lst, seg, where, adding, path):
        if where in ("fields", "sections"):
            for n, el in enumerate(lst):
                if isinstance(el, dict) and el.get("id") == seg:
                    return n
        if adding and seg == "-":
            return len(lst)
        if seg.isdigit() and int(seg) < len(lst) + (1 if adding else 0):
            return int(seg)
        raise ApiError(400, f"Path not found: {path}")

    # -------------------------------------------------------- validation

    def _validate(self, body, item):
        """The stored doc for body (a FullItem): ids made up where absent,
        generated values made, unknown enum values refused (400)."""
        if body.get("category") not in CATEGORIES:
            raise ApiError(400, "Invalid item category")
        title = body.get("title") or ""
        if not isinstance(title, str):
            raise ApiError(400, "Invalid item title")
        sections, sec_ids = [], set()
        for s in body.get("sections") or []:
            if not isinstance(s, dict):
                raise ApiError(400, "Invalid section")
            sid = s.get("id") or new_id()
            if sid in sec_ids:
                raise ApiError(400, f"Duplicate section id {sid}")
            sec_ids.add(sid)
            out = {"id": sid}
            if s.get("label"):
                out["label"] = s["label"]
            sections.append(out)
        fields, field_ids = [], set()
        for f in body.get("fields") or []:
            if not isinstance(f, dict):
                raise ApiError(400, "Invalid field")
            ftype = (f.get("type") or "STRING").upper()
            if ftype not in FIELD_TYPES:
                raise ApiError(400, f"Invalid field type {f.get('type')}")
            purpose = f.get("purpose") or ""
            if purpose not in PURPOSES:
                raise ApiError(400, f"Invalid field purpose {purpose}")
            fid = f.get("id") or None
            if fid is None:
                fid = PURPOSE_IDS.get(purpose)
                if fid is None or fid in field_ids:
                    fid = new_id()
            if fid in field_ids:
                raise ApiError(400, f"Duplicate field id {fid}")
            field_ids.add(fid)
            out = {"id": fid, "type": ftype, "purpose": purpose,
                   "label": f.get("label") or ""}
            if out["label"] == "" and purpose:
                out["label"] = PURPOSE_IDS[purpose]
            value = f.get("value")
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"Invalid value of field {fid}")
            if f.get("generate") and not value:
                value, out["entropy"] = self._generate(f.get("recipe"))
            elif f.get("entropy") and item is not None and value is not None:
                out["entropy"] = f["entropy"]
            if value is not None:
                out["value"] = value
                self._secret(value)
            sec = f.get("section")
            if isinstance(sec, dict) and sec.get("id"):
                if sec["id"] not in sec_ids:
                    raise ApiError(400, f"Field {fid} is in section "
                                   f"{sec['id']}, which the item does not "
                                   "have")
                out["section"] = {"id": sec["id"]}
            fields.append(out)
        tags = body.get("tags") or []
        if not isinstance(tags, list) or \
                not all(isinstance(t, str) for t in tags):
            raise ApiError(400, "Invalid tags")
        urls = []
        for u in body.get("urls") or []:
            if not isinstance(u, dict) or not isinstance(u.get("href"), str):
                raise ApiError(400, "Invalid URL")
            urls.append({k: u[k] for k in ("label", "primary", "href")
                         if u.get(k) not in (None, "", False)})
        return {"title": title, "category": body["category"],
                "favorite": bool(body.get("favorite")), "tags": tags,
                "urls": urls, "sections": sections, "fields": fields}

    def _generate(self, recipe):
        recipe = recipe or {}
        length = recipe.get("length") or 32
        if not isinstance(length, int) or not 1 <= length <= 64:
            raise ApiError(400, "Invalid recipe: length must be 1 to 64")
        sets = recipe.get("characterSets") or list(CHARSETS)
        if any(s not in CHARSETS for s in sets):
            raise ApiError(400, "Invalid recipe: unknown character set")
        exclude = set(recipe.get("excludeCharacters") or "")
        pools = ["".join(c for c in CHARSETS[s] if c not in exclude)
                 for s in dict.fromkeys(sets)]
        pools = [p for p in pools if p]
        if not pools:
            raise ApiError(400, "Invalid recipe: no characters left")
        alphabet = "".join(pools)
        while True:
            value = "".join(_random.choice(alphabet) for _ in range(length))
            if length < len(pools) or \
                    all(any(c in p for c in value) for p in pools):
                break
        return value, round(length * math.log2(len(alphabet)), 2)

    def _bump(self, v, item):
        item.version += 1
        item.updated = _now()
        self._touch(v)

    def _touch(self, v):
        v.content_version += 1
        v.updated = _now()

    # ------------------------------------------------------------- files

    def _file_for(self, item, fid):
        for f in item.files:
            if f.id == fid:
                return f
        raise ApiError(404, f"file {fid} not found")

    def _inline(self, req, files):
        inline = (req.qs("inline_files") or "").lower() == "true"
        if inline and any(len(f.content) > self.inline_limit for f in files):
            raise ApiError(413, TOO_LARGE)
        return inline

    def _op_ListFiles(self, req, tok, V, I):
        with self._lock:
            v = self._vault_for(tok, V)
            item = self._item_for(v, I)
            inline = self._inline(req, item.files)
            return self._json(200, [item.file_json(f, V, inline)
                                    for f in item.files])

    def _op_GetFile(self, req, tok, V, I, F):
        with self._lock:
            v = self._vault_for(tok, V)
            item = self._item_for(v, I)
            f = self._file_for(item, F)
            return self._json(200, item.file_json(f, V, self._inline(req,
                                                                      [f])))

    def _op_GetFileContent(self, req, tok, V, I, F):
        with self._lock:
            v = self._vault_for(tok, V)
            f = self._file_for(self._item_for(v, I), F)
            name = f.name.replace('"', "")
            return Response(200, f.content, [
                ("Content-Type", "application/octet-stream"),
                ("Content-Disposition", f'attachment; filename="{name}"')]
                + self._headers())


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="1Password Connect emulator")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--token", action="append", default=[],
                    help="a token with access to every vault (default: one "
                    "is made up and printed)")
    ap.add_argument("--vault", action="append", default=[], metavar="NAME")
    ap.add_argument("--item", action="append", default=[],
                    metavar="VAULT/TITLE:label=value,...",
                    help="an item of CONCEALED fields")
    ap.add_argument("--tls", metavar="DIR", nargs="?", const="",
                    help="serve https; keep the test CA in DIR")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    emu = OpConnectEmulator(host=a.host, port=a.port, verbose=a.verbose,
                            tls=a.tls is not None, cert_dir=a.tls or None)
    for name in a.vault:
        emu.add_vault(name)
    for spec in a.item:
        where, _, fields = spec.partition(":")
        vault, _, title = where.partition("/")
        if vault not in emu.vaults().values():
            emu.add_vault(vault)
        emu.add_item(vault, title, fields=[
            {"label": k, "value": val, "type": "CONCEALED"}
            for k, _, val in (f.partition("=") for f in fields.split(",")
                              if f)])
    tokens = [emu.add_token(token=t) for t in a.token] or [emu.add_token()]
    emu.start()
    print(f"1password connect emulator on {emu.url}", flush=True)
    print(f"OP_CONNECT_HOST={emu.url}", flush=True)
    for t in tokens:
        print(f"OP_CONNECT_TOKEN={t}", flush=True)
    for vid, name in emu.vaults().items():
        print(f"vault {vid} {name}", flush=True)
    return httpbase.serve_until_signal(emu)


if __name__ == "__main__":
    sys.exit(main())
