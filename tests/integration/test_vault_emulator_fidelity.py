"""The Vault emulator against a real client: hvac (Debian python3-hvac),
plus raw HTTP where the exact wire shape matters (docs/vault.md, "What
secretfs asks Vault").

No FUSE here: these run anywhere /usr/bin/python3 has hvac and pytest.
"""

import json
import socket
import subprocess
import sys
import threading
import time

import os

import pytest

# vault_fixtures is a plugin (fixtures vault, vault_factory) whose helpers
# are imported too: register it for assert rewriting first
pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

if os.environ.get("CI") == "true":
    import hvac  # in CI a missing client is a failure, never a skip
else:
    hvac = pytest.importorskip("hvac", reason="apt-get install python3-hvac")
from hvac import exceptions as hx  # noqa: E402
import requests  # noqa: E402  (hvac depends on it)
from requests.adapters import HTTPAdapter  # noqa: E402
from urllib3.util.retry import Retry  # noqa: E402

from vault_fixtures import EMULATORS  # noqa: E402
import vault as vault_mod  # noqa: E402  (tests/emulators, put on sys.path)
import httpbase  # noqa: E402


def client(emu, token=None, **kw):
    return hvac.Client(url=emu.url, token=token if token is not None
                       else emu.root_token, timeout=5, **kw)


