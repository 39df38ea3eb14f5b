"""The GCP Secret Manager emulator (tests/emulators/gcpsm.py) against the
real clients: npm @google-cloud/secret-manager (REST transport) with
google-auth-library under Node (tests/node/gcp_sm.mjs), and Debian's
python3-google-auth for the token flows (service-account JWTs it signs,
refresh tokens, the metadata server). Raw HTTP (python3-requests) where
the exact wire shape matters: that is what the C provider must speak.

No FUSE here. Nothing skips: scripts/deps installs python3-google-auth
and the npm packages.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

pytest.register_assert_rewrite("gcp_fixtures")
pytest_plugins = ["gcp_fixtures"]

from gcp_fixtures import (  # noqa: E402
    CLOUD_PLATFORM, EMULATORS, PROJECT, PROJECT_NUMBER, SA_EMAIL, crc32c,
    write_authorized_user_adc, write_external_account_adc,
    write_impersonated_adc, write_service_account_adc)

import requests  # noqa: E402
import google.auth.transport.requests as gtransport  # noqa: E402
from google.auth import exceptions as gexc  # noqa: E402
from google.oauth2 import credentials as user_creds  # noqa: E402
from google.oauth2 import service_account  # noqa: E402

NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")
GOOGLE_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
               "GCLOUD_PROJECT", "GCE_METADATA_HOST", "GCE_METADATA_IP",
               "GCE_METADATA_ROOT", "METADATA_SERVER_DETECTION",
               "GOOGLE_CLOUD_UNIVERSE_DOMAIN", "CLOUDSDK_CONFIG",
               "NO_GCE_CHECK", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_google_env(monkeypatch, tmp_path):
    for k in GOOGLE_VARS:
        monkeypatch.delenv(k, raising=False)
    # no gcloud ADC file of the machine's user
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))


def sm(emu, method, path, token=None, **kw):
    """A Secret Manager request with requests, bypassing any SDK."""
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{emu.url}/v1/{path}", headers=headers,
                            verify=emu.ca_file, timeout=10, **kw)


def tok(emu, who=None, **kw):
    return emu.issue_token(who or SA_EMAIL, **kw).value


def b64(data):
    return base64.b64encode(data).decode()


def g_error(r):
    """(HTTP status, Google status) of an error answer."""
    e = r.json()["error"]
    assert e["code"] == r.status_code and isinstance(e["message"], str)
    return r.status_code, e["status"]


# --------------------------------------------------------------- CRC32C

def test_crc32c_is_castagnoli():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    import zlib
    assert crc32c(b"123456789") != zlib.crc32(b"123456789")


# ------------------------------------------------------------ data plane

def test_access_wire_shape(gcp):
    n = gcp.add_version(PROJECT, "db", b"pw-\x00\xff-binary")
    assert n == 1
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/db/versions/latest:"
           "access", tok(gcp))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = r.json()
    # the name carries the project number and the resolved version
    assert body == {"name": f"projects/{PROJECT_NUMBER}/secrets/db/"
                    "versions/1",
                    "payload": {"data": b64(b"pw-\x00\xff-binary"),
                                "dataCrc32c": str(crc32c(
                                    b"pw-\x00\xff-binary"))}}
    # int64 as a decimal string
    assert isinstance(body["payload"]["dataCrc32c"], str)
    # by number and by project number too
    r = sm(gcp, "GET", f"projects/{PROJECT_NUMBER}/secrets/db/versions/1:"
           "access", tok(gcp))
    assert r.json()["payload"]["data"] == b64(b"pw-\x00\xff-binary")
    assert gcp.calls("AccessSecretVersion")[-1].identity == SA_EMAIL


def test_create_add_access_versions_and_aliases(gcp):
    t = tok(gcp)
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets", t,
           params={"secretId": "app"},
           json={"replication": {"automatic": {}}, "labels": {"team": "a"},
                 "annotations": {"note": "x"}})
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["name"] == f"projects/{PROJECT_NUMBER}/secrets/app"
    assert s["replication"] == {"automatic": {}}
    assert s["labels"] == {"team": "a"} and s["annotations"] == {"note": "x"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z",
                        s["createTime"])
    assert s["etag"].startswith('"')
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets", t,
           params={"secretId": "app"}, json={"replication": {"automatic":
                                                             {}}})
    assert g_error(r) == (409, "ALREADY_EXISTS")
    for i, val in enumerate([b"one", b"two", b"three"], 1):
        r = sm(gcp, "POST", f"projects/{PROJECT}/secrets/app:addVersion", t,
               json={"payload": {"data": b64(val),
                                 "dataCrc32c": str(crc32c(val))}})
        assert r.status_code == 200, r.text
        v = r.json()
        assert v["name"] == f"projects/{PROJECT_NUMBER}/secrets/app/" \
            f"versions/{i}"
        assert v["state"] == "ENABLED"
        assert v["clientSpecifiedPayloadChecksum"] is True
        assert v["replicationStatus"] == {"automatic": {}}
    # without a CRC: accepted, not flagged
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets/app:addVersion", t,
           json={"payload": {"data": b64(b"four")}})
    assert "clientSpecifiedPayloadChecksum" not in r.json()
    # a wrong CRC: 400 INVALID_ARGUMENT, nothing added
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets/app:addVersion", t,
           json={"payload": {"data": b64(b"five"),
                             "dataCrc32c": str(crc32c(b"fiv"))}})
    assert g_error(r) == (400, "INVALID_ARGUMENT")
    assert "Checksum" in r.json()["error"]["message"]
    assert sorted(gcp.secret(PROJECT, "app").versions) == [1, 2, 3, 4]
    # aliases by PATCH ?updateMask=versionAliases
    r = sm(gcp, "PATCH", f"projects/{PROJECT}/secrets/app", t,
           params={"updateMask": "versionAliases"},
           json={"versionAliases": {"prod": "2", "canary": 3}})
    assert r.status_code == 200, r.text
    assert r.json()["versionAliases"] == {"prod": "2", "canary": "3"}

    def access(v):
        return sm(gcp, "GET", f"projects/{PROJECT}/secrets/app/versions/"
                  f"{v}:access", t)
    assert base64.b64decode(access("prod").json()["payload"]["data"]) == \
        b"two"
    assert access("prod").json()["name"].endswith("/versions/2")
    assert base64.b64decode(access("latest").json()["payload"]["data"]) == \
        b"four"
    assert g_error(access("nope")) == (404, "NOT_FOUND")
    assert g_error(access("9")) == (404, "NOT_FOUND")
    # an alias to a version that does not exist
    r = sm(gcp, "PATCH", f"projects/{PROJECT}/secrets/app", t,
           params={"updateMask": "versionAliases"},
           json={"versionAliases": {"x": "42"}})
    assert g_error(r) == (400, "INVALID_ARGUMENT")


def test_states(gcp):
    t = tok(gcp)
    for v in (b"a1", b"a2", b"a3"):
        gcp.add_version(PROJECT, "s", v)
    base = f"projects/{PROJECT}/secrets/s/versions"
    r = sm(gcp, "POST", f"{base}/3:disable", t)
    assert r.status_code == 200 and r.json()["state"] == "DISABLED"
    # latest is the newest version, whatever its state
    r = sm(gcp, "GET", f"{base}/latest:access", t)
    assert g_error(r) == (400, "FAILED_PRECONDITION")
    assert r.json()["error"]["message"] == \
        f"Secret Version [projects/{PROJECT_NUMBER}/secrets/s/versions/3] " \
        "is in DISABLED state."
    r = sm(gcp, "POST", f"{base}/3:enable", t)
    assert r.json()["state"] == "ENABLED"
    assert sm(gcp, "GET", f"{base}/latest:access", t).status_code == 200
    r = sm(gcp, "POST", f"{base}/1:destroy", t)
    v = r.json()
    assert v["state"] == "DESTROYED" and "destroyTime" in v
    r = sm(gcp, "GET", f"{base}/1:access", t)
    assert g_error(r) == (400, "FAILED_PRECONDITION")
    assert "DESTROYED" in r.json()["error"]["message"]
    assert gcp.access(PROJECT, "s", 1) is None
    assert g_error(sm(gcp, "POST", f"{base}/1:enable", t)) == \
        (400, "FAILED_PRECONDITION")
    # numeric enums when the REST client asks for them
    r = sm(gcp, "GET", f"{base}/1", t,
           params={"$alt": "json;enum-encoding=int"})
    assert r.json()["state"] == 3
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/s/versions", t,
           params={"filter": "state:ENABLED"})
    assert [v["name"].rsplit("/", 1)[1] for v in r.json()["versions"]] == \
        ["3", "2"]


def test_not_found_shapes(gcp):
    t = tok(gcp)
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/none/versions/latest:"
           "access", t)
    assert g_error(r) == (404, "NOT_FOUND")
    assert r.json()["error"]["message"] == \
        f"Secret [projects/{PROJECT_NUMBER}/secrets/none] not found or has " \
        "no versions."
    gcp.create_secret(PROJECT, "empty")
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/empty/versions/latest:"
           "access", t)
    assert g_error(r) == (404, "NOT_FOUND")
    assert g_error(sm(gcp, "GET", f"projects/{PROJECT}/secrets/none", t)) \
        == (404, "NOT_FOUND")
    assert g_error(sm(gcp, "DELETE", f"projects/{PROJECT}/secrets/none",
                      t)) == (404, "NOT_FOUND")
    r = sm(gcp, "DELETE", f"projects/{PROJECT}/secrets/empty", t)
    assert r.status_code == 200 and r.json() == {}
    assert gcp.names() == []


def test_list_paging_and_filter(gcp):
    t = tok(gcp)
    for i in range(5):
        gcp.create_secret(PROJECT, f"k{i}", labels={"env": "prod" if i % 2
                                                    else "dev"})
    seen, token, pages = [], None, 0
    while True:
        params = {"pageSize": 2}
        if token:
            params["pageToken"] = token
        r = sm(gcp, "GET", f"projects/{PROJECT}/secrets", t, params=params)
        body = r.json()
        assert body["totalSize"] == 5
        seen += [s["name"].rsplit("/", 1)[1] for s in body["secrets"]]
        pages += 1
        token = body.get("nextPageToken")
        if not token:
            break
    assert seen == [f"k{i}" for i in range(5)] and pages == 3
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets", t,
           params={"filter": "labels.env=prod"})
    assert [s["name"][-2:] for s in r.json()["secrets"]] == ["k1", "k3"]
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets", t,
           params={"pageToken": "garbage!"})
    assert g_error(r) == (400, "INVALID_ARGUMENT")
    gcp.delete_secret(PROJECT, "k0")
    # an empty list is {}
    r = sm(gcp, "GET", f"projects/{PROJECT}/locations/europe-west1/secrets",
           t)
    assert r.status_code == 200 and r.json() == {}


def test_user_managed_and_regional(gcp):
    t = tok(gcp)
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets", t,
           params={"secretId": "um"},
           json={"replication": {"userManaged": {"replicas": [
               {"location": "europe-west1"}, {"location": "us-east1"}]}}})
    assert r.json()["replication"] == {"userManaged": {"replicas": [
        {"location": "europe-west1"}, {"location": "us-east1"}]}}
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets", t,
           params={"secretId": "bad"}, json={})
    assert g_error(r) == (400, "INVALID_ARGUMENT")
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets", t,
           params={"secretId": "bad/id"},
           json={"replication": {"automatic": {}}})
    assert r.status_code in (400, 404)
    # regional: no replication, its own namespace
    loc = f"projects/{PROJECT}/locations/us-central1"
    r = sm(gcp, "POST", f"{loc}/secrets", t, params={"secretId": "um"},
           json={})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == f"projects/{PROJECT_NUMBER}/locations/" \
        "us-central1/secrets/um"
    assert "replication" not in r.json()
    r = sm(gcp, "POST", f"{loc}/secrets/um:addVersion", t,
           json={"payload": {"data": b64(b"um-payload-Qz7")}})
    assert "replicationStatus" not in r.json()
    r = sm(gcp, "GET", f"{loc}/secrets/um/versions/1:access", t)
    assert r.json()["name"] == f"projects/{PROJECT_NUMBER}/locations/" \
        "us-central1/secrets/um/versions/1"
    assert gcp.access(PROJECT, "um", location="us-central1") == b"um-payload-Qz7"
    assert g_error(sm(gcp, "GET", f"projects/{PROJECT}/secrets/um/versions/"
                      "1:access", t)) == (404, "NOT_FOUND")


def test_payload_limits(gcp):
    t = tok(gcp)
    gcp.create_secret(PROJECT, "big")
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets/big:addVersion", t,
           json={"payload": {"data": b64(b"x" * 65536)}})
    assert r.status_code == 200
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets/big:addVersion", t,
           json={"payload": {"data": b64(b"x" * 65537)}})
    assert g_error(r) == (400, "INVALID_ARGUMENT")
    r = sm(gcp, "POST", f"projects/{PROJECT}/secrets/big:addVersion", t,
           json={"payload": {"data": "!!not base64!!"}})
    assert g_error(r) == (400, "INVALID_ARGUMENT")


# ------------------------------------------------------- auth and perms

def test_unauthenticated(gcp):
    gcp.add_version(PROJECT, "a", b"value-a")
    path = f"projects/{PROJECT}/secrets/a/versions/latest:access"
    r = sm(gcp, "GET", path)
    assert g_error(r) == (401, "UNAUTHENTICATED")
    assert r.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"
    assert g_error(sm(gcp, "GET", path, "ya29.not-issued")) == \
        (401, "UNAUTHENTICATED")
    t = tok(gcp)
    gcp.expire_tokens()
    r = sm(gcp, "GET", path, t)
    assert g_error(r) == (401, "UNAUTHENTICATED")
    assert r.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    t = tok(gcp, lifetime=1)
    assert sm(gcp, "GET", path, t).status_code == 200
    time.sleep(1.2)
    assert sm(gcp, "GET", path, t).status_code == 401
    log = gcp.calls("AccessSecretVersion")
    assert [r.had_token for r in log] == [False, True, True, True, True]
    assert [r.identity for r in log] == [None, None, None, SA_EMAIL, None]


def test_permission_denied_before_not_found(gcp):
    reader = gcp.add_service_account("reader@x.iam.gserviceaccount.com",
                                     perms={"accessor"})
    adder = gcp.add_service_account("adder@x.iam.gserviceaccount.com",
                                    perms={"versionAdder"})
    gcp.add_version(PROJECT, "a", b"value-a")
    tr, ta = tok(gcp, reader), tok(gcp, adder)
    acc = f"projects/{PROJECT}/secrets/a/versions/latest:access"
    assert sm(gcp, "GET", acc, tr).status_code == 200
    r = sm(gcp, "GET", acc, ta)
    assert g_error(r) == (403, "PERMISSION_DENIED")
    assert r.json()["error"]["message"] == \
        "Permission 'secretmanager.versions.access' denied for resource " \
        f"'projects/{PROJECT}/secrets/a/versions/latest' (or it may not " \
        "exist)."
    # 403 even where the secret does not exist
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/zz/versions/1:access",
           ta)
    assert g_error(r) == (403, "PERMISSION_DENIED")
    add = f"projects/{PROJECT}/secrets/a:addVersion"
    body = {"payload": {"data": b64(b"v2")}}
    assert g_error(sm(gcp, "POST", add, tr, json=body)) == \
        (403, "PERMISSION_DENIED")
    assert sm(gcp, "POST", add, ta, json=body).status_code == 200
    # reader cannot create or list
    assert sm(gcp, "GET", f"projects/{PROJECT}/secrets", tr).status_code \
        == 403
    gcp.set_perms(reader, {"accessor", "viewer"})
    assert sm(gcp, "GET", f"projects/{PROJECT}/secrets", tr).status_code \
        == 200
    # an unknown project is a 403 too
    r = sm(gcp, "GET", "projects/other/secrets/a/versions/1:access", tr)
    assert g_error(r) == (403, "PERMISSION_DENIED")
    # a token without the cloud-platform scope
    t = tok(gcp, scopes=["https://www.googleapis.com/auth/userinfo.email"])
    r = sm(gcp, "GET", acc, t)
    assert g_error(r) == (403, "PERMISSION_DENIED")
    assert "scopes" in r.json()["error"]["message"]


# ------------------------------------------------------------------ faults

def test_faults_in_googles_envelope(gcp):
    gcp.add_version(PROJECT, "a", b"value-a")
    t = tok(gcp)
    acc = f"projects/{PROJECT}/secrets/a/versions/latest:access"
    gcp.quota_exceeded_next(1, retry_after=2)
    r = sm(gcp, "GET", acc, t)
    assert g_error(r) == (429, "RESOURCE_EXHAUSTED")
    assert r.headers["Retry-After"] == "2"
    gcp.faults.fail_next(1, 503)
    assert g_error(sm(gcp, "GET", acc, t)) == (503, "UNAVAILABLE")
    gcp.faults.fail_next(1, 500, path=r":access$")
    assert g_error(sm(gcp, "GET", acc, t)) == (500, "INTERNAL")
    gcp.faults.garbage_next(1, "html")
    r = sm(gcp, "GET", acc, t)
    assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
    gcp.faults.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        sm(gcp, "GET", acc, t)
    assert sm(gcp, "GET", acc, t).status_code == 200


def test_corruption_knob(gcp):
    data = b"the-real-value"
    gcp.add_version(PROJECT, "a", data)
    t = tok(gcp)
    acc = f"projects/{PROJECT}/secrets/a/versions/latest:access"

    def get():
        p = sm(gcp, "GET", acc, t).json()["payload"]
        return base64.b64decode(p["data"]), p.get("dataCrc32c")
    gcp.corrupt_next(1, "crc")
    d, c = get()
    assert d == data and int(c) != crc32c(d)
    gcp.corrupt_next(1, "data")
    d, c = get()
    assert d != data and int(c) == crc32c(data) and int(c) != crc32c(d)
    gcp.corrupt_next(1, "no-crc")
    assert get() == (data, None)
    assert get() == (data, str(crc32c(data)))
    assert [r.corrupted for r in gcp.calls("AccessSecretVersion")] == \
        ["crc", "data", "no-crc", None]


# ------------------------------------------------------ token endpoints

def form_post(emu, url, data, **kw):
    return requests.post(url, data=data, verify=emu.ca_file, timeout=10,
                         **kw)


def test_oauth_errors(gcp):
    r = form_post(gcp, gcp.token_url, {"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == \
        "unsupported_grant_type"
    r = form_post(gcp, gcp.token_url, {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": "a.b.c"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # a JWT signed with some other key
    other = gcp.add_service_account("other@x.iam.gserviceaccount.com")
    forged = service_account.Credentials.from_service_account_info(
        dict(other.adc(gcp.token_url), client_email=SA_EMAIL,
             private_key_id=gcp.sa.private_key_id),
        scopes=[CLOUD_PLATFORM])
    with pytest.raises(gexc.RefreshError, match="Invalid JWT Signature"):
        forged.refresh(session_request(gcp))
    user = gcp.add_user("dev@example.com")
    r = form_post(gcp, gcp.token_url, {
        "grant_type": "refresh_token", "client_id": user.client_id,
        "client_secret": "wrong", "refresh_token": user.refresh_token})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = form_post(gcp, gcp.token_url, {
        "grant_type": "refresh_token", "client_id": user.client_id,
        "client_secret": user.client_secret, "refresh_token": "1//nope"})
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_grant", "error_description": "Bad Request"}


def session_request(emu):
    # requests lets REQUESTS_CA_BUNDLE override a session's verify=, so the
    # test CA goes there (the variable is restored after each test)
    os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_file
    return gtransport.Request(requests.Session())


def test_python_google_auth_service_account_jwt(gcp, tmp_path):
    """python3-google-auth signs the JWT; the emulator verifies it with
    the account's public key."""
    path = write_service_account_adc(gcp, gcp.sa, tmp_path / "sa.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    creds = service_account.Credentials.from_service_account_file(
        path, scopes=[CLOUD_PLATFORM])
    creds.refresh(session_request(gcp))
    assert creds.valid and creds.token == gcp.issued[-1].value
    req = gcp.calls("token")[-1]
    assert req.grant == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert req.form_fields == ["assertion", "grant_type"]
    assert req.jwt_header == {"alg": "RS256", "typ": "JWT",
                              "kid": gcp.sa.private_key_id}
    c = req.jwt_claims
    assert set(c) == {"iss", "aud", "scope", "iat", "exp"}
    assert c["iss"] == SA_EMAIL and c["aud"] == gcp.token_url
    assert c["scope"] == CLOUD_PLATFORM and c["exp"] - c["iat"] == 3600
    gcp.add_version(PROJECT, "a", b"value-a")
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/a/versions/1:access",
           creds.token)
    assert r.status_code == 200
    # a short token lifetime shows in expires_in and the credentials' expiry
    gcp.token_lifetime = 5
    creds.refresh(session_request(gcp))
    assert 0 < (creds.expiry - creds.expiry.utcnow()).total_seconds() <= 6
    # a removed key: the signature no longer verifies
    gcp.remove_service_account_key(SA_EMAIL, gcp.sa.private_key_id)
    with pytest.raises(gexc.RefreshError, match="invalid_grant"):
        creds.refresh(session_request(gcp))


