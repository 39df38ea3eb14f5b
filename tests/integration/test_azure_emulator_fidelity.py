"""The Azure Key Vault emulator (tests/emulators/azurekv.py) against the
real clients: Debian python3-azure (azure-keyvault-secrets SecretClient
with azure-identity's ClientSecretCredential, ManagedIdentityCredential
over IMDS, App Service and workload identity, ClientAssertionCredential),
and npm @azure/keyvault-secrets + @azure/identity under Node
(tests/node). Raw HTTP (python3-requests) where the exact wire shape
matters: that is what the C provider must speak.

No FUSE here. Nothing skips: scripts/deps installs python3-azure and the
npm packages.
"""

import json
import os
import re
import shutil
import sys
import subprocess
import time

import pytest

pytest.register_assert_rewrite("azure_fixtures")
pytest_plugins = ["azure_fixtures"]

from azure_fixtures import APP_ID, APP_SECRET, EMULATORS  # noqa: E402

import requests  # noqa: E402
from azure.core.exceptions import (  # noqa: E402
    ClientAuthenticationError, HttpResponseError, ResourceExistsError,
    ResourceNotFoundError)
from azure.identity import (  # noqa: E402
    ClientAssertionCredential, ClientSecretCredential,
    ManagedIdentityCredential)
from azure.keyvault.secrets import SecretClient  # noqa: E402
from azure.keyvault.secrets._shared import \
    http_challenge_cache  # noqa: E402

HEX32 = re.compile(r"[0-9a-f]{32}\Z")
IDENTITY_VARS = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE",
                 "AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT",
                 "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT",
                 "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
                 "AZURE_REGIONAL_AUTHORITY_NAME")
NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")


@pytest.fixture(autouse=True)
def clean_identity_env(monkeypatch):
    """No ambient Azure configuration, and no challenge cached by an
    earlier test (the SDK caches challenges per host:port, process-wide)."""
    for k in IDENTITY_VARS:
        monkeypatch.delenv(k, raising=False)
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def secret_credential(emu, client_id=APP_ID, secret=APP_SECRET, **kw):
    # instance_discovery=False: MSAL would otherwise ask
    # login.microsoftonline.com whether the emulator is a known authority
    return ClientSecretCredential(emu.tenant, client_id, secret,
                                  authority=emu.login_url,
                                  instance_discovery=False,
                                  connection_verify=emu.ca_file, **kw)


def client(emu, credential=None, **kw):
    # verify_challenge_resource=False: the challenge's resource
    # (vault.azure.net) is not a suffix of 127.0.0.1
    kw.setdefault("retry_backoff_factor", 0.1)
    return SecretClient(emu.vault_url, credential or secret_credential(emu),
                        verify_challenge_resource=False,
                        connection_verify=emu.ca_file, **kw)


def bearer(r):
    auth = r.header("Authorization")
    return auth.split(" ", 1)[1] if auth else None


def raw(emu, method, path, token=None, api="7.4", **kw):
    """A request with requests, bypassing the SDK."""
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    params = kw.pop("params", {})
    if api is not None:
        params["api-version"] = api
    return requests.request(method, emu.url + path, headers=headers,
                            params=params, verify=emu.ca_file, timeout=10,
                            **kw)