def raw(emu, method, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not False:
        headers.setdefault("X-Vault-Token", token or emu.root_token)
    return requests.request(method, emu.url + path, headers=headers,
                            timeout=5, **kw)


# ----------------------------------------------------------------- KV v2

def test_kv2_create_read_update_with_cas(vault):
    c = client(vault)
    kv = c.secrets.kv.v2
    r = kv.create_or_update_secret("billing", {"DB": "pw-1"}, cas=0,
                                   mount_point="secret")
    assert r["data"]["version"] == 1
    assert r["data"]["destroyed"] is False and r["data"]["deletion_time"] == ""
    got = kv.read_secret_version("billing", mount_point="secret")
    assert got["data"]["data"] == {"DB": "pw-1"}
    assert got["data"]["metadata"]["version"] == 1
    assert got["lease_id"] == "" and got["renewable"] is False

    # cas=0 on an existing key is create-only: refused
    with pytest.raises(hx.InvalidRequest) as e:
        kv.create_or_update_secret("billing", {"DB": "x"}, cas=0,
                                   mount_point="secret")
    assert e.value.errors == ["check-and-set parameter did not match the "
                              "current version"]
    r = kv.create_or_update_secret("billing", {"DB": "pw-2"}, cas=1,
                                   mount_point="secret")
    assert r["data"]["version"] == 2
    with pytest.raises(hx.InvalidRequest):
        kv.create_or_update_secret("billing", {"DB": "pw-3"}, cas=1,
                                   mount_point="secret")
    # without cas the last writer wins
    kv.create_or_update_secret("billing", {"DB": "pw-3"}, mount_point="secret")
    assert vault.get("secret/", "billing") == {"DB": "pw-3"}
    assert vault.version("secret/", "billing") == 3
    old = kv.read_secret_version("billing", version=1, mount_point="secret")
    assert old["data"]["data"] == {"DB": "pw-1"}
    assert old["data"]["metadata"]["version"] == 1
    # a version that never existed is the plain 404
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("billing", version=9, mount_point="secret")
    seen = [r.json()["options"] for r in
            vault.requests_to("/v1/secret/data/billing", "POST")]
    assert seen[:3] == [{"cas": 0}, {"cas": 0}, {"cas": 1}]


def test_kv2_cas_required_and_bad_cas(vault):
    kv = client(vault).secrets.kv.v2
    vault.put("secret/", "strict", {"K": "v1"})
    vault.set_cas_required("secret/", path="strict")
    with pytest.raises(hx.InvalidRequest) as e:
        kv.create_or_update_secret("strict", {"K": "v2"}, mount_point="secret")
    assert e.value.errors == ["check-and-set parameter required for this call"]
    kv.create_or_update_secret("strict", {"K": "v2"}, cas=1,
                               mount_point="secret")
    r = raw(vault, "POST", "/v1/secret/data/strict",
            json={"options": {"cas": "abc"}, "data": {"K": "v3"}})
    assert r.status_code == 400
    assert r.json() == {"errors": ["error parsing check-and-set parameter"]}
    # a numeric string is weakly decoded, as mapstructure does
    r = raw(vault, "POST", "/v1/secret/data/strict",
            json={"options": {"cas": "2"}, "data": {"K": "v3"}})
    assert r.status_code == 200 and r.json()["data"]["version"] == 3
    # cas_required on the whole mount
    vault.set_cas_required("secret/")
    with pytest.raises(hx.InvalidRequest):
        kv.create_or_update_secret("other", {"K": "v"}, mount_point="secret")
    kv.create_or_update_secret("other", {"K": "v"}, cas=0, mount_point="secret")
    assert kv.read_configuration(mount_point="secret")["data"]["cas_required"]


def test_kv2_missing_is_404_with_empty_errors(vault):
    r = raw(vault, "GET", "/v1/secret/data/nope")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == b'{"errors":[]}\n'
    with pytest.raises(hx.InvalidPath):
        client(vault).secrets.kv.v2.read_secret_version("nope",
                                                        mount_point="secret")


def test_kv2_list(vault):
    for p in ("app/a", "app/b", "app/sub/c", "top"):
        vault.put("secret/", p, {"k": p})
    kv = client(vault).secrets.kv.v2
    assert kv.list_secrets("", mount_point="secret")["data"]["keys"] == \
        ["app/", "top"]
    assert kv.list_secrets("app", mount_point="secret")["data"]["keys"] == \
        ["a", "b", "sub/"]
    # LIST method and GET ?list=true are the same operation
    a = raw(vault, "LIST", "/v1/secret/metadata/app/")
    b = raw(vault, "GET", "/v1/secret/metadata/app", params={"list": "true"})
    assert a.status_code == b.status_code == 200
    assert a.json()["data"] == b.json()["data"] == {"keys": ["a", "b", "sub/"]}
    # an empty listing is a 404 with no errors
    r = raw(vault, "LIST", "/v1/secret/metadata/empty/")
    assert (r.status_code, r.json()) == (404, {"errors": []})
    with pytest.raises(hx.InvalidPath):
        kv.list_secrets("empty", mount_point="secret")
    # a soft-deleted secret is still listed (its metadata exists)
    vault.delete("secret/", "top")
    assert "top" in kv.list_secrets("", mount_point="secret")["data"]["keys"]


def test_kv2_soft_delete_undelete_destroy(vault):
    kv = client(vault).secrets.kv.v2
    kv.create_or_update_secret("gone", {"K": "one"}, mount_point="secret")
    kv.create_or_update_secret("gone", {"K": "two"}, mount_point="secret")
    kv.delete_latest_version_of_secret("gone", mount_point="secret")
    with pytest.raises(hx.InvalidPath) as e:
        kv.read_secret_version("gone", mount_point="secret")
    # the second 404 shape: the whole envelope, data.data null, no errors
    r = raw(vault, "GET", "/v1/secret/data/gone")
    body = r.json()
    assert r.status_code == 404 and "errors" not in body
    assert body["data"]["data"] is None
    meta = body["data"]["metadata"]
    assert meta["version"] == 2 and meta["destroyed"] is False
    assert meta["deletion_time"].endswith("Z")
    assert body["warnings"] is None and body["lease_id"] == ""
    assert "deletion_time" in str(e.value)
    # older versions stay readable
    assert kv.read_secret_version("gone", version=1, mount_point="secret")[
        "data"]["data"] == {"K": "one"}
    kv.undelete_secret_versions("gone", [2], mount_point="secret")
    assert kv.read_secret_version("gone", mount_point="secret")["data"][
        "data"] == {"K": "two"}
    kv.destroy_secret_versions("gone", [2], mount_point="secret")
    r = raw(vault, "GET", "/v1/secret/data/gone")
    assert r.status_code == 404
    assert r.json()["data"]["metadata"]["destroyed"] is True
    assert r.json()["data"]["data"] is None
    kv.delete_secret_versions("gone", [1], mount_point="secret")
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("gone", version=1, mount_point="secret")
    r = raw(vault, "POST", "/v1/secret/delete/gone", json={})
    assert (r.status_code, r.json()) == (400, {"errors": [
        "no version number provided"]})
    r = raw(vault, "DELETE", "/v1/secret/data/gone")
    assert r.status_code == 204 and r.content == b""


def test_kv2_metadata(vault):
    kv = client(vault).secrets.kv.v2
    for v in ("a", "b", "c"):
        kv.create_or_update_secret("meta", {"K": v}, mount_point="secret")
    kv.delete_secret_versions("meta", [1], mount_point="secret")
    m = kv.read_secret_metadata("meta", mount_point="secret")["data"]
    assert m["current_version"] == 3 and m["oldest_version"] == 0
    assert m["cas_required"] is False and m["max_versions"] == 0
    assert sorted(m["versions"]) == ["1", "2", "3"]
    assert m["versions"]["1"]["deletion_time"] != ""
    assert m["versions"]["2"] == {"created_time": m["versions"]["2"][
        "created_time"], "deletion_time": "", "destroyed": False}
    kv.update_metadata("meta", cas_required=True, mount_point="secret")
    assert vault.metadata("secret/", "meta")["cas_required"] is True
    kv.delete_metadata_and_all_versions("meta", mount_point="secret")
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_metadata("meta", mount_point="secret")
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("meta", version=2, mount_point="secret")


def test_kv2_max_versions(vault):
    vault.set_max_versions("secret/", 2)
    for i in range(4):
        vault.put("secret/", "few", {"i": i})
    m = vault.metadata("secret/", "few")
    assert (m["current_version"], m["oldest_version"]) == (4, 3)
    assert sorted(m["versions"]) == ["3", "4"]
    assert raw(vault, "GET", "/v1/secret/data/few?version=2").status_code == 404


def test_kv2_patch_is_merge_patch(vault):
    vault.put("secret/", "p", {"A": "1", "B": "2"})
    r = raw(vault, "PATCH", "/v1/secret/data/p",
            headers={"Content-Type": "application/merge-patch+json"},
            data=json.dumps({"options": {"cas": 1},
                             "data": {"B": None, "C": "3"}}))
    assert r.status_code == 200 and r.json()["data"]["version"] == 2
    assert vault.get("secret/", "p") == {"A": "1", "C": "3"}
    r = raw(vault, "PATCH", "/v1/secret/data/p", json={"data": {"A": "x"}})
    assert r.status_code == 415
    assert r.json()["errors"] == ["PATCH requires Content-Type of "
                                  "application/merge-patch+json, provided "
                                  "application/json"]
    r = raw(vault, "PATCH", "/v1/secret/data/missing",
            headers={"Content-Type": "application/merge-patch+json"},
            data='{"data":{"A":"x"}}')
    assert r.status_code == 404
    # hvac 0.11's patch() is a read plus a CAS write
    client(vault).secrets.kv.v2.patch("p", {"D": "4"}, mount_point="secret")
    assert vault.get("secret/", "p") == {"A": "1", "C": "3", "D": "4"}


def test_kv2_non_data_path_is_404_with_warning(vault):
    vault.put("secret/", "billing", {"K": "v"})
    r = raw(vault, "GET", "/v1/secret/billing")
    assert r.status_code == 404
    body = r.json()
    assert body["data"] is None and "errors" not in body
    assert body["warnings"] == [
        "Invalid path for a versioned K/V secrets engine. See the API docs "
        "for the appropriate API endpoints to use. If using the Vault CLI, "
        "use 'vault kv get' for this operation."]
    with pytest.raises(hx.InvalidPath) as e:
        client(vault).secrets.kv.v1.read_secret("billing",
                                                mount_point="secret")
    assert "Invalid path for a versioned K/V secrets engine" in str(e.value)
    r = raw(vault, "POST", "/v1/secret/billing", json={"K": "x"})
    assert r.status_code == 404 and "'vault kv put'" in r.json()["warnings"][0]
    r = raw(vault, "GET", "/v1/secret/data")
    assert r.json()["warnings"] == ["Non-listing operations on the root of a "
                                    "K/V v2 mount are not supported."]


def test_values_of_any_json_type_round_trip(vault):
    data = {"s": "<&>\u2028", "n": 5, "f": 1.5, "b": True, "z": None,
            "l": [1, "x"], "o": {"p": "q"}, "nul": "a\u0000b"}
    kv = client(vault).secrets.kv.v2
    kv.create_or_update_secret("types", data, mount_point="secret")
    assert kv.read_secret_version("types", mount_point="secret")[
        "data"]["data"] == data
    body = raw(vault, "GET", "/v1/secret/data/types").content
    # Go's encoder: <>& and U+2028 escaped, NUL as \u0000, keys sorted
    assert b"\\u003c\\u0026\\u003e\\u2028" in body and b"\\u0000" in body
    assert body.index(b'"b":') < body.index(b'"f":') < body.index(b'"z":')
    r = raw(vault, "POST", "/v1/secret/data/types", json={"data": "x"})
    assert r.status_code == 400
    r = raw(vault, "POST", "/v1/secret/data/types", json={"options": {}})
    assert r.json() == {"errors": ["no data provided"]}
    r = raw(vault, "POST", "/v1/secret/data/types", data="{not json")
    assert r.json() == {"errors": ["error parsing JSON"]}


# ----------------------------------------------------------------- KV v1

def test_kv1_read_write_list_delete(vault):
    kv = client(vault).secrets.kv.v1
    kv.create_or_update_secret("team/db", {"password": "pw", "ttl": "1h"},
                               mount_point="kv1")
    kv.create_or_update_secret("team/sub/x", {"k": "v"}, mount_point="kv1")
    got = kv.read_secret("team/db", mount_point="kv1")
    assert got["data"] == {"password": "pw", "ttl": "1h"}
    assert got["lease_duration"] == 3600
    assert vault.get("kv1/", "team/db") == {"password": "pw", "ttl": "1h"}
    assert kv.list_secrets("team", mount_point="kv1")["data"]["keys"] == \
        ["db", "sub/"]
    vault.put("kv1/", "plain", {"k": "v"})
    assert kv.read_secret("plain", mount_point="kv1")["lease_duration"] == \
        2764800
    r = raw(vault, "POST", "/v1/kv1/plain", json={"k": "w"})
    assert r.status_code == 204 and r.content == b""
    kv.delete_secret("team/db", mount_point="kv1")
    with pytest.raises(hx.InvalidPath):
        kv.read_secret("team/db", mount_point="kv1")
    r = raw(vault, "GET", "/v1/kv1/team/db")
    assert r.content == b'{"errors":[]}\n'
    r = raw(vault, "GET", "/v1/kv1/team", params={"list": "true"})
    assert r.json()["data"]["keys"] == ["sub/"]


# -------------------------------------------------------- mount detection

def test_ui_mounts(vault_factory):
    emu = vault_factory()
    emu.mount("old/", 1, legacy_options=True)
    for path, mount, version in (("secret/billing", "secret/", "2"),
                                 ("kv1/a/b", "kv1/", "1"),
                                 ("kv/team/apps/x", "kv/team/", "2"),
                                 ("kv/team", "kv/team/", "2")):
        r = raw(emu, "GET", f"/v1/sys/internal/ui/mounts/{path}")
        assert r.status_code == 200, path
        d = r.json()["data"]
        assert (d["path"], d["type"], d["options"]["version"]) == \
            (mount, "kv", version), path
    d = raw(emu, "GET", "/v1/sys/internal/ui/mounts/old/x").json()["data"]
    assert d["options"] is None and d["path"] == "old/"
    r = raw(emu, "GET", "/v1/sys/internal/ui/mounts/nomount/x")
    assert r.status_code == 403
    assert r.json() == {"errors": ["preflight capability check returned 403, "
                                   "please ensure client's policies grant "
                                   'access to path "nomount/x/"']}
    # a token with no access to the mount gets the same 403
    tok = emu.create_token(["nothing"], ttl=60)
    r = raw(emu, "GET", "/v1/sys/internal/ui/mounts/secret/x", token=tok)
    assert r.status_code == 403 and "preflight" in r.json()["errors"][0]
    emu.add_policy("one", {"secret/data/app/*": ["read"]})
    tok = emu.create_token(["one"], ttl=60)
    r = raw(emu, "GET", "/v1/sys/internal/ui/mounts/secret/app/x", token=tok)
    assert r.status_code == 200
    # an old Vault without the endpoint: 404, which the CLI takes as v1
    old = vault_factory(ui_mounts="404")
    r = raw(old, "GET", "/v1/sys/internal/ui/mounts/secret/x")
    assert (r.status_code, r.json()) == (404, {"errors": []})


# ------------------------------------------------------------- auth

def test_approle_login_then_read(vault):
    vault.put("secret/", "billing", {"DB": "approle-pw"})
    vault.add_policy("billing", 'path "secret/data/billing" {\n'
                     '  capabilities = ["read"]\n}\n')
    vault.add_approle("billing", "role-id-1", "secret-id-1", ["billing"],
                      ttl=120)
    c = client(vault, token="")
    r = c.auth.approle.login("role-id-1", "secret-id-1")
    auth = r["auth"]
    assert auth["lease_duration"] == 120 and auth["renewable"] is True
    assert auth["policies"] == ["billing", "default"]
    assert auth["client_token"].startswith("hvs.") and auth["accessor"]
    assert c.token == auth["client_token"]
    assert c.secrets.kv.v2.read_secret_version(
        "billing", mount_point="secret")["data"]["data"] == {"DB": "approle-pw"}
    with pytest.raises(hx.Forbidden):
        c.secrets.kv.v2.read_secret_version("other", mount_point="secret")
    with pytest.raises(hx.InvalidRequest) as e:
        client(vault, token="").auth.approle.login("role-id-1", "wrong")
    assert e.value.errors == ["invalid role or secret ID"]


def test_approle_secret_id_num_uses_and_mount(vault):
    vault.add_approle("r", "rid", "sid-once", ["default"], ttl=60,
                      secret_id_num_uses=1, mount="approle-ci")
    c = client(vault, token="")
    c.auth.approle.login("rid", "sid-once", mount_point="approle-ci")
    with pytest.raises(hx.InvalidRequest):
        c.auth.approle.login("rid", "sid-once", mount_point="approle-ci")
    # not enabled at the default path
    with pytest.raises(hx.VaultError):
        c.auth.approle.login("rid", "sid-once")
    assert vault.count("/v1/auth/approle-ci/login", "POST") == 2


def test_kubernetes_login(vault):
    vault.put("secret/", "k8s", {"K": "v"})
    vault.add_policy("k8s", {"secret/data/k8s": ["read"]})
    vault.add_k8s_role("app", "jwt-one", ["k8s"], ttl=60,
                       mount="kubernetes/cluster1")
    c = client(vault, token="")
    r = c.auth.kubernetes.login("app", "jwt-one",
                                mount_point="kubernetes/cluster1")
    assert r["auth"]["metadata"]["role"] == "app"
    assert c.secrets.kv.v2.read_secret_version("k8s", mount_point="secret")[
        "data"]["data"] == {"K": "v"}
    vault.k8s_accept("app", "jwt-two", mount="kubernetes/cluster1")
    with pytest.raises(hx.Forbidden):
        c.auth.kubernetes.login("app", "jwt-one",
                                mount_point="kubernetes/cluster1")
    c.auth.kubernetes.login("app", "jwt-two", mount_point="kubernetes/cluster1")
    with pytest.raises(hx.InvalidRequest) as e:
        c.auth.kubernetes.login("nope", "jwt-two",
                                mount_point="kubernetes/cluster1")
    assert e.value.errors == ['invalid role name "nope"']
    bodies = [q.json() for q in
              vault.requests_to("/v1/auth/kubernetes/cluster1/login")]
    assert [b["jwt"] for b in bodies] == ["jwt-one", "jwt-one", "jwt-two",
                                          "jwt-two"]


def test_token_lookup_and_renew_self(vault):
    tok = vault.create_token(["default"], ttl=5, max_ttl=8)
    c = client(vault, token=tok)
    d = c.auth.token.lookup_self()["data"]
    assert d["id"] == tok and d["renewable"] is True
    assert 4 <= d["ttl"] <= 5 and d["creation_ttl"] == 5
    assert d["explicit_max_ttl"] == 8 and d["expire_time"].endswith("Z")
    r = c.auth.token.renew_self(increment="4s")
    assert r["auth"]["lease_duration"] == 4 and r["auth"]["client_token"] == tok
    assert r["warnings"] is None
    # past max TTL the lease stops growing and Vault warns
    r = c.auth.token.renew_self(increment="1h")
    assert r["auth"]["lease_duration"] <= 8
    assert "max_ttl" in r["warnings"][0]
    first = r["auth"]["lease_duration"]
    time.sleep(1.1)
    r = c.auth.token.renew_self(increment=3600)
    assert r["auth"]["lease_duration"] < first
    assert vault.count("/v1/auth/token/renew-self", "POST") == 3
    assert [q.json() for q in vault.requests_to("/v1/auth/token/renew-self")] \
        == [{"increment": "4s"}, {"increment": "1h"}, {"increment": 3600}]
    # a token that is not renewable
    fixed = vault.create_token(["default"], ttl=60, renewable=False)
    with pytest.raises(hx.InvalidRequest) as e:
        client(vault, token=fixed).auth.token.renew_self()
    assert e.value.errors == ["lease is not renewable"]


def test_expired_and_unknown_tokens_are_403(vault):
    tok = vault.create_token(["default"], ttl=1)
    time.sleep(1.2)
    for t in (tok, "hvs.unknown", ""):
        r = raw(vault, "GET", "/v1/auth/token/lookup-self", token=t or False)
        assert (r.status_code, r.json()) == (403, {"errors": [
            "permission denied"]}), t
    with pytest.raises(hx.Forbidden):
        client(vault, token=tok).auth.token.lookup_self()
    live = vault.create_token(["default"], ttl=60)
    vault.expire_token(live)
    assert vault.token_info(live) is None


def test_bearer_token_accepted(vault):
    vault.put("secret/", "b", {"K": "v"})
    r = raw(vault, "GET", "/v1/secret/data/b", token=False,
            headers={"Authorization": "Bearer " + vault.root_token})
    assert r.status_code == 200 and r.json()["data"]["data"] == {"K": "v"}


def test_policy_denied_is_forbidden(vault):
    vault.put("secret/", "app/one", {"K": "1"})
    vault.put("secret/", "app/two", {"K": "2"})
    vault.add_policy("apps", """
        path "secret/data/app/*" { capabilities = ["read", "create", "update"] }
        path "secret/data/app/two" { capabilities = ["deny"] }
        path "secret/metadata/+/" { capabilities = ["list"] }
    """)
    tok = vault.create_token(["apps"], ttl=60)
    kv = client(vault, token=tok).secrets.kv.v2
    assert kv.read_secret_version("app/one", mount_point="secret")[
        "data"]["data"] == {"K": "1"}
    with pytest.raises(hx.Forbidden) as e:
        kv.read_secret_version("app/two", mount_point="secret")
    assert e.value.errors == ["1 error occurred:\n\t* permission denied\n\n"]
    r = raw(vault, "GET", "/v1/secret/data/app/two", token=tok)
    assert r.status_code == 403
    assert r.content == b'{"errors":["1 error occurred:\\n\\t* permission ' \
        b'denied\\n\\n"]}\n'
    assert kv.list_secrets("app", mount_point="secret")["data"]["keys"] == \
        ["one", "two"]
    with pytest.raises(hx.Forbidden):
        kv.list_secrets("", mount_point="secret")
    with pytest.raises(hx.Forbidden):
        kv.delete_latest_version_of_secret("app/one", mount_point="secret")
    kv.create_or_update_secret("app/three", {"K": "3"}, mount_point="secret")


def test_policy_priority_and_create_vs_update(vault):
    vault.add_policy("p", {
        "secret/data/*": ["read"],
        "secret/data/+/x": ["create"],
        "secret/data/team/*": ["update", "read"],
    })
    tok = vault.create_token(["p"], ttl=60)
    caps = vault.capabilities(tok, "secret/data/team/x")
    # "secret/data/team/*" has its first wildcard later than "+/x": it wins
    assert caps == {"update", "read"}
    assert vault.capabilities(tok, "secret/data/a/x") == {"create"}
    assert vault.capabilities(tok, "other/x") == set()
    assert vault.capabilities(vault.root_token, "other/x") == {"root"}
    kv = client(vault, token=tok).secrets.kv.v2
    kv.create_or_update_secret("a/x", {"K": "v"}, mount_point="secret")
    with pytest.raises(hx.Forbidden):    # exists now: an update
        kv.create_or_update_secret("a/x", {"K": "w"}, mount_point="secret")
    with pytest.raises(hx.Forbidden):    # does not exist: a create
        kv.create_or_update_secret("team/new", {"K": "w"},
                                   mount_point="secret")


# ----------------------------------------------------- server behaviour

def test_sealed_raises_vault_down(vault):
    vault.put("secret/", "s", {"K": "v"})
    vault.seal()
    with pytest.raises(hx.VaultDown) as e:
        client(vault).secrets.kv.v2.read_secret_version("s",
                                                        mount_point="secret")
    assert e.value.errors == ["Vault is sealed"]
    assert raw(vault, "GET", "/v1/sys/health").status_code == 503
    assert client(vault).sys.read_seal_status()["sealed"] is True
    r = raw(vault, "POST", "/v1/sys/unseal", json={"key": "any"})
    assert r.status_code == 200 and r.json()["sealed"] is False
    assert client(vault).secrets.kv.v2.read_secret_version(
        "s", mount_point="secret")["data"]["data"] == {"K": "v"}
    assert raw(vault, "GET", "/v1/sys/health").status_code == 200
    assert raw(vault, "POST", "/v1/sys/seal").status_code == 204
    assert vault.sealed


def test_429_then_success(vault):
    """hvac 0.11 does not retry (its requests.Session has no Retry): the
    429 surfaces as RateLimitExceeded and the next call succeeds. A client
    that does retry (urllib3 Retry honouring Retry-After) gets through."""
    vault.put("secret/", "rl", {"K": "v"})
    vault.faults.fail_next(1, 429, retry_after=1, path=r"/data/rl$")
    c = client(vault)
    with pytest.raises(hx.RateLimitExceeded) as e:
        c.secrets.kv.v2.read_secret_version("rl", mount_point="secret")
    assert e.value.errors == ["rate limit quota exceeded"]
    assert c.secrets.kv.v2.read_secret_version(
        "rl", mount_point="secret")["data"]["data"] == {"K": "v"}

    vault.clear_requests()
    vault.faults.fail_next(1, 429, retry_after=1, path=r"/data/rl$")
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=Retry(
        total=2, status_forcelist=[429, 503], respect_retry_after_header=True,
        allowed_methods=None)))
    t0 = time.monotonic()
    r = s.get(vault.url + "/v1/secret/data/rl",
              headers={"X-Vault-Token": vault.root_token}, timeout=5)
    assert r.status_code == 200
    assert time.monotonic() - t0 >= 0.9          # Retry-After: 1 honoured
    assert [q.status for q in vault.requests] == [429, 200]
    assert vault.requests[0].fault == "status"