def test_python_google_auth_authorized_user(gcp):
    user = gcp.add_user("dev@example.com", perms={"accessor"})
    creds = user_creds.Credentials(
        None, refresh_token=user.refresh_token, token_uri=gcp.token_url,
        client_id=user.client_id, client_secret=user.client_secret)
    creds.refresh(session_request(gcp))
    req = gcp.calls("token")[-1]
    assert req.grant == "refresh_token" and req.identity == "dev@example.com"
    assert req.form_fields == ["client_id", "client_secret", "grant_type",
                               "refresh_token"]
    gcp.add_version(PROJECT, "a", b"value-a")
    r = sm(gcp, "GET", f"projects/{PROJECT}/secrets/a/versions/1:access",
           creds.token)
    assert r.status_code == 200
    assert g_error(sm(gcp, "GET", f"projects/{PROJECT}/secrets", creds.token)
                   ) == (403, "PERMISSION_DENIED")
    gcp.revoke_refresh_token("dev@example.com")
    with pytest.raises(gexc.RefreshError, match="invalid_grant"):
        creds.refresh(session_request(gcp))


PY_METADATA = """
import json
import google.auth
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
import google.auth.transport.requests as t
request = t.Request()
out = {"ping": _metadata.ping(request),
       "project": _metadata.get_project_id(request)}
creds = compute_engine.Credentials()
creds.refresh(request)
out["email"] = creds.service_account_email
out["token"] = creds.token
creds, project = google.auth.default()
out["default_type"] = type(creds).__name__
out["default_project"] = project
print(json.dumps(out))
"""