def token_for(emu, client_id=APP_ID, secret=APP_SECRET,
              scope="https://vault.azure.net/.default"):
    r = requests.post(f"{emu.login_url}/{emu.tenant}/oauth2/v2.0/token",
                      data={"client_id": client_id, "client_secret": secret,
                            "grant_type": "client_credentials",
                            "scope": scope}, verify=emu.ca_file, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


# ----------------------------------------------------- the challenge dance

def test_challenge_then_token_then_get(azure):
    vid = azure.set_secret("db-password", "pw-first-0001")
    s = client(azure).get_secret("db-password")
    assert s.value == "pw-first-0001"
    assert s.properties.version == vid
    assert s.id == f"{azure.url}/secrets/db-password/{vid}"

    reqs = azure.requests
    assert [r.op for r in reqs] == ["GetSecret", "openid", "token",
                                    "GetSecret"]
    first, openid, tok, get = reqs
    # the first request carries no token, gets the challenge
    assert first.header("Authorization") is None and first.status == 401
    # latest is asked for with a trailing slash, and api-version always
    assert first.path == get.path == "/secrets/db-password/"
    assert first.qs("api-version") and get.qs("api-version")
    assert openid.path == \
        f"/{azure.tenant}/v2.0/.well-known/openid-configuration"
    form = dict(x.split("=", 1) for x in tok.body.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == APP_ID
    assert requests.utils.unquote(form["scope"]) == \
        "https://vault.azure.net/.default"
    assert get.status == 200 and bearer(get) == azure.issued[0].value
    assert azure.issued[0].identity.client_id == APP_ID


def test_challenge_tenant_and_authority_host(azure):
    """The SDK takes the tenant from the challenge's authorization URL and
    asks for the scope it names; the host part is not used."""
    azure.challenge_authority = azure.login_url
    azure.challenge_scope = True
    azure.set_secret("x", "value-xyz-1")
    r = raw(azure, "GET", "/secrets/x/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{azure.login_url}/{azure.tenant}", '
        'resource="https://vault.azure.net", '
        'scope="https://vault.azure.net/.default"')
    assert r.json() == {"error": {"code": "Unauthorized", "message":
                                  "AKV10000: Request is missing a Bearer "
                                  "or PoP token."}}
    assert client(azure).get_secret("x").value == "value-xyz-1"


def test_put_first_probe_has_no_body(azure):
    """A write's first, unauthenticated attempt goes without its body."""
    client(azure).set_secret("new-one", "value-abc-42")
    puts = azure.calls("SetSecret")
    assert [p.status for p in puts] == [401, 200]
    assert puts[0].body == b"" and puts[0].header("Authorization") is None
    assert json.loads(puts[1].body)["value"] == "value-abc-42"
    assert puts[1].path == "/secrets/new-one"


def test_token_fetched_once_and_reused(azure):
    azure.set_secret("a", "value-aaaa")
    c = client(azure)
    for _ in range(5):
        assert c.get_secret("a").value == "value-aaaa"
    assert azure.count_op("token") == 1
    gets = azure.calls("GetSecret")
    assert [g.status for g in gets] == [401] + [200] * 5
    assert len({bearer(g) for g in gets[1:]}) == 1


def test_token_expiry_gets_a_new_token(azure):
    """MSAL treats a token with under 5 minutes left as expired; a short
    lifetime makes every call fetch one, and the emulator never sees a
    stale token."""
    azure.token_lifetime = 2
    azure.set_secret("a", "value-aaaa")
    c = client(azure)
    c.get_secret("a")
    time.sleep(2.5)
    c.get_secret("a")
    assert azure.count_op("token") == 2
    gets = [g for g in azure.calls("GetSecret") if g.status == 200]
    assert len(gets) == 2 and bearer(gets[0]) != bearer(gets[1])
    assert bearer(gets[1]) == azure.issued[1].value
    # the first token is refused now, with the challenge
    r = raw(azure, "GET", "/secrets/a/", token=bearer(gets[0]))
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers


def test_token_rejected_by_vault_fails_client(azure):
    """A token the vault stops accepting (here: expired behind the
    client's back) makes the SDK re-run the challenge and fail with 401:
    its cached token is still good in its own eyes."""
    azure.set_secret("a", "value-aaaa")
    c = client(azure)
    c.get_secret("a")
    azure.expire_tokens()
    with pytest.raises(ClientAuthenticationError) as e:
        c.get_secret("a")
    assert e.value.status_code == 401


def test_wrong_client_secret(azure):
    with pytest.raises(ClientAuthenticationError) as e:
        client(azure, secret_credential(azure, secret="nope")) \
            .get_secret("a")
    assert "AADSTS7000215" in str(e.value)
    assert azure.calls("token")[0].status == 401
    assert azure.calls("token")[0].aad_error == "invalid_client"


# ------------------------------------------------------------ operations

def test_set_and_get_latest_and_by_version(azure):
    c = client(azure)
    v1 = c.set_secret("api-key", "value-one-111")
    v2 = c.set_secret("api-key", "value-two-222")
    assert HEX32.match(v1.properties.version)
    assert v1.properties.version != v2.properties.version
    assert azure.versions("api-key") == [v1.properties.version,
                                         v2.properties.version]
    assert c.get_secret("api-key").value == "value-two-222"
    assert c.get_secret("api-key", v1.properties.version).value == \
        "value-one-111"
    assert azure.get_secret("api-key") == "value-two-222"
    p = c.get_secret("api-key").properties
    assert p.enabled is True and p.recoverable_days == 90
    assert p.recovery_level == "Recoverable+Purgeable"
    assert p.created_on is not None and p.updated_on is not None


def test_tags_and_content_type_round_trip(azure):
    c = client(azure)
    c.set_secret("conf", "value-cfg-1", tags={"team": "billing", "env": "p"},
                 content_type="application/json")
    s = c.get_secret("conf")
    assert s.properties.tags == {"team": "billing", "env": "p"}
    assert s.properties.content_type == "application/json"
    v = azure.version("conf")
    assert v.tags == {"team": "billing", "env": "p"}
    assert v.content_type == "application/json"
    azure.set_secret("other", "value-oth-1", tags={"k": "v"},
                     content_type="text/plain")
    o = c.get_secret("other")
    assert (o.properties.tags, o.properties.content_type) == \
        ({"k": "v"}, "text/plain")
    props = {p.name: p for p in c.list_properties_of_secrets()}
    assert props["conf"].tags == {"team": "billing", "env": "p"}
    assert props["other"].content_type == "text/plain"


def test_list_pages_across_more_than_25(azure):
    names = {f"s-{i:02d}" for i in range(31)}
    for n in names:
        azure.set_secret(n, f"value-of-{n}")
    c = client(azure)
    got = [p.name for p in c.list_properties_of_secrets()]
    assert sorted(got) == sorted(names)
    lists = [r for r in azure.calls("GetSecrets") if r.status == 200]
    assert len(lists) == 2
    assert lists[0].qs("$skiptoken") is None and lists[1].qs("$skiptoken")
    # smaller pages when asked for
    azure.clear_requests()
    got = [p.name for p in c.list_properties_of_secrets(max_page_size=10)]
    assert sorted(got) == sorted(names)
    lists = azure.calls("GetSecrets")
    assert [r.qs("maxresults") for r in lists] == ["10"] * 4


def test_list_wire_shape(azure):
    for i in range(3):
        azure.set_secret(f"w-{i}", f"value-wire-{i}")
    tok = token_for(azure)
    r = raw(azure, "GET", "/secrets", tok, params={"maxresults": "2"})
    assert r.status_code == 200
    body = r.json()
    assert [it["id"] for it in body["value"]] == \
        [f"{azure.url}/secrets/w-0", f"{azure.url}/secrets/w-1"]
    assert all("value" not in it for it in body["value"])
    nxt = body["nextLink"]
    assert nxt.startswith(f"{azure.url}/secrets?") and "$skiptoken=" in \
        requests.utils.unquote(nxt)
    r2 = requests.get(nxt, headers={"Authorization": f"Bearer {tok}"},
                      verify=azure.ca_file, timeout=10)
    assert [it["id"] for it in r2.json()["value"]] == \
        [f"{azure.url}/secrets/w-2"]
    assert r2.json()["nextLink"] is None
    bad = raw(azure, "GET", "/secrets", tok, params={"maxresults": "26"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "BadParameter"


def test_versions_list(azure):
    vids = [azure.set_secret("rot", f"value-rot-{i}") for i in range(4)]
    azure.disable("rot", vids[1])
    c = client(azure)
    props = list(c.list_properties_of_secret_versions("rot"))
    assert sorted(p.version for p in props) == sorted(vids)
    assert {p.version: p.enabled for p in props}[vids[1]] is False
    with pytest.raises(ResourceNotFoundError):
        list(c.list_properties_of_secret_versions("nope"))


def test_disabled_secret_error(azure):
    azure.set_secret("off", "value-off-1")
    azure.disable("off")
    c = client(azure)
    with pytest.raises(HttpResponseError) as e:
        c.get_secret("off")
    assert e.value.status_code == 403
    assert e.value.error.code == "Forbidden"
    assert e.value.error.innererror == {"code": "SecretDisabled"}
    # enable and disable through the client (PATCH)
    c.update_secret_properties("off", enabled=True)
    assert c.get_secret("off").value == "value-off-1"
    p = c.update_secret_properties("off", enabled=False, tags={"why": "x"})
    assert p.enabled is False and p.tags == {"why": "x"}
    assert azure.calls("UpdateSecret")[-1].method == "PATCH"
    with pytest.raises(HttpResponseError) as e:
        c.get_secret("off")
    assert e.value.status_code == 403


def test_not_found(azure):
    c = client(azure)
    with pytest.raises(ResourceNotFoundError) as e:
        c.get_secret("missing")
    assert e.value.status_code == 404
    assert e.value.error.code == "SecretNotFound"
    azure.set_secret("there", "value-there")
    with pytest.raises(ResourceNotFoundError):
        c.get_secret("there", "0" * 32)


def test_soft_delete_recover_and_conflict(azure):
    azure.set_secret("gone", "value-gone-1", tags={"a": "b"})
    c = client(azure)
    d = c.begin_delete_secret("gone").result()
    assert d.name == "gone"
    assert d.recovery_id == f"{azure.url}/deletedsecrets/gone"
    assert d.deleted_date is not None and d.scheduled_purge_date is not None
    assert azure.deleted_names() == ["gone"]
    with pytest.raises(ResourceNotFoundError):
        c.get_secret("gone")
    assert [s.name for s in c.list_deleted_secrets()] == ["gone"]
    assert c.get_deleted_secret("gone").properties.tags == {"a": "b"}
    with pytest.raises(ResourceExistsError) as e:
        c.set_secret("gone", "value-again")
    assert e.value.status_code == 409
    assert e.value.error.code == "Conflict"
    assert e.value.error.innererror == \
        {"code": "ObjectIsDeletedButRecoverable"}
    c.begin_recover_deleted_secret("gone").result()
    assert c.get_secret("gone").value == "value-gone-1"
    # delete and purge: the name is free again, history gone
    c.begin_delete_secret("gone").result()
    c.purge_deleted_secret("gone")
    with pytest.raises(ResourceNotFoundError):
        c.get_deleted_secret("gone")
    c.set_secret("gone", "value-fresh")
    assert len(azure.versions("gone")) == 1


def test_permissions_per_identity(azure):
    azure.add_client("reader-app", "reader-secret-123", perms={"get"})
    azure.set_secret("a", "value-aaaa")
    c = client(azure, secret_credential(azure, "reader-app",
                                        "reader-secret-123"))
    assert c.get_secret("a").value == "value-aaaa"
    with pytest.raises(HttpResponseError) as e:
        list(c.list_properties_of_secrets())
    assert e.value.status_code == 403
    assert e.value.error.innererror == {"code": "AccessDenied"}
    with pytest.raises(HttpResponseError) as e:
        c.set_secret("a", "value-bbbb")
    assert e.value.status_code == 403
    azure.set_perms("reader-app", {"get", "list"})
    assert [p.name for p in c.list_properties_of_secrets()] == ["a"]


# ----------------------------------------------------- wire-level rules

def test_api_version_required_and_checked(azure):
    tok = token_for(azure)
    r = raw(azure, "GET", "/secrets/a/", tok, api=None)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "MissingApiVersionParameter"
    r = raw(azure, "GET", "/secrets/a/", tok, api="1.0")
    assert r.status_code == 400 and \
        r.json()["error"]["code"] == "BadParameter"


def test_get_latest_with_and_without_slash(azure):
    vid = azure.set_secret("a", "value-aaaa")
    tok = token_for(azure)
    for path in ("/secrets/a/", "/secrets/a", f"/secrets/a/{vid}",
                 "/secrets/A/"):
        r = raw(azure, "GET", path, tok)
        assert r.status_code == 200, path
        body = r.json()
        assert body["value"] == "value-aaaa"
        assert body["id"] == f"{azure.url}/secrets/a/{vid}"
        assert set(body["attributes"]) == {"enabled", "created", "updated",
                                           "recoverableDays",
                                           "recoveryLevel"}
        assert isinstance(body["attributes"]["created"], int)


def test_bad_tokens_get_the_challenge(azure):
    azure.set_secret("a", "value-aaaa")
    other = token_for(azure, scope="https://management.azure.com/.default")
    expired = azure.issue_token(APP_ID, lifetime=-1).value
    for tok, msg in (("not-a-token", "AKV10000"), (other, "AKV10022"),
                     (expired, "AKV10000")):
        r = raw(azure, "GET", "/secrets/a/", tok)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith(
            'Bearer authorization="https://login.microsoftonline.com/'
            f'{azure.tenant}", resource="https://vault.azure.net"')
        assert r.json()["error"]["code"] == "Unauthorized"
        assert r.json()["error"]["message"].startswith(msg)


def test_token_endpoint_errors(azure):
    url = f"{azure.login_url}/{azure.tenant}/oauth2/v2.0/token"
    base = {"client_id": APP_ID, "grant_type": "client_credentials",
            "scope": "https://vault.azure.net/.default"}
    cases = [({**base, "client_secret": "wrong"}, 401, "invalid_client",
              "AADSTS7000215"),
             ({**base, "client_id": "nobody", "client_secret": "x"}, 400,
              "unauthorized_client", "AADSTS700016"),
             ({**base, "client_secret": APP_SECRET,
               "scope": "https://vault.azure.net"}, 400, "invalid_scope",
              "AADSTS1002012"),
             ({**base, "client_assertion": "x", "client_assertion_type":
               "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
              400, "invalid_client", "AADSTS700213")]
    for form, status, err, text in cases:
        r = requests.post(url, data=form, verify=azure.ca_file, timeout=10)
        assert r.status_code == status, form
        assert r.json()["error"] == err
        assert r.json()["error_description"].startswith(text)
    r = requests.post(f"{azure.login_url}/other-tenant/oauth2/v2.0/token",
                      data={**base, "client_secret": APP_SECRET},
                      verify=azure.ca_file, timeout=10)
    assert r.status_code == 400 and "AADSTS90002" in r.text
    ok = requests.post(url, data={**base, "client_secret": APP_SECRET},
                       verify=azure.ca_file, timeout=10).json()
    assert ok["token_type"] == "Bearer"
    assert isinstance(ok["expires_in"], int) and \
        isinstance(ok["ext_expires_in"], int)


# -------------------------------------------------- managed identities

def test_managed_identity_over_imds(azure, monkeypatch):
    mi = azure.add_managed_identity()
    azure.set_secret("a", "value-aaaa")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure.imds_url)
    c = client(azure, ManagedIdentityCredential())
    assert c.get_secret("a").value == "value-aaaa"
    imds = azure.calls("imds")
    assert len(imds) == 1 and imds[0].status == 200
    assert imds[0].header("Metadata") == "true"
    assert imds[0].qs("api-version") == "2018-02-01"
    assert imds[0].qs("resource") == "https://vault.azure.net"
    assert imds[0].qs("client_id") is None
    assert azure.issued_by("imds")[0].identity is mi
    get = azure.calls("GetSecret")[-1]
    assert bearer(get) == azure.issued_by("imds")[0].value


def test_imds_wire_shape(azure):
    azure.add_managed_identity()
    url = azure.imds_url + "/metadata/identity/oauth2/token"
    q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
    r = requests.get(url, params=q, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    body = requests.get(url, params=q, headers={"Metadata": "true"},
                        timeout=10).json()
    assert isinstance(body["expires_in"], str)
    assert isinstance(body["expires_on"], str)
    assert int(body["expires_on"]) > time.time()
    assert body["resource"] == "https://vault.azure.net"
    azure.imds_numbers = True
    body = requests.get(url, params=q, headers={"Metadata": "true"},
                        timeout=10).json()
    assert isinstance(body["expires_in"], int)
    assert isinstance(body["expires_on"], int)
    r = requests.get(url, params={**q, "client_id": "unknown"},
                     headers={"Metadata": "true"}, timeout=10)
    assert r.status_code == 400


def test_imds_user_assigned_and_numbers(azure, monkeypatch):
    azure.add_managed_identity()
    ua = azure.add_managed_identity("7e57a55e-0000-4000-8000-00000000cafe",
                                    perms={"get"})
    azure.imds_numbers = True
    azure.set_secret("a", "value-aaaa")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure.imds_url)
    c = client(azure, ManagedIdentityCredential(client_id=ua.client_id))
    assert c.get_secret("a").value == "value-aaaa"
    assert azure.calls("imds")[0].qs("client_id") == ua.client_id
    with pytest.raises(HttpResponseError) as e:
        list(c.list_properties_of_secrets())
    assert e.value.error.innererror == {"code": "AccessDenied"}


def test_imds_faults_are_retried(azure, monkeypatch):
    """azure-identity retries IMDS 429 and 5xx (and not 410 in Debian's
    1.13.0b2: it fails at once)."""
    azure.add_managed_identity()
    azure.set_secret("a", "value-aaaa")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure.imds_url)
    azure.faults.fail_next(1, 500, path=r"^/metadata/")
    azure.imds_status_next(1, 429)
    c = client(azure, ManagedIdentityCredential())
    assert c.get_secret("a").value == "value-aaaa"
    assert [r.status for r in azure.calls("imds")] == [500, 429, 200]
    http_challenge_cache.clear()
    azure.clear_requests()
    azure.imds_status_next(1, 410)
    with pytest.raises(ClientAuthenticationError):
        client(azure, ManagedIdentityCredential()).get_secret("a")
    assert [r.status for r in azure.calls("imds")] == [410]


def test_app_service_identity(azure, monkeypatch):
    azure.add_managed_identity()
    azure.set_secret("a", "value-aaaa")
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", azure.identity_header)
    c = client(azure, ManagedIdentityCredential())
    assert c.get_secret("a").value == "value-aaaa"
    (req,) = azure.calls("appservice")
    assert req.header("X-IDENTITY-HEADER") == azure.identity_header
    assert req.qs("api-version") == "2019-08-01"
    assert req.qs("resource") == "https://vault.azure.net"
    http_challenge_cache.clear()
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ClientAuthenticationError):
        client(azure, ManagedIdentityCredential()).get_secret("a")
    assert azure.calls("appservice")[-1].status == 401


def test_workload_identity_token_file(azure, monkeypatch, tmp_path):
    """ManagedIdentityCredential with the webhook's variables exchanges the
    federated token file's content (azure-identity 1.13.0b2 has no
    WorkloadIdentityCredential class; this is its code path)."""
    fed_client = "c0ffee00-0000-4000-8000-00000000f00d"
    azure.add_federated(fed_client, "federated-token-one")
    azure.set_secret("a", "value-aaaa")
    tf = tmp_path / "azure-identity-token"
    tf.write_text("federated-token-one")
    for k, v in {"AZURE_AUTHORITY_HOST": azure.login_url,
                 "AZURE_TENANT_ID": azure.tenant,
                 "AZURE_CLIENT_ID": fed_client,
                 "AZURE_FEDERATED_TOKEN_FILE": str(tf)}.items():
        monkeypatch.setenv(k, v)
    c = client(azure, ManagedIdentityCredential(
        connection_verify=azure.ca_file))
    assert c.get_secret("a").value == "value-aaaa"
    (tok,) = azure.calls("token")
    form = dict(requests.utils.unquote(x).split("=", 1)
                for x in tok.body.decode().split("&"))
    assert form["client_assertion"] == "federated-token-one"
    assert form["client_assertion_type"] == \
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["client_id"] == fed_client
    assert "client_secret" not in form


def test_client_assertion_rotation(azure, monkeypatch):
    """Debian's azure-identity 1.13.0b2 ClientAssertionCredential raises
    TypeError given any keyword argument (it hands them to
    object.__init__), so authority and CA come from the environment."""
    fed_client = "c0ffee00-0000-4000-8000-00000000beef"
    azure.add_federated(fed_client, "assertion-one")
    azure.set_secret("a", "value-aaaa")
    azure.token_lifetime = 1        # every call fetches a token
    current = ["assertion-one"]
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", azure.login_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azure.ca_file)
    cred = ClientAssertionCredential(azure.tenant, fed_client,
                                     lambda: current[0])
    c = client(azure, cred)
    assert c.get_secret("a").value == "value-aaaa"
    azure.add_federated(fed_client, "assertion-two")
    azure.reject_assertion(fed_client, "assertion-one")
    time.sleep(1.1)
    with pytest.raises(ClientAuthenticationError) as e:
        c.get_secret("a")
    assert "AADSTS700213" in str(e.value)
    current[0] = "assertion-two"
    time.sleep(1.1)
    assert c.get_secret("a").value == "value-aaaa"
    assert [r.status for r in azure.calls("token")] == [200, 400, 200]


# ---------------------------------------------------------------- faults

def test_429_with_retry_after_is_retried(azure):
    azure.set_secret("a", "value-aaaa")
    c = client(azure)
    c.get_secret("a")
    azure.faults.rate_limit_next(1, retry_after=1, path=r"^/secrets/a/$")
    t0 = time.monotonic()
    assert c.get_secret("a").value == "value-aaaa"
    assert time.monotonic() - t0 >= 0.9
    assert [r.status for r in azure.calls("GetSecret")][-2:] == [429, 200]
    assert azure.calls("GetSecret")[-2].fault == "status"


def test_500_then_success_and_drop(azure):
    azure.set_secret("a", "value-aaaa")
    c = client(azure)
    c.get_secret("a")
    azure.faults.fail_next(1, 500, path=r"^/secrets/a/$")
    assert c.get_secret("a").value == "value-aaaa"
    assert [r.status for r in azure.calls("GetSecret")][-2:] == [500, 200]
    azure.faults.drop_next(1, path=r"^/secrets/a/$")
    assert c.get_secret("a").value == "value-aaaa"
    assert azure.calls("GetSecret")[-2].fault == "drop"


def test_fault_bodies_speak_each_protocol(azure):
    tok = token_for(azure)
    azure.faults.fail_next(1, 503, path=r"^/secrets/")
    r = raw(azure, "GET", "/secrets/a/", tok)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "ServiceUnavailable"
    azure.faults.fail_next(1, 503, path=r"/oauth2/v2.0/token$")
    r = requests.post(f"{azure.login_url}/{azure.tenant}/oauth2/v2.0/token",
                      data={}, verify=azure.ca_file, timeout=10)
    assert r.status_code == 503 and \
        r.json()["error"] == "temporarily_unavailable"
    azure.faults.garbage_next(1, "truncated", path=r"^/secrets/")
    r = raw(azure, "GET", "/secrets/a/", tok)
    with pytest.raises(ValueError):
        r.json()


# ------------------------------------------------------------------ Node

def node_env(emu):
    env = {k: v for k, v in os.environ.items() if k not in IDENTITY_VARS}
    env.update({"NODE_EXTRA_CA_CERTS": emu.ca_file,
                "AZEMU_VAULT_URL": emu.vault_url,
                "AZEMU_AUTHORITY": emu.login_url,
                "AZEMU_TENANT": emu.tenant,
                "AZEMU_CLIENT_ID": APP_ID,
                "AZEMU_CLIENT_SECRET": APP_SECRET})
    return env


@pytest.mark.timeout_s(120)
def test_node_sdk(azure):
    node = shutil.which("node") or "/usr/bin/node"
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "@azure", "keyvault-secrets")), \
        "run scripts/deps (npm ci --prefix tests/node)"
    azure.set_secret("off", "value-disabled-1")
    azure.disable("off")
    for i in range(27):
        azure.set_secret(f"n-{i:02d}", f"value-node-{i}")
    out = subprocess.run([node, os.path.join(NODE_DIR, "azure_kv.mjs")],
                         env=node_env(azure), capture_output=True,
                         text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["set_value"] == "value-from-node"
    assert res["get_value"] == "value-from-node"
    assert res["by_version"] == "value-from-node"
    assert res["tags"] == {"via": "node"}
    assert res["content_type"] == "text/plain"
    assert sorted(res["names"]) == sorted(
        ["off", "from-node"] + [f"n-{i:02d}" for i in range(27)])
    assert res["disabled"] == {"status": 403, "code": "Forbidden"}
    assert res["missing"] == {"status": 404, "code": "SecretNotFound"}
    assert azure.get_secret("from-node") == "value-from-node"
    # the JS SDK does the same challenge dance, then reuses its token
    vault = azure.vault_calls()
    assert vault[0].header("Authorization") is None and \
        vault[0].status == 401
    assert azure.count_op("token") == 1
    assert len([r for r in azure.calls("GetSecrets")
                if r.status == 200]) == 2
    assert all(r.qs("api-version") for r in vault)


# ------------------------------------------------------------------- CLI

def test_cli_starts_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(EMULATORS / "azurekv.py"), "--port", "0",
         "--client", "cli-app:cli-app-secret", "--secret", "a=cli-value-1",
         "--managed-identity", "system", "--tls", str(tmp_path / "tls")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        text = "".join(lines)
        url = re.search(r"on (https://127\.0\.0\.1:\d+)", text)
        imds = re.search(r"AZURE_POD_IDENTITY_AUTHORITY_HOST=(\S+)", text)
        ca = re.search(r"CA certificate: (\S+)", text)
        assert url and imds and ca, text + proc.stderr.read()
        assert ca.group(1) == str(tmp_path / "tls" / "ca.pem")
        r = requests.get(imds.group(1) + "/metadata/identity/oauth2/token",
                         params={"api-version": "2018-02-01",
                                 "resource": "https://vault.azure.net"},
                         headers={"Metadata": "true"}, timeout=5)
        tok = r.json()["access_token"]
        r = requests.get(url.group(1) + "/secrets/a/",
                         params={"api-version": "7.4"},
                         headers={"Authorization": f"Bearer {tok}"},
                         verify=ca.group(1), timeout=5)
        assert r.json()["value"] == "cli-value-1"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