@pytest.mark.parametrize("status,exc,text", [
    (500, hx.InternalServerError, "internal error"),
    (502, hx.BadGateway, "upstream rate limited"),
    (503, hx.VaultDown, "Vault is sealed"),
    (412, hx.UnexpectedError, "required index state not present"),
])
def test_injected_status(vault, status, exc, text):
    vault.put("secret/", "st", {"K": "v"})
    vault.faults.fail_next(1, status)
    with pytest.raises(exc):
        client(vault).secrets.kv.v2.read_secret_version("st",
                                                        mount_point="secret")
    assert vault.requests[-1].status == status
    r = raw(vault, "GET", "/v1/secret/data/st")
    assert r.status_code == 200
    vault.faults.fail_next(1, status)
    assert raw(vault, "GET", "/v1/secret/data/st").json() == {"errors": [text]}


def test_standby_redirects(vault_factory):
    active = vault_factory()
    standby = vault_factory(root_token=active.root_token)
    active.put("secret/", "ha", {"K": "from-active"})
    standby.standby(active.url)
    r = raw(standby, "GET", "/v1/secret/data/ha?version=1",
            allow_redirects=False)
    assert r.status_code == 307
    assert r.headers["Location"] == active.url + "/v1/secret/data/ha?version=1"
    c = client(standby, token=active.root_token)
    got = c.secrets.kv.v2.read_secret_version("ha", mount_point="secret")
    assert got["data"]["data"] == {"K": "from-active"}
    # 307 keeps the method and the body
    c.secrets.kv.v2.create_or_update_secret("ha", {"K": "via-standby"},
                                            mount_point="secret")
    assert active.get("secret/", "ha") == {"K": "via-standby"}
    assert raw(standby, "GET", "/v1/sys/health").status_code == 429
    standby.standby(None)
    assert raw(standby, "GET", "/v1/sys/health").status_code == 200