def test_python_google_auth_metadata(gcp, tmp_path):
    """google-auth 1.5 reads GCE_METADATA_ROOT (host of the metadata
    server) and GCE_METADATA_IP (host it pings) when imported: a child
    process with them set, and no ADC file, finds the metadata server."""
    gcp.add_metadata_account("vm@p.iam.gserviceaccount.com",
                             perms={"accessor"})
    env = {k: v for k, v in os.environ.items() if k not in GOOGLE_VARS}
    env.update(GCE_METADATA_ROOT=gcp.metadata_host,
               GCE_METADATA_IP=gcp.metadata_host,
               CLOUDSDK_CONFIG=str(tmp_path / "none"))
    out = subprocess.run([sys.executable, "-c", PY_METADATA], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["ping"] is True and res["project"] == PROJECT
    assert res["email"] == "vm@p.iam.gserviceaccount.com"
    assert res["token"] == gcp.issued_by("metadata")[0].value
    assert res["default_type"] == "Credentials"
    assert res["default_project"] == PROJECT
    gcp.add_version(PROJECT, "a", b"value-a")
    assert sm(gcp, "GET", f"projects/{PROJECT}/secrets/a/versions/1:access",
              res["token"]).status_code == 200
    md = gcp.calls("metadata")
    assert md and all(r.header("Metadata-Flavor") == "Google" for r in md)
    # it pings /, reads the account's info, then asks for the token by
    # the account's email
    assert {r.path for r in md} == {
        "/", "/computeMetadata/v1/project/project-id",
        "/computeMetadata/v1/instance/service-accounts/default/",
        "/computeMetadata/v1/instance/service-accounts/"
        "vm@p.iam.gserviceaccount.com/token"}


def test_metadata_server_wire(gcp):
    gcp.add_metadata_account()
    base = gcp.metadata_url + "/computeMetadata/v1"
    r = requests.get(base + "/project/project-id", timeout=5)
    assert r.status_code == 403 and r.headers.get("Metadata-Flavor") is None
    h = {"Metadata-Flavor": "Google"}
    r = requests.get(base + "/project/project-id", headers=h, timeout=5)
    assert r.text == PROJECT and r.headers["Metadata-Flavor"] == "Google"
    r = requests.get(base + "/project/numeric-project-id", headers=h,
                     timeout=5)
    assert r.text == PROJECT_NUMBER
    r = requests.get(base + "/instance/service-accounts/default/token",
                     headers=h, timeout=5)
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and \
        3500 < body["expires_in"] <= 3599
    assert r.headers["Metadata-Flavor"] == "Google"
    r = requests.get(base + "/instance/service-accounts/default/token",
                     headers={**h, "X-Forwarded-For": "1.2.3.4"}, timeout=5)
    assert r.status_code == 403
    r = requests.get(base + "/instance/nope", headers=h, timeout=5)
    assert r.status_code == 404
    r = requests.get(base + "/instance/service-accounts/default/email",
                     headers=h, timeout=5)
    assert r.text.endswith("-compute@developer.gserviceaccount.com")


# ---------------------------------------------------------- STS and IAM

def test_sts_and_generate_access_token_wire(gcp, tmp_path):
    aud = gcp.pool_audience()
    ext = gcp.add_external("subject-jwt-1", aud, perms=set(),
                           impersonate=SA_EMAIL)
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": aud, "scope": CLOUD_PLATFORM,
            "requested_token_type":
                "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": "subject-jwt-1",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
    r = form_post(gcp, gcp.sts_url, form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == \
        "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    fed = body["access_token"]
    assert g_error(sm(gcp, "GET", f"projects/{PROJECT}/secrets", fed)) == \
        (403, "PERMISSION_DENIED")
    r = form_post(gcp, gcp.sts_url, dict(form, subject_token="other"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = form_post(gcp, gcp.sts_url, dict(form, audience="//iam/x"))
    assert r.json()["error"] == "invalid_target"
    r = requests.post(gcp.impersonation_url(SA_EMAIL),
                      json={"scope": [CLOUD_PLATFORM], "lifetime": "600s"},
                      headers={"Authorization": f"Bearer {fed}"},
                      verify=gcp.ca_file, timeout=10)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"accessToken", "expireTime"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["expireTime"])
    assert gcp.issued[-1].identity.name == SA_EMAIL
    assert gcp.calls("generateAccessToken")[-1].identity == ext.name
    other = gcp.add_service_account("nobody@x.iam.gserviceaccount.com")
    r = requests.post(gcp.impersonation_url(other.email),
                      json={"scope": [CLOUD_PLATFORM]},
                      headers={"Authorization": f"Bearer {fed}"},
                      verify=gcp.ca_file, timeout=10)
    assert g_error(r) == (403, "PERMISSION_DENIED")


# ------------------------------------------------------------------- CLI

def test_cli_starts_and_serves(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    adc = tmp_path / "sa.json"
    proc = subprocess.Popen(
        [sys.executable, str(EMULATORS / "gcpsm.py"), "--port", "0",
         "--secret", "a=cli-value-1", "--service-account",
         f"cli@p1.iam.gserviceaccount.com={adc}", "--tls",
         str(tmp_path / "tls")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        text = "".join(proc.stdout.readline() for _ in range(4))
        url = re.search(r"on (https://127\.0\.0\.1:\d+)", text)
        md = re.search(r"GCE_METADATA_HOST=(\S+)", text)
        ca = re.search(r"CA certificate: (\S+)", text)
        assert url and md and ca, text + proc.stderr.read()
        assert os.stat(adc).st_mode & 0o777 == 0o600
        r = requests.get(f"http://{md.group(1)}/computeMetadata/v1/instance/"
                         "service-accounts/default/token",
                         headers={"Metadata-Flavor": "Google"}, timeout=5)
        t = r.json()["access_token"]
        r = requests.get(url.group(1) + "/v1/projects/p1/secrets/a/versions/"
                         "latest:access",
                         headers={"Authorization": f"Bearer {t}"},
                         verify=ca.group(1), timeout=5)
        assert base64.b64decode(r.json()["payload"]["data"]) == \
            b"cli-value-1"
        creds = service_account.Credentials.from_service_account_file(
            str(adc), scopes=[CLOUD_PLATFORM])
        os.environ["REQUESTS_CA_BUNDLE"] = ca.group(1)
        creds.refresh(gtransport.Request(requests.Session()))
        assert creds.token.startswith("ya29.")
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


# ------------------------------------------------------------------ Node

def run_node(emu, scenario, env=None, tmp_path=None):
    node = shutil.which("node") or "/usr/bin/node"
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@google-"
                                      "cloud", "secret-manager")), \
        "run scripts/deps (npm ci --prefix tests/node)"
    e = {k: v for k, v in os.environ.items() if k not in GOOGLE_VARS}
    e.update({"NODE_EXTRA_CA_CERTS": emu.ca_file, "GCPEMU_URL": emu.url,
              "GCPEMU_PROJECT": PROJECT,
              # no gcloud ADC file, no metadata server unless asked for
              "CLOUDSDK_CONFIG": "/nonexistent-gcloud",
              "METADATA_SERVER_DETECTION": "none"})
    e.update(env or {})
    out = subprocess.run([node, os.path.join(NODE_DIR, "gcp_sm.mjs"),
                          scenario], env=e, capture_output=True, text=True,
                         timeout=100)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def gerr(e):
    """(HTTP status, Google status) of an error the Node client threw."""
    assert e is not None, "the call succeeded"
    return e["http"], e["status"]


@pytest.mark.timeout_s(120)
def test_node_client_service_account(gcp, tmp_path):
    """The whole client surface with a service_account key: by default the
    Node library signs a JWT itself and sends it as the bearer token (no
    token endpoint), with a scope claim when the endpoint is not Google's."""
    adc = write_service_account_adc(gcp, gcp.sa, tmp_path / "sa.json")
    for i in range(3):
        gcp.create_secret(PROJECT, f"n-{i}")
    gcp.add_version(PROJECT, "reg", b"regional-value",
                    location="us-central1")
    res = run_node(gcp, "adc_full", {
        "GOOGLE_APPLICATION_CREDENTIALS": adc,
        "GCPEMU_CRC_TWO": str(crc32c(b"value-two"))})
    name = f"projects/{PROJECT_NUMBER}/secrets/from-node"
    assert res["created"] == name
    assert gerr(res["exists"]) == (409, "ALREADY_EXISTS")
    # the library sends no CRC by itself; state comes back as the enum
    # number it asked for ($alt=json;enum-encoding=int)
    assert res["v1"] == {"name": f"{name}/versions/1", "state": "ENABLED",
                         "checksummed": False}
    assert res["v2"] == {"name": f"{name}/versions/2", "state": "ENABLED",
                         "checksummed": True}
    assert gerr(res["bad_crc"]) == (400, "INVALID_ARGUMENT")
    assert res["latest"] == {"name": f"{name}/versions/2",
                             "data": "value-two",
                             "crc": str(crc32c(b"value-two"))}
    assert res["by_number"]["data"] == "value-one"
    assert res["by_alias"] == {"name": f"{name}/versions/1",
                               "data": "value-one",
                               "crc": str(crc32c(b"value-one"))}
    assert res["aliases"] == {"prod": "1"}
    assert res["labels"] == {"via": "node"}
    assert sorted(n.rsplit("/", 1)[1] for n in res["names"]) == \
        ["from-node", "n-0", "n-1", "n-2"]
    assert res["versions"] == [["2", "ENABLED"], ["1", "ENABLED"]]
    assert gerr(res["disabled"]) == (400, "FAILED_PRECONDITION")
    assert "DISABLED state" in res["disabled"]["message"]
    assert gerr(res["missing"]) == (404, "NOT_FOUND")
    assert res["regional"]["data"] == "regional-value"
    assert res["rewritten"] == []
    calls = gcp.sm_calls()
    # what the REST transport sent
    acc = gcp.calls("AccessSecretVersion")[0]
    assert acc.method == "GET" and \
        acc.path == f"/v1/{name}/versions/latest:access"
    assert acc.qs("$alt") == "json;enum-encoding=int"
    lst = [r for r in gcp.calls("ListSecrets")]
    assert [r.qs("pageSize") for r in lst] == ["2", "2"]
    assert lst[1].qs("pageToken")
    upd = gcp.calls("UpdateSecret")[0]
    # the mask goes as the caller wrote it (field names in either case are
    # accepted by Google)
    assert upd.method == "PATCH" and upd.qs("updateMask") == \
        "version_aliases"
    assert json.loads(upd.body)["versionAliases"] == {"prod": "1"}
    add = gcp.calls("AddSecretVersion")
    assert json.loads(add[1].body)["payload"]["dataCrc32c"] == \
        str(crc32c(b"value-two"))
    assert "dataCrc32c" not in json.loads(add[0].body)["payload"]
    assert all(r.auth_kind == "self-signed-jwt" for r in calls
               if r.status == 200)
    assert gcp.count_op("token") == 0
    header, claims = gcp.jwt_claims[0]
    assert header == {"alg": "RS256", "typ": "JWT",
                      "kid": gcp.sa.private_key_id}
    assert claims["iss"] == claims["sub"] == SA_EMAIL
    assert claims["scope"] == CLOUD_PLATFORM and "aud" not in claims
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.timeout_s(120)
def test_node_jwt_token_endpoint_and_permission_denied(gcp, tmp_path):
    reader = gcp.add_service_account("reader@x.iam.gserviceaccount.com",
                                     perms={"accessor"})
    adc = write_service_account_adc(gcp, reader, tmp_path / "r.json")
    gcp.add_version(PROJECT, "db", b"db-password-1")
    res = run_node(gcp, "jwt_token_endpoint", {
        "GOOGLE_APPLICATION_CREDENTIALS": adc, "GCPEMU_SECRET": "db"})
    assert res["read"]["data"] == "db-password-1"
    assert gerr(res["denied"]) == (403, "PERMISSION_DENIED")
    assert res["token"] == gcp.issued_by("token")[0].value
    assert res["token_again"] == res["token"]   # cached
    assert res["rewritten"] == ["oauth2.googleapis.com/token"]
    assert res["client_type"] == "JWT"
    req = gcp.calls("token")[0]
    assert req.form_fields == ["assertion", "grant_type"]
    # gtoken: no kid, aud is Google's token URL whatever token_uri says
    assert req.jwt_header == {"alg": "RS256"}
    c = req.jwt_claims
    assert set(c) == {"iss", "scope", "aud", "exp", "iat"}
    assert c["aud"] == "https://oauth2.googleapis.com/token"
    assert c["iss"] == reader.email and c["scope"] == CLOUD_PLATFORM
    assert all(r.identity == reader.email for r in gcp.sm_calls())


def _read_checks(gcp, res, identity, data=b"db-password-1"):
    assert res["read"]["data"] == data.decode()
    assert res["read"]["crc"] == str(crc32c(data))
    assert gerr(res["denied"]) == (403, "PERMISSION_DENIED")
    calls = gcp.sm_calls()
    assert [c.op for c in calls] == ["AccessSecretVersion",
                                     "AddSecretVersion"]
    assert all(c.identity == identity and c.had_token for c in calls)


@pytest.mark.timeout_s(120)
def test_node_authorized_user(gcp, tmp_path):
    user = gcp.add_user("dev@example.com", perms={"accessor"})
    adc = write_authorized_user_adc(gcp, user, tmp_path / "adc.json")
    gcp.add_version(PROJECT, "db", b"db-password-1")
    res = run_node(gcp, "adc_read", {"GOOGLE_APPLICATION_CREDENTIALS": adc,
                                     "GCPEMU_SECRET": "db"})
    _read_checks(gcp, res, "dev@example.com")
    assert res["client_type"] == "UserRefreshClient"
    # pointed at the emulator by endpoints.oauth2TokenUrl, not rewritten
    assert res["rewritten"] == []
    tokens = gcp.calls("token")
    assert tokens and all(t.grant == "refresh_token" for t in tokens)
    assert tokens[0].form_fields == ["client_id", "client_secret",
                                     "grant_type", "refresh_token"]


@pytest.mark.timeout_s(120)
def test_node_external_account_with_impersonation(gcp, tmp_path):
    """Workload identity federation: a file-sourced subject token goes to
    STS (token_url of the file), the federated token to generateAccessToken
    (service_account_impersonation_url), and the service account's token
    to Secret Manager."""
    reader = gcp.add_service_account("wif-reader@x.iam.gserviceaccount.com",
                                     perms={"accessor"})
    subject = tmp_path / "oidc-token"
    subject.write_text("eyJ-subject-token-from-the-workload")
    ext = gcp.add_external("eyJ-subject-token-from-the-workload",
                           impersonate=reader.email)
    adc = write_external_account_adc(gcp, tmp_path / "wif.json",
                                     gcp.pool_audience(),
                                     subject_token_file=subject,
                                     impersonate=reader.email)
    gcp.add_version(PROJECT, "db", b"db-password-1")
    res = run_node(gcp, "adc_read", {"GOOGLE_APPLICATION_CREDENTIALS": adc,
                                     "GCPEMU_SECRET": "db"})
    _read_checks(gcp, res, reader.email)
    assert res["client_type"] == "IdentityPoolClient"
    assert res["rewritten"] == []
    sts = gcp.calls("sts")
    assert sts and all(r.status == 200 and r.identity == ext.name
                       for r in sts)
    form = dict(x.split("=", 1) for x in sts[0].body.decode().split("&"))
    assert sorted(form) == ["audience", "grant_type", "requested_token_type",
                            "scope", "subject_token", "subject_token_type"]
    assert requests.utils.unquote(form["scope"]) == CLOUD_PLATFORM
    gen = gcp.calls("generateAccessToken")
    assert gen and gen[0].identity == ext.name and gen[0].status == 200
    body = json.loads(gen[0].body)
    assert body["scope"] == [CLOUD_PLATFORM] and body["lifetime"] == "3600s"
    # without the grant to impersonate: 403 from IAM credentials
    gcp.identity(reader.email).impersonators.clear()
    gcp.clear_requests()
    with pytest.raises(AssertionError, match="PERMISSION_DENIED|403"):
        run_node(gcp, "adc_read", {"GOOGLE_APPLICATION_CREDENTIALS": adc,
                                   "GCPEMU_SECRET": "db"})


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_node_external_account_url_sourced(gcp, tmp_path, fmt):
    """A URL-sourced subject token (credential_source.url with headers, a
    text or JSON answer), no impersonation: the federated principal itself
    reads. (google-auth-library reads a URL answer whose Content-Type is
    neither text/* nor JSON as a Blob and sends "[object Blob]".)"""
    ext = gcp.add_external("eyJ-url-sourced-" + fmt, perms={"accessor"})
    url = gcp.serve_subject_token("eyJ-url-sourced-" + fmt, fmt)
    adc = write_external_account_adc(
        gcp, tmp_path / "wif.json", gcp.pool_audience(),
        subject_token_url=url, url_headers={"X-Test": "yes"},
        url_json_field="id_token" if fmt == "json" else None)
    gcp.add_version(PROJECT, "db", b"db-password-1")
    res = run_node(gcp, "adc_read", {"GOOGLE_APPLICATION_CREDENTIALS": adc,
                                     "GCPEMU_SECRET": "db"})
    _read_checks(gcp, res, ext.name)
    src = gcp.calls("subject-token")
    assert src and src[0].header("X-Test") == "yes"
    assert gcp.count_op("generateAccessToken") == 0


@pytest.mark.timeout_s(120)
def test_node_impersonated_service_account(gcp, tmp_path):
    user = gcp.add_user("dev@example.com", perms=set())
    target = gcp.add_service_account("deploy@x.iam.gserviceaccount.com",
                                     perms={"accessor"})
    gcp.allow_impersonation("dev@example.com", target.email)
    adc = write_impersonated_adc(gcp, tmp_path / "imp.json", user.adc(),
                                 target.email)
    gcp.add_version(PROJECT, "db", b"db-password-1")
    res = run_node(gcp, "impersonated", {
        "GOOGLE_APPLICATION_CREDENTIALS": adc, "GCPEMU_SECRET": "db"})
    _read_checks(gcp, res, target.email)
    assert res["client_type"] == "Impersonated"
    assert res["rewritten"] == []
    gen = gcp.calls("generateAccessToken")
    assert gen and gen[0].identity == "dev@example.com"
    assert gcp.calls("token")[0].grant == "refresh_token"


@pytest.mark.timeout_s(120)
def test_node_metadata_server(gcp):
    gcp.add_metadata_account("vm@p.iam.gserviceaccount.com",
                             perms={"accessor"})
    gcp.add_version(PROJECT, "db", b"db-password-1")
    res = run_node(gcp, "adc_read", {"GCE_METADATA_HOST": gcp.metadata_host,
                                     "METADATA_SERVER_DETECTION":
                                     "ping-only",
                                     "GCPEMU_WANT_PROJECT": "1",
                                     "GCPEMU_SECRET": "db"})
    _read_checks(gcp, res, "vm@p.iam.gserviceaccount.com")
    assert res["client_type"] == "Compute"
    assert res["project"] == PROJECT
    md = gcp.calls("metadata")
    assert all(r.header("Metadata-Flavor") == "Google" for r in md)
    paths = {r.path for r in md}
    assert "/computeMetadata/v1/instance/service-accounts/default/token" \
        in paths and "/computeMetadata/v1/project/project-id" in paths
