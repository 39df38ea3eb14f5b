"""The 1Password Connect emulator (tests/emulators/opconnect.py) against the
real client: npm @1password/connect (the official Connect SDK) under Node
(tests/node/op_connect.mjs), and raw HTTP (python3-requests) where the
exact wire shape matters: that is what the C provider must speak.

No FUSE here. Nothing skips: scripts/deps installs the npm packages.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.register_assert_rewrite("op_fixtures")
pytest_plugins = ["op_fixtures"]

from op_fixtures import EMULATORS, OpConnectEmulator  # noqa: E402

import requests  # noqa: E402

NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")
ID = re.compile(r"[a-z2-7]{26}\Z")
CERT = b"-----BEGIN CERT-----\n\x00\x01\xfe\xff binary tail\r\n"


def raw(emu, method, path, token=None, **kw):
    """A request with requests, bypassing any SDK; token=None: emu.token,
    token="": no Authorization header."""
    headers = kw.pop("headers", {})
    token = emu.token if token is None else token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    verify = emu.tls.ca_file if emu.tls else True
    return requests.request(method, emu.url + path, headers=headers,
                            timeout=10, verify=verify, **kw)


def seed(op):
    """Vault Prod: item db (fields, a section, a file), two items titled
    twin; vault Dev: item db too."""
    prod = op.add_vault("Prod")
    dev = op.add_vault("Dev")
    db = op.add_item(prod, "db", sections=["extra"], fields=[
        {"label": "username", "value": "admin-user", "purpose": "USERNAME"},
        {"label": "password", "value": "db-password-1", "type": "CONCEALED",
         "purpose": "PASSWORD"},
        {"label": "port", "value": "5432", "section": "extra"},
        {"label": "password", "value": "extra-password-1",
         "type": "CONCEALED", "section": "extra"},
    ], files=[{"name": "cert.pem", "content": CERT, "section": "extra"}],
        tags=["infra"], urls=["https://db.example"])
    twins = [op.add_item(prod, "twin", fields=[("k", f"twin-value-{n}")])
             for n in (1, 2)]
    op.add_item(dev, "db", fields=[("password", "dev-password-1")])
    return prod, dev, db, twins


# ------------------------------------------------------------ the real SDK

def node_env(op, **tokens):
    env = dict(os.environ, OPEMU_URL=op.url, OPEMU_TOKEN=op.token)
    env.update(tokens)
    return env


@pytest.mark.timeout_s(120)
def test_node_sdk(op):
    node = shutil.which("node") or "/usr/bin/node"
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "@1password", "connect")), \
        "run scripts/deps (npm ci --prefix tests/node)"
    prod, dev, db, twins = seed(op)
    revoked = op.add_token()
    op.revoke(revoked)
    narrow = op.add_token(vaults=["Dev"])
    out = subprocess.run([node, os.path.join(NODE_DIR, "op_connect.mjs")],
                         env=node_env(op, OPEMU_REVOKED=revoked,
                                      OPEMU_NARROW=narrow),
                         capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)

    assert res["vaults"] == ["Dev", "Prod"]
    assert res["prod_id"] == prod and res["by_id_name"] == "Prod"
    assert res["prod_items"] == 3
    assert res["items"] == ["db", "twin", "twin"]
    assert res["summary_has_fields"] is False
    got = res["db"]
    assert got["id"] == db and got["version"] == 1 and got["vault"] == prod
    assert got["category"] == "LOGIN" and got["created"] is True
    sec = got["sections"][0]["id"]
    assert got["sections"] == [{"id": sec, "label": "extra"}]
    assert [(f["id"], f["label"], f["value"], f["section"])
            for f in got["fields"][:2]] == [
        ("username", "username", "admin-user", None),
        ("password", "password", "db-password-1", None)]
    assert [(f["label"], f["value"], f["section"])
            for f in got["fields"][2:]] == [
        ("port", "5432", sec), ("password", "extra-password-1", sec)]
    assert all(ID.match(f["id"]) for f in got["fields"][2:])
    assert res["by_title_list"] == [db]
    assert res["twins"] == sorted(twins)
    assert res["contains"] == ["twin", "twin"]

    (f,) = res["files"]
    assert f["name"] == "cert.pem" and f["size"] == len(CERT)
    assert f["content_path"] == \
        f"/v1/vaults/{prod}/items/{db}/files/{f['id']}/content"
    assert res["file"] == "cert.pem"
    assert base64.b64decode(res["file_b64"]) == CERT
    assert res["file_text"] == CERT.decode("utf-8", "replace")

    c = res["created"]
    assert ID.match(c["id"]) and c["version"] == 1 and c["vault"] == prod
    assert c["tags"] == ["node"]
    assert c["urls"] == [{"primary": True, "href": "https://example.org"}]
    (csec,) = c["sections"]
    assert csec["label"] == "Node stuff" and \
        csec["id"].startswith("Section_")        # the SDK names sections
    user, pw, key = c["fields"]
    assert (user["id"], user["value"]) == ("username", "node-user")
    assert pw["id"] == "password" and pw["type"] == "CONCEALED"
    assert re.fullmatch(r"[A-Za-z0-9]{40}", pw["value"])
    assert (key["value"], key["section"]) == ("node-api-key-1", csec["id"])
    u = res["updated"]
    assert u["version"] == 2 and u["title"] == "from-node-renamed"
    assert [f["value"] for f in u["fields"]] == \
        ["node-user", pw["value"], "node-api-key-2"]
    assert [f["id"] for f in u["fields"]] == [f["id"] for f in c["fields"]]

    assert res["missing_item"] == {
        "status": 404, "message": "item zzzzzzzzzzzzzzzzzzzzzzzzzz not found"}
    # these two the SDK makes itself from an empty or long filter answer
    assert res["missing_title"]["status"] == 404
    assert res["ambiguous"]["status"] == 400
    assert res["missing_vault"]["status"] == 404
    assert res["revoked"] == {"status": 401,
                              "message": "Invalid bearer token"}
    assert res["narrow_vaults"] == ["Dev"]
    assert res["forbidden"]["status"] == 403
    assert res["after_delete"]["status"] == 404
    assert op.items(prod, "from-node-renamed") == []

    # what the SDK sent: trailing slashes, an unencoded-then-URL-encoded
    # SCIM filter, the bearer token, JSON bodies
    lists = [r for r in op.calls("ListVaults") if r.raw_query]
    assert lists[0].raw_path == "/v1/vaults/"
    assert lists[0].raw_query == "filter=title%20eq%20%22Prod%22"
    assert lists[0].qs("filter") == 'title eq "Prod"'
    by_title = [r for r in op.calls("ListItems") if r.raw_query]
    assert by_title[0].raw_path == f"/v1/vaults/{prod}/items/"
    assert by_title[0].qs("filter") == 'title eq "db"'
    assert any(r.qs("filter") == 'title co "wi"' for r in by_title)
    assert all(r.token == op.token for r in op.calls("GetItem")
               if r.status != 403)
    (post,) = op.calls("CreateItem")
    body = post.json()
    assert post.raw_path == f"/v1/vaults/{prod}/items/"
    assert body["vault"] == {"id": prod} and body["category"] == "LOGIN"
    assert body["fields"][1]["generate"] is True and \
        body["fields"][1]["recipe"] == {"length": 40, "characterSets": [
            "LETTERS", "DIGITS"], "excludeCharacters": ""}
    (put,) = op.calls("UpdateItem")
    body = put.json()
    assert body["version"] == 1 and body["id"] == c["id"]
    assert body["vault"] == {"id": prod}
    assert put.header("Content-Type") == "application/json"


# ---------------------------------------------------------- authentication

def test_tokens(op):
    prod, dev, db, _ = seed(op)
    bad = {"status": 401, "message": "Invalid bearer token"}
    for token in ("", "not-a-token"):
        r = raw(op, "GET", "/v1/vaults", token=token)
        assert (r.status_code, r.json()) == (401, bad)
        assert r.headers["1Password-Connect-Version"] == "1.7.3"
    r = raw(op, "GET", "/v1/vaults", headers={"Authorization":
                                               f"Basic {op.token}"}, token="")
    assert r.status_code == 401
    tok = op.add_token(vaults={"Dev": "r"})
    assert [v["name"] for v in raw(op, "GET", "/v1/vaults", tok).json()] \
        == ["Dev"]
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}", tok)
    assert r.status_code == 403 and r.json() == {
        "status": 403,
        "message": "Authorization: token does not have access to vault"}
    assert raw(op, "GET", f"/v1/vaults/{prod}", tok).status_code == 403
    (dev_db,) = op.items(dev)
    assert raw(op, "GET", f"/v1/vaults/{dev}/items/{dev_db}",
               tok).status_code == 200
    item = raw(op, "GET", f"/v1/vaults/{dev}/items/{dev_db}", tok).json()
    r = raw(op, "PUT", f"/v1/vaults/{dev}/items/{dev_db}", tok, json=item)
    assert r.status_code == 403             # read-only
    op.grant(tok, "Dev", "rw")
    assert raw(op, "PUT", f"/v1/vaults/{dev}/items/{dev_db}", tok,
               json=item).status_code == 200
    op.revoke(tok)
    r = raw(op, "GET", f"/v1/vaults/{dev}/items/{dev_db}", tok)
    assert (r.status_code, r.json()) == (401, bad)
    assert r.headers["Content-Type"] == "application/json"
    assert op.calls("GetItem")[-1].token == tok


def test_ids_and_not_found(op):
    prod, dev, db, _ = seed(op)
    r = raw(op, "GET", "/v1/vaults/Prod/items")
    assert (r.status_code, r.json()) == \
        (400, {"status": 400, "message": "Invalid Vault UUID"})
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/db")
    assert (r.status_code, r.json()) == \
        (400, {"status": 400, "message": "Invalid Item UUID"})
    gone = "a" * 26
    r = raw(op, "GET", f"/v1/vaults/{gone}")
    assert (r.status_code, r.json()) == \
        (404, {"status": 404, "message": f"vault {gone} not found"})
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{gone}")
    assert (r.status_code, r.json()) == \
        (404, {"status": 404, "message": f"item {gone} not found"})
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}/files/{gone}/content")
    assert r.status_code == 404 and r.json()["message"] == \
        f"file {gone} not found"
    # a narrow token cannot tell a missing vault from a foreign one
    tok = op.add_token(vaults=[dev])
    assert raw(op, "GET", f"/v1/vaults/{gone}", tok).status_code == 403
    r = raw(op, "GET", "/v2/nothing")
    assert r.status_code == 404 and r.text == "404 page not found\n"
    assert raw(op, "POST", f"/v1/vaults/{prod}").status_code == 405
    assert ID.match(db) and ID.match(prod)


def test_heartbeat_and_health_need_no_token(op):
    r = raw(op, "GET", "/heartbeat", token="")
    assert (r.status_code, r.text) == (200, ".")
    r = raw(op, "GET", "/health", token="")
    assert r.status_code == 200
    assert r.json()["name"] == "1Password Connect API"
    assert {d["service"] for d in r.json()["dependencies"]} == \
        {"sync", "sqlite"}


# ------------------------------------------------------------------ reads

def test_vault_and_item_shapes(op):
    prod, dev, db, twins = seed(op)
    (v,) = raw(op, "GET", "/v1/vaults", params={
        "filter": 'name eq "Prod"'}).json()
    assert list(v) == ["id", "name", "attributeVersion", "contentVersion",
                       "items", "type", "createdAt", "updatedAt"]
    assert v["items"] == 3 and v["type"] == "USER_CREATED"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z",
                        v["createdAt"])
    summaries = raw(op, "GET", f"/v1/vaults/{prod}/items").json()
    assert [s["title"] for s in summaries] == ["db", "twin", "twin"]
    s = summaries[0]
    assert "fields" not in s and "sections" not in s and "files" not in s
    assert "db-password-1" not in json.dumps(summaries)
    assert s["tags"] == ["infra"] and s["urls"] == [
        {"href": "https://db.example"}]
    assert s["vault"] == {"id": prod} and s["version"] == 1
    item = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}").json()
    assert item == op.item(prod, db)
    assert list(item)[-3:] == ["sections", "fields", "files"]
    sec = item["sections"][0]["id"]
    assert item["fields"][0] == {"id": "username", "type": "STRING",
                                 "purpose": "USERNAME", "label": "username",
                                 "value": "admin-user"}
    assert item["fields"][3]["section"] == {"id": sec}
    assert item["files"][0]["section"] == {"id": sec}
    assert "content" not in item["files"][0]


def test_filters(op):
    prod, dev, db, twins = seed(op)

    def titles(flt, vault=prod):
        r = raw(op, "GET", f"/v1/vaults/{vault}/items/",
                params={"filter": flt})
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()]

    assert titles('title eq "db"') == [db]
    assert titles('title eq "DB"') == []        # exact by default
    assert sorted(titles('title eq "twin"')) == sorted(twins)
    assert titles('title eq "tw"') == []
    assert len(titles('title co "wi"')) == 2
    op.filter_case_insensitive = True
    assert titles('title eq "DB"') == [db]
    op.set_title(prod, db, 'say "hi"')
    assert titles(r'title eq "say \"hi\""') == [db]
    for bad in ("title eq 'db'", 'title = "db"', 'vault eq "x"', "db"):
        r = raw(op, "GET", f"/v1/vaults/{prod}/items", params={"filter": bad})
        assert r.status_code == 400 and r.json()["status"] == 400, bad
    vs = raw(op, "GET", "/v1/vaults", params={"filter": 'title eq "Dev"'})
    assert [v["id"] for v in vs.json()] == [dev]
    # connect-sdk-go encodes with url.QueryEscape: spaces as "+"
    vs = raw(op, "GET", "/v1/vaults?filter=title+eq+%22Dev%22")
    assert [v["id"] for v in vs.json()] == [dev]
    assert op.requests[-1].qs("filter") == 'title eq "Dev"'


def test_files(op):
    prod, dev, db, _ = seed(op)
    (f,) = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}/files").json()
    assert "content" not in f
    (fi,) = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}/files",
                params={"inline_files": "true"}).json()
    assert base64.b64decode(fi["content"]) == CERT
    one = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}/files/{f['id']}")
    assert one.json() == f
    r = raw(op, "GET", f["content_path"])
    assert r.content == CERT
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="cert.pem"'
    assert r.headers["Content-Length"] == str(len(CERT))
    assert op.file_content(prod, db, f["id"]) == CERT
    op.inline_limit = len(CERT) - 1
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}/files/{f['id']}",
            params={"inline_files": "true"})
    assert r.status_code == 413 and r.json()["message"].startswith(
        "File is too large to inline")
    assert raw(op, "GET", f["content_path"]).content == CERT


# ----------------------------------------------------------------- writes

def test_create(op):
    prod, *_ = seed(op)
    r = raw(op, "POST", f"/v1/vaults/{prod}/items", json={
        "vault": {"id": prod}, "title": "api", "category": "API_CREDENTIAL",
        "sections": [{"id": "s1", "label": "more"}],
        "fields": [
            {"label": "credential", "type": "CONCEALED", "generate": True,
             "recipe": {"length": 24, "characterSets": ["DIGITS"],
                        "excludeCharacters": "0123"}},
            {"label": "host", "value": "api.example", "section": {"id":
                                                                  "s1"}}]})
    assert r.status_code == 200, r.text
    item = r.json()
    assert ID.match(item["id"]) and item["version"] == 1
    gen, host = item["fields"]
    assert re.fullmatch(r"[4-9]{24}", gen["value"]) and gen["entropy"] > 0
    assert "generate" not in gen and "recipe" not in gen
    assert ID.match(gen["id"]) and host["section"] == {"id": "s1"}
    assert op.field(prod, item["id"], "credential") == gen["value"]
    # default recipe: 32 of letters, digits and symbols
    r = raw(op, "POST", f"/v1/vaults/{prod}/items/", json={
        "vault": {"id": prod}, "title": "pw", "category": "PASSWORD",
        "fields": [{"purpose": "PASSWORD", "type": "CONCEALED",
                    "generate": True}]})
    (pw,) = r.json()["fields"]
    assert pw["id"] == "password" and pw["label"] == "password"
    assert len(pw["value"]) == 32
    for body, what in (
            ({"title": "x", "category": "NOPE"}, "category"),
            ({"title": "x", "category": "LOGIN", "fields": [
                {"label": "a", "section": {"id": "missing"}}]}, "section"),
            ({"title": "x", "category": "LOGIN", "fields": [
                {"label": "a", "generate": True,
                 "recipe": {"length": 65}}]}, "recipe"),
            ({"title": "x", "category": "LOGIN", "vault": {
                "id": "b" * 26}}, "vault")):
        r = raw(op, "POST", f"/v1/vaults/{prod}/items", json=body)
        assert r.status_code == 400 and r.json()["status"] == 400, what
    r = raw(op, "POST", f"/v1/vaults/{prod}/items", data=b"{not json",
            headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_put_replaces_and_bumps_version(op):
    prod, dev, db, _ = seed(op)
    item = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}").json()
    item["fields"][1]["value"] = "db-password-2"
    item["fields"] = [f for f in item["fields"] if f["label"] != "port"]
    item["tags"] = []
    r = raw(op, "PUT", f"/v1/vaults/{prod}/items/{db}", json=item)
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["version"] == 2 and "tags" not in new
    assert [f["label"] for f in new["fields"]] == \
        ["username", "password", "password"]
    assert op.field(prod, db, "password") == "db-password-2"
    assert op.field(prod, db, "password", section="extra") == \
        "extra-password-1"
    assert new["files"] == item["files"]        # attachments stay
    assert new["createdAt"] == item["createdAt"]
    # a stale version is not refused by default: last writer wins
    item["version"] = 1
    item["title"] = "db-renamed"
    r = raw(op, "PUT", f"/v1/vaults/{prod}/items/{db}", json=item)
    assert r.status_code == 200 and r.json()["version"] == 3
    op.strict_versions = True
    r = raw(op, "PUT", f"/v1/vaults/{prod}/items/{db}", json=item)
    assert r.status_code == 409 and r.json()["status"] == 409
    assert op.version(prod, db) == 3
    item["version"] = 3
    assert raw(op, "PUT", f"/v1/vaults/{prod}/items/{db}",
               json=item).json()["version"] == 4
    del item["vault"]
    assert raw(op, "PUT", f"/v1/vaults/{prod}/items/{db}",
               json=item).status_code == 400
    item["vault"] = {"id": prod}
    item["id"] = "c" * 26
    assert raw(op, "PUT", f"/v1/vaults/{prod}/items/{db}",
               json=item).status_code == 400


def test_patch(op):
    prod, dev, db, _ = seed(op)
    item = op.item(prod, db)
    port = next(f["id"] for f in item["fields"] if f["label"] == "port")
    r = raw(op, "PATCH", f"/v1/vaults/{prod}/items/{db}", json=[
        {"op": "replace", "path": "/fields/password/value",
         "value": "db-password-3"},
        {"op": "remove", "path": f"/fields/{port}"},
        {"op": "add", "path": "/fields", "value": {
            "label": "NEW_KEY", "type": "CONCEALED", "value": "new-value-1"}},
        {"op": "replace", "path": "/title", "value": "db2"},
        {"op": "add", "path": "/tags/-", "value": "patched"}])
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["version"] == 2 and new["title"] == "db2"
    assert new["tags"] == ["infra", "patched"]
    assert [f["label"] for f in new["fields"]] == \
        ["username", "password", "password", "NEW_KEY"]
    assert ID.match(new["fields"][-1]["id"])
    assert op.field(prod, db, "password") == "db-password-3"
    assert op.field(prod, db, "password", section="extra") == \
        "extra-password-1"
    assert new["sections"] == item["sections"] and \
        new["files"] == item["files"]
    # a whole field replaced by id, an attribute removed
    r = raw(op, "PATCH", f"/v1/vaults/{prod}/items/{db}", json=[
        {"op": "replace", "path": "/fields/username", "value": {
            "id": "username", "label": "username", "type": "STRING",
            "purpose": "USERNAME", "value": "root-user"}},
        {"op": "remove", "path": "/fields/password/value"}])
    fields = {f["id"]: f for f in r.json()["fields"]}
    assert fields["username"]["value"] == "root-user"
    assert "value" not in fields["password"]
    assert r.json()["version"] == 3
    assert raw(op, "PATCH", f"/v1/vaults/{prod}/items/{db}",
               json=[]).json()["version"] == 3
    for ops in ([{"op": "move", "from": "/title", "path": "/x"}],
                [{"op": "replace", "path": "/version", "value": 9}],
                [{"op": "replace", "path": "/fields/nope/value",
                  "value": "x"}],
                {"op": "replace"}):
        r = raw(op, "PATCH", f"/v1/vaults/{prod}/items/{db}", json=ops)
        assert r.status_code == 400 and r.json()["status"] == 400, ops
    assert op.version(prod, db) == 3


def test_delete_and_shared_titles(op):
    prod, dev, db, twins = seed(op)
    r = raw(op, "DELETE", f"/v1/vaults/{prod}/items/{twins[0]}")
    assert r.status_code == 204 and r.content == b""
    assert raw(op, "GET", f"/v1/vaults/{prod}/items/{twins[0]}"
               ).status_code == 404
    assert raw(op, "DELETE", f"/v1/vaults/{prod}/items/{twins[0]}"
               ).status_code == 404
    assert op.items(prod, "twin") == [twins[1]]
    assert op.items(dev, "db") != [db] and len(op.items(dev, "db")) == 1


# ----------------------------------------------------- faults and the log

def test_faults_and_request_log(op):
    prod, dev, db, _ = seed(op)
    op.faults.rate_limit_next(1, retry_after=2, path=r"/items$")
    r = raw(op, "GET", f"/v1/vaults/{prod}/items")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json() == {"status": 429, "message": "Too Many Requests"}
    assert r.headers["1Password-Connect-Version"] == "1.7.3"
    assert raw(op, "GET", f"/v1/vaults/{prod}/items").status_code == 200
    op.faults.fail_next(1, 503)
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}")
    assert r.json() == {"status": 503, "message": "Service Unavailable"}
    op.faults.garbage_next(1, "truncated", path=r"/items/")
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}")
    with pytest.raises(ValueError):
        r.json()
    op.faults.drop_next(1, after_handling=True, method="PATCH")
    with pytest.raises(requests.ConnectionError):
        raw(op, "PATCH", f"/v1/vaults/{prod}/items/{db}", json=[
            {"op": "replace", "path": "/title", "value": "landed"}])
    assert op.item(prod, db)["title"] == "landed"     # the write landed
    op.clear_requests()
    for _ in range(2):
        raw(op, "GET", f"/v1/vaults/{prod}/items",
            params={"filter": 'title eq "db"'})
    raw(op, "GET", f"/v1/vaults/{prod}/items/{db}")
    assert op.ops() == ["ListItems", "ListItems", "GetItem"]
    assert op.count_op("ListItems") == 2
    assert all(r.token == op.token and r.status == 200 for r in op.requests)
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{'d' * 26}")
    assert op.requests[-1].error == {"status": 404,
                                     "message": f"item {'d' * 26} not found"}


def test_tls(op_factory):
    op = op_factory(tls=True)
    prod, dev, db, _ = seed(op)
    assert op.url.startswith("https://127.0.0.1:")
    r = raw(op, "GET", f"/v1/vaults/{prod}/items/{db}")
    assert r.status_code == 200 and r.json()["id"] == db


def test_leak_checker_sees_values_and_tokens(op, secrets):
    prod, dev, db, _ = seed(op)
    assert {"db-password-1", "extra-password-1", op.token} <= secrets.values
    r = raw(op, "POST", f"/v1/vaults/{prod}/items", json={
        "vault": {"id": prod}, "title": "g", "category": "PASSWORD",
        "fields": [{"purpose": "PASSWORD", "generate": True}]})
    assert r.json()["fields"][0]["value"] in secrets.values


# ------------------------------------------------------------------- CLI

def test_cli_starts_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(EMULATORS / "opconnect.py"), "--port", "0",
         "--token", "cli-token-0123456789", "--item",
         "Prod/db:password=cli-password-1,user=cli"],
        stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        url = lines[1].strip().split("=", 1)[1]
        vid = lines[3].split()[1]
        h = {"Authorization": "Bearer cli-token-0123456789"}
        (item,) = requests.get(f"{url}/v1/vaults/{vid}/items", headers=h,
                               timeout=10).json()
        full = requests.get(f"{url}/v1/vaults/{vid}/items/{item['id']}",
                            headers=h, timeout=10).json()
        assert [(f["label"], f["value"]) for f in full["fields"]] == \
            [("password", "cli-password-1"), ("user", "cli")]
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