def test_request_header_required(vault_factory):
    emu = vault_factory(require_request_header=True)
    emu.put("secret/", "agent", {"K": "v"})
    r = raw(emu, "GET", "/v1/secret/data/agent")
    assert (r.status_code, r.json()) == (412, {"errors": [
        'missing "X-Vault-Request" header']})
    r = raw(emu, "GET", "/v1/secret/data/agent",
            headers={"X-Vault-Request": "false"})
    assert r.status_code == 412
    # hvac sends the header by default
    assert client(emu).secrets.kv.v2.read_secret_version(
        "agent", mount_point="secret")["data"]["data"] == {"K": "v"}
    assert emu.requests[-1].header("X-Vault-Request") == "true"


def test_namespaces_are_separate_trees(vault):
    c = client(vault, namespace="team1")
    c.secrets.kv.v2.create_or_update_secret("ns", {"K": "in-team1"},
                                            mount_point="secret")
    assert vault.get("secret/", "ns", namespace="team1") == {"K": "in-team1"}
    assert vault.get("secret/", "ns") is None
    assert vault.requests[-1].header("X-Vault-Namespace") == "team1"
    with pytest.raises(hx.InvalidPath):
        client(vault).secrets.kv.v2.read_secret_version("ns",
                                                        mount_point="secret")
    # a namespace can also lead the path
    vault.add_namespace("team2")
    vault.put("secret/", "p", {"K": "in-team2"}, namespace="team2")
    r = raw(vault, "GET", "/v1/team2/secret/data/p")
    assert r.json()["data"]["data"] == {"K": "in-team2"}


# --------------------------------------------------------------- faults

def test_drop_hang_garbage_huge_latency(vault):
    vault.put("secret/", "f", {"K": "v"})
    url = vault.url + "/v1/secret/data/f"
    h = {"X-Vault-Token": vault.root_token}

    vault.faults.drop_next()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers=h, timeout=5)
    assert requests.get(url, headers=h, timeout=5).status_code == 200

    vault.faults.hang_next(seconds=3)
    t0 = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, headers=h, timeout=0.5)
    assert time.monotonic() - t0 < 2

    for kind in ("not-json", "truncated", "empty"):
        vault.faults.garbage_next(1, kind)
        r = requests.get(url, headers=h, timeout=5)
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
    vault.faults.garbage_next(1, "wrong-types")
    assert requests.get(url, headers=h, timeout=5).json()["data"] == "x"
    vault.faults.garbage_next(1, "data-data-string")
    assert requests.get(url, headers=h, timeout=5).json()["data"]["data"] == "x"
    # hvac hands a 200 it cannot parse back as the raw response
    vault.faults.garbage_next(1, "not-json")
    got = client(vault).secrets.kv.v2.read_secret_version("f",
                                                          mount_point="secret")
    assert isinstance(got, requests.Response)

    vault.faults.huge_next(1, size=5 << 20)
    r = requests.get(url, headers=h, timeout=10)
    assert len(r.content) > 5 << 20
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert len(r.json()["data"]["data"]["HUGE"]) == 5 << 20

    lat = vault.faults.latency(0.4, path=r"/data/f$")
    t0 = time.monotonic()
    requests.get(url, headers=h, timeout=5)
    assert time.monotonic() - t0 >= 0.4
    vault.faults.remove(lat)

    # drop after handling: the write lands, the answer is lost
    vault.faults.drop_next(after_handling=True, method="POST")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, headers=h, json={"data": {"K": "w"}}, timeout=5)
    assert vault.get("secret/", "f") == {"K": "w"}
    assert vault.faults.pending() == 0
    assert [k for k, _, _ in vault.faults.history] == [
        "drop", "hang", "garbage", "garbage", "garbage", "garbage", "garbage",
        "garbage", "huge", "drop"]


def test_faults_match_path_and_method(vault):
    vault.put("secret/", "a", {"K": "a"})
    vault.put("secret/", "b", {"K": "b"})
    vault.faults.fail_next(2, 503, path=r"/data/a$", method="GET")
    assert raw(vault, "GET", "/v1/secret/data/b").status_code == 200
    assert raw(vault, "POST", "/v1/secret/data/a",
               json={"data": {"K": "a2"}}).status_code == 200
    assert raw(vault, "GET", "/v1/secret/data/a").status_code == 503
    assert raw(vault, "GET", "/v1/secret/data/a").status_code == 503
    assert raw(vault, "GET", "/v1/secret/data/a").status_code == 200
    forever = vault.faults.fail_next(None, 500, path="/data/b")
    for _ in range(3):
        assert raw(vault, "GET", "/v1/secret/data/b").status_code == 500
    vault.faults.remove(forever)
    assert raw(vault, "GET", "/v1/secret/data/b").status_code == 200


def test_request_log_and_keepalive(vault):
    vault.put("secret/", "log", {"K": "v"})
    c = client(vault, namespace="nsx")
    for _ in range(3):
        with pytest.raises(hx.InvalidPath):
            c.secrets.kv.v2.read_secret_version("log", mount_point="secret")
    reqs = vault.requests_to("/v1/secret/data/log")
    assert len(reqs) == 3 and vault.count("/v1/secret/data/log") == 3
    for q in reqs:
        assert q.header("X-Vault-Request") == "true"
        assert q.header("x-vault-token") == vault.root_token
        assert q.header("X-Vault-Namespace") == "nsx"
        assert q.method == "GET" and q.status == 404
    # one keep-alive connection served all three
    assert len({q.client for q in reqs}) == 1
    assert vault.counts()["/v1/secret/data/log"] == 3


def test_concurrent_writers_serialize(vault):
    """CAS under contention: of N concurrent cas=0 writes exactly one wins."""
    results = []

    def writer(i):
        r = raw(vault, "POST", "/v1/secret/data/race",
                json={"options": {"cas": 0}, "data": {"i": i}})
        results.append(r.status_code)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [200] + [400] * 7
    assert vault.version("secret/", "race") == 1


def test_tls(vault_factory):
    emu = vault_factory(tls=True)
    emu.put("secret/", "tls", {"K": "v"})
    assert emu.url.startswith("https://127.0.0.1:")
    c = client(emu, verify=str(emu.tls.ca_file))
    assert c.secrets.kv.v2.read_secret_version(
        "tls", mount_point="secret")["data"]["data"] == {"K": "v"}
    with pytest.raises(requests.exceptions.SSLError):
        client(emu).secrets.kv.v2.read_secret_version("tls",
                                                      mount_point="secret")
    assert any(emu.tls.ca_dir.glob("*.0"))
    # mutual TLS
    mtls = vault_factory(tls=True, tls_client_auth=True)
    mtls.put("secret/", "m", {"K": "v"})
    with pytest.raises(requests.exceptions.RequestException):
        client(mtls, verify=str(mtls.tls.ca_file)).secrets.kv.v2.\
            read_secret_version("m", mount_point="secret")
    c = client(mtls, verify=str(mtls.tls.ca_file),
               cert=(str(mtls.tls.client_cert), str(mtls.tls.client_key)))
    assert c.secrets.kv.v2.read_secret_version(
        "m", mount_point="secret")["data"]["data"] == {"K": "v"}


def test_unit_helpers():
    assert vault_mod.parse_duration("1h30m") == 5400
    assert vault_mod.parse_duration(90) == 90
    assert vault_mod.parse_duration("15") == 15
    with pytest.raises(ValueError):
        vault_mod.parse_duration("1x")
    assert vault_mod.rfc3339(1_700_000_000_120_000_000) == \
        "2023-11-14T22:13:20.12Z"
    assert vault_mod.rfc3339(1_700_000_000_000_000_000) == \
        "2023-11-14T22:13:20Z"
    assert vault_mod.merge_patch({"a": 1, "b": {"c": 2, "d": 3}},
                                 {"a": None, "b": {"c": None, "e": 4}}) == \
        {"b": {"d": 3, "e": 4}}
    assert httpbase.go_json({"b": 1, "a": "<"}) == b'{"a":"\\u003c","b":1}\n'
    s = httpbase.Struct(z=1, a=2)
    assert httpbase.go_json(s, newline=False) == b'{"z":1,"a":2}'


def test_cli_starts_and_serves():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(EMULATORS / "vault.py"), "--port", str(port),
         "--root-token", "cli-root-token", "--mount", "secret/=2",
         "--mount", "kv1/=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, proc.stderr.read()
        base = f"http://127.0.0.1:{port}"
        h = {"X-Vault-Token": "cli-root-token"}
        r = requests.post(base + "/v1/kv1/x", json={"k": "v"}, headers=h,
                          timeout=5)
        assert r.status_code == 204
        assert requests.get(base + "/v1/kv1/x", headers=h,
                            timeout=5).json()["data"] == {"k": "v"}
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
