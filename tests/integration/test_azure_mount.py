"""secretfs on Azure Key Vault: real mounts whose [provider azure] talks
to the emulator (tests/emulators/azurekv.py). A JSON secret as an app's
store, single values as env.* and keys.*, the per-secret layout (tags,
the '-' -> '_' rule, a collision), generated keys and .env edits written
through, every credential source (client secret, workload identity with a
rotated token file, IMDS, App Service) with token expiry and refresh, the
401 challenge, and the refusals: a disabled secret, an identity without
permission, a soft-deleted name.

The daemon runs with ttl = 0 and max_stale = 0: every read reaches the
emulator, and a failing source fails the read. Its credentials come from
its environment only (az_mount removes every AZURE_* / IDENTITY_*
variable of the test process, then applies env).
"""

import contextlib
import json
import os
import re
import subprocess
import time

import pytest

pytest.register_assert_rewrite("azure_fixtures")
pytest_plugins = ["azure_fixtures"]

import sfs  # noqa: E402
from azure_fixtures import APP_ID, APP_SECRET  # noqa: E402

SETTINGS = {"ttl": "0", "max_stale": "0", "request_timeout": "10s"}
BILLING = {"DB_PASSWORD": "az-db-pw 'quoted'", "API_KEY": "az-api-key-0123",
           "MULTI": "az line one\nline two"}
NO_SECRET = {"AZURE_CLIENT_SECRET": None}
ENV_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")


# ------------------------------------------------------------ fixtures

def client_env(emu, client_id=APP_ID, secret=APP_SECRET):
    """The environment of a client-secret credential at the emulator."""
    return {"AZURE_CLIENT_ID": client_id, "AZURE_CLIENT_SECRET": secret,
            "AZURE_AUTHORITY_HOST": emu.login_url}


def provider_section(emu, name="azure", **opts):
    base = {"type": "azure-keyvault", "vault": emu.vault_url,
            "ca_file": emu.ca_file,
            "disable_challenge_resource_verification": "true"}
    base.update(opts)
    return f"[provider {name}]\n" + "".join(
        f"{k} = {v}\n" for k, v in base.items() if v is not None)


def config_text(store_dir, section, apps, settings=None):
    lines = ["# written by tests/integration (azure)", "[secretfs]"]
    lines += [f"{k} = {v}" for k, v in {**SETTINGS, **(settings or {})}
              .items()]
    lines += ["", "[provider local]", "type = file",
              f"directory = {store_dir}", ""]
    text = "\n".join(lines) + "\n" + section
    for name, opts in apps.items():
        text += f"\n[app {name}]\n" + "".join(f"{k} = {v}\n"
                                              for k, v in opts.items())
    return text


@contextlib.contextmanager
def daemon_environment(env):
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.startswith(ENV_PREFIXES):
                del os.environ[k]
        for k, v in env.items():
            if v is not None:
                os.environ[k] = str(v)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def az_mount(azure, mount, store):
    """Factory: az_mount(apps, emu=None, env=None, settings=None,
    **provider_opts) -> sfs.Mount. It takes azure before mount so the
    emulators stop after every daemon has unmounted."""

    def start(apps, emu=None, env=None, settings=None, **opts):
        emu = emu or azure
        if env is None:
            env = client_env(emu)
        with daemon_environment(env):
            return mount(config=config_text(
                store.dir, provider_section(emu, **opts), apps, settings))

    return start


def put_json(emu, secrets, name, mapping, **kw):
    for v in mapping.values():
        secrets.add(v)
    return emu.set_secret(name, json.dumps(mapping), **kw)


def stored(emu, name):
    return json.loads(emu.get_secret(name))


def billing_app(store="azure://billing-env", **extra):
    return {"billing": {"store": store, "mode": "0600", **extra}}


def kv_calls(emu, op=None):
    return [r for r in emu.vault_calls()
            if op is None or getattr(r, "op", None) == op]


def with_token(emu):
    return [r for r in emu.vault_calls() if r.header("Authorization")]


def read_until(path, pred, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sfs.read(path)
        if pred():
            return True
        time.sleep(0.25)
    return pred()


def warn_lines(m):
    return [ln for ln in m.stderr_text().splitlines()
            if re.match(r"secretfs: (error|warn): ", ln)]


# ----------------------------------------------------------------- reads

def test_store_is_a_json_secret(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == sfs.render(BILLING)
    for k, v in BILLING.items():
        assert sfs.read(app / k) == v.encode(), k
        assert os.stat(app / k).st_size == len(v.encode())
    assert sorted(os.listdir(app)) == sorted([".env", *BILLING])
    gets = kv_calls(azure, "GetSecret")
    assert {r.path for r in gets} == {"/secrets/billing-env/"}
    assert {r.qs("api-version") for r in gets} == {"7.4"}


def test_challenge_first_then_one_cached_token(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    app = m.app("billing")
    for _ in range(3):
        assert sfs.read(app / "API_KEY") == b"az-api-key-0123"
    calls = azure.vault_calls()
    # the first request carries no token, and is answered with the challenge
    assert calls[0].header("Authorization") is None
    assert calls[0].status == 401
    bare = [r for r in calls if not r.header("Authorization")]
    assert all(r.status == 401 and not r.body for r in bare)
    tokens = azure.issued_by("token")
    assert len(tokens) == 1, tokens
    form = dict(x.split("=", 1) for x in
                azure.calls("token")[0].body.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "https%3A%2F%2Fvault.azure.net%2F.default"
    assert azure.calls("token")[0].path == \
        f"/{azure.tenant}/oauth2/v2.0/token"
    authed = with_token(azure)
    assert len(authed) >= 3
    assert {r.header("Authorization") for r in authed} == \
        {"Bearer " + tokens[0].value}
    assert all(r.status == 200 for r in authed)


def test_challenge_with_scope_and_own_authority(azure, az_mount, secrets):
    azure.challenge_scope = True
    azure.challenge_authority = azure.login_url
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    assert len(azure.issued_by("token")) == 1


def test_challenge_resource_is_verified(azure, az_mount, secrets):
    """Without the option, the emulator's host (127.0.0.1) is not under
    vault.azure.net: no token is asked for."""
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app(),
                 disable_challenge_resource_verification=None)
    m.expect_log(r"(?i)disable_challenge_resource_verification")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    assert azure.count_op("token") == 0


def test_field_and_version(azure, az_mount, secrets):
    v1 = put_json(azure, secrets, "shared-db", {"password": "az-pw-v1"})
    put_json(azure, secrets, "shared-db", {"password": "az-pw-v2"})
    m = az_mount({"billing": {
        "env.OLD": f"azure://shared-db?version={v1}#password",
        "env.NEW": "azure://shared-db#password"}})
    app = m.app("billing")
    assert sfs.read(app / "OLD") == b"az-pw-v1"
    assert sfs.read(app / "NEW") == b"az-pw-v2"
    assert f"/secrets/shared-db/{v1}" in {r.path for r in azure.vault_calls()}


def test_single_values_as_env_and_keys(azure, az_mount, secrets):
    azure.set_secret("stripe-key", secrets.add("az-stripe-plain {not json"))
    azure.set_secret("myapp-dotenvx-key", secrets.add(
        "az0dotenvx0private0key0123456789abcdef"))
    m = az_mount({"billing": {
        "env.STRIPE_KEY": "azure://stripe-key",
        "keys.production": "azure://myapp-dotenvx-key"}})
    app = m.app("billing")
    assert sfs.read(app / "STRIPE_KEY") == b"az-stripe-plain {not json"
    assert sfs.read_text(app / ".env.keys") == \
        "DOTENV_PRIVATE_KEY_PRODUCTION=" \
        "'az0dotenvx0private0key0123456789abcdef'\n"


def test_bad_secret_name_is_a_config_error(azure, tmp_path):
    """A name Key Vault cannot hold is refused when the config loads, with
    its file:line."""
    cfg = tmp_path / "secretfs.conf"
    text = config_text(tmp_path, provider_section(azure), {
        "billing": {"env.DB_PASSWORD": "azure://db_password"}})
    cfg.write_text(text)
    line = text.splitlines().index(
        "env.DB_PASSWORD = azure://db_password") + 1
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          str(mnt)], capture_output=True, text=True,
                         timeout=20, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert f"{cfg}:{line}: " in res.stderr
    assert "not a Key Vault secret name" in res.stderr
    assert azure.requests == []


# ------------------------------------------------------ per-secret layout

def test_per_secret_layout(azure, az_mount, secrets):
    azure.set_secret("billing-DB-PASSWORD", secrets.add("az-ps-db-pw"))
    azure.set_secret("billing-api", secrets.add("az-ps-api-key"),
                     tags={"secretfs-key": "API_KEY"})
    azure.set_secret("other-thing", secrets.add("az-not-billing"))
    m = az_mount(billing_app("azure://?prefix=billing-"))
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == sfs.render(
        {"DB_PASSWORD": "az-ps-db-pw", "API_KEY": "az-ps-api-key"})
    assert sfs.read(app / "API_KEY") == b"az-ps-api-key"
    lists = kv_calls(azure, "GetSecrets")
    assert lists and all(r.qs("api-version") == "7.4" for r in lists)


def test_per_secret_layout_pages(azure, az_mount, secrets):
    """More secrets than one page (25) holds: nextLink is followed."""
    want = {}
    for i in range(30):
        val = secrets.add(f"az-page-value-{i:02d}")
        azure.set_secret(f"app-K{i:02d}", val)
        want[f"K{i:02d}"] = val
    m = az_mount(billing_app("azure://?prefix=app-"))
    assert sfs.parse(sfs.read_text(m.app("billing") / ".env")) == want
    assert len(kv_calls(azure, "GetSecrets")) >= 2


def test_per_secret_layout_collision(azure, az_mount, secrets):
    azure.set_secret("billing-A-B", secrets.add("az-collide-one"))
    azure.set_secret("billing-ab2", secrets.add("az-collide-two"),
                     tags={"secretfs-key": "A_B"})
    m = az_mount(billing_app("azure://?prefix=billing-"))
    m.expect_log(r"billing-A-B and billing-ab2|billing-ab2 and billing-A-B")
    assert sfs.errno_of(sfs.read, m.app("billing") / ".env") == "EIO"
    assert any("both give the key A_B" in ln for ln in warn_lines(m)), \
        warn_lines(m)


def test_per_secret_layout_writes(azure, az_mount, secrets):
    azure.set_secret("billing-DB-PASSWORD", secrets.add("az-ps-db-old"))
    azure.set_secret("billing-api", secrets.add("az-ps-api-keep"),
                     tags={"secretfs-key": "API_KEY", "owner": "team-a"})
    azure.set_secret("billing-GONE", secrets.add("az-ps-gone-value"))
    m = az_mount(billing_app("azure://?prefix=billing-"))
    env = m.app("billing") / ".env"
    new = {"DB_PASSWORD": secrets.add("az-ps-db-new"),
           "API_KEY": "az-ps-api-keep",
           "NEW_KEY": secrets.add("az-ps-new-key")}
    assert sfs.write_file(env, sfs.render(new)) == (None, None)
    # changed: a new version of the same secret, tagged with its key
    v = azure.version("billing-DB-PASSWORD")
    assert v.value == "az-ps-db-new"
    assert v.tags == {"secretfs-key": "DB_PASSWORD"}
    # new: '_' written '-', the exact key in the tag
    v = azure.version("billing-NEW-KEY")
    assert v.value == "az-ps-new-key"
    assert v.tags == {"secretfs-key": "NEW_KEY"}
    # unchanged: not written; removed: soft-deleted
    assert len(azure.versions("billing-api")) == 1
    assert "billing-GONE" in azure.deleted_names()
    assert sfs.parse(sfs.read_text(env)) == new
    puts = kv_calls(azure, "SetSecret")
    assert {r.path for r in puts if r.header("Authorization")} == \
        {"/secrets/billing-DB-PASSWORD", "/secrets/billing-NEW-KEY"}


def test_per_secret_key_without_a_name_is_einval(azure, az_mount, secrets):
    """A key whose secret name would be too long: refused before anything
    is written."""
    azure.set_secret("billing-A", secrets.add("az-ps-a-value"))
    m = az_mount(billing_app("azure://?prefix=billing-"))
    m.expect_log(r"is not a Key Vault secret name")
    env = m.app("billing") / ".env"
    stage, err = sfs.write_file(
        env, sfs.render({"A": "az-ps-a-changed", "K" * 130: "x-value-k"}))
    assert (stage, err) == ("close", "EINVAL")
    assert azure.names() == ["billing-A"]
    assert azure.get_secret("billing-A") == "az-ps-a-value"


# ---------------------------------------------------------------- writes

def test_generated_key_lands_in_the_secret(azure, az_mount, secrets):
    m = az_mount(billing_app("azure://gen-app",
                             **{"env.SECRET_KEY": "generate:hex:16"}))
    value = secrets.add(sfs.read_text(m.app("billing") / "SECRET_KEY"))
    assert re.fullmatch(r"[0-9a-f]{32}", value)
    assert stored(azure, "gen-app") == {"SECRET_KEY": value}
    assert azure.version("gen-app").content_type == "application/json"
    assert sfs.read_text(m.app("billing") / "SECRET_KEY") == value
    assert len(azure.versions("gen-app")) == 1


def test_generated_key_in_the_per_secret_layout(azure, az_mount, secrets):
    azure.set_secret("gen-NAME", secrets.add("az-gen-name-v"))
    m = az_mount(billing_app("azure://?prefix=gen-",
                             **{"env.SECRET_KEY": "generate:hex:16"}))
    value = secrets.add(sfs.read_text(m.app("billing") / "SECRET_KEY"))
    v = azure.version("gen-SECRET-KEY")
    assert (v.value, v.tags) == (value, {"secretfs-key": "SECRET_KEY"})
    assert len(azure.versions("gen-NAME")) == 1


def test_key_write_keeps_tags_and_json_types(azure, az_mount, secrets):
    secrets.add("az-keep-types-pw")
    azure.set_secret("billing-env", json.dumps(
        {"PORT": 5432, "PW": "az-keep-types-pw"}),
        content_type="application/json", tags={"team": "billing"})
    m = az_mount(billing_app())
    new = secrets.add("az-new-types-pw")
    assert sfs.write_file(m.app("billing") / "PW", new) == (None, None)
    v = azure.version("billing-env")
    assert json.loads(v.value) == {"PORT": 5432, "PW": new}
    assert v.tags == {"team": "billing"}
    assert v.content_type == "application/json"


def test_env_append_and_rewrite_write_through(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    env = m.app("billing") / ".env"
    added = secrets.add("az-appended-value")
    with open(env, "a") as f:
        f.write(f"ADDED='{added}'\n")
    assert stored(azure, "billing-env") == {**BILLING, "ADDED": added}
    text = sfs.read_text(env).replace("az-api-key-0123", "az-api-key-new")
    secrets.add("az-api-key-new")
    assert sfs.write_file(env, text) == (None, None)
    assert stored(azure, "billing-env") == {**BILLING, "ADDED": added,
                                             "API_KEY": "az-api-key-new"}
    assert sfs.parse(sfs.read_text(env))["API_KEY"] == "az-api-key-new"


def test_soft_deleted_name_on_create(azure, az_mount, secrets):
    azure.set_secret("gen-gone", secrets.add("az-soft-deleted-v"))
    azure.soft_delete("gen-gone")
    m = az_mount(billing_app("azure://gen-gone",
                             **{"env.SECRET_KEY": "generate:hex:16"}))
    m.expect_log(r"gen-gone.*soft-deleted.*recover.*purge")
    err = sfs.errno_of(sfs.read, m.app("billing") / "SECRET_KEY")
    assert err in ("EEXIST", "EIO"), err
    assert any(re.search(r"gen-gone.*soft-deleted secret: recover it \(az "
                         r"keyvault secret recover\) or purge it", ln)
               for ln in warn_lines(m)), warn_lines(m)
    puts = kv_calls(azure, "SetSecret")
    assert puts and puts[-1].kv_error == "ObjectIsDeletedButRecoverable"


# --------------------------------------------------- credential sources

def test_client_secret_file(azure, az_mount, secrets, tmp_path):
    put_json(azure, secrets, "billing-env", BILLING)
    f = tmp_path / "client-secret"
    f.write_text(APP_SECRET + "\n")
    os.chmod(f, 0o600)
    m = az_mount(billing_app(), env={"AZURE_AUTHORITY_HOST": None},
                 client_id=APP_ID, tenant_id=azure.tenant,
                 client_secret_file=f, authority_host=azure.login_url,
                 credential="client_secret")
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    assert azure.issued_by("token")[0].identity.client_id == APP_ID


def test_readable_client_secret_file_is_refused(azure, tmp_path):
    f = tmp_path / "client-secret"
    f.write_text(APP_SECRET)
    os.chmod(f, 0o644)
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(config_text(tmp_path, provider_section(
        azure, client_id=APP_ID, client_secret_file=f), {
            "billing": {"store": "azure://billing-env"}}))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          str(mnt)], capture_output=True, text=True,
                         timeout=20, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert "readable by group or others" in res.stderr
    assert APP_SECRET not in res.stderr


def test_wrong_client_secret_is_eacces(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    wrong = secrets.add("az-wrong-client-secret-zz99")
    m = az_mount(billing_app(), env=client_env(azure, secret=wrong))
    m.expect_log(r"AADSTS7000215")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    lines = warn_lines(m)
    assert any("invalid_client" in ln and "AADSTS7000215" in ln and
               APP_ID in ln and "billing-env" in ln for ln in lines), lines
    assert "Trace ID" not in m.stderr_text()


@pytest.mark.timeout_s(90)
def test_workload_identity_rereads_the_token_file(azure, az_mount, secrets,
                                                  tmp_path):
    put_json(azure, secrets, "billing-env", BILLING)
    wid = "0f3c1d2e-5ec2-4f00-8a11-7e57c11e0002"
    azure.add_federated(wid, "az-fed-jwt-one.payload.sig")
    tok = tmp_path / "azure-identity-token"
    tok.write_text("az-fed-jwt-one.payload.sig\n")
    azure.token_lifetime = 6
    m = az_mount(billing_app(), env={
        "AZURE_CLIENT_ID": wid, "AZURE_TENANT_ID": azure.tenant,
        "AZURE_FEDERATED_TOKEN_FILE": tok,
        "AZURE_AUTHORITY_HOST": azure.login_url})
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"az-api-key-0123"
    first = azure.calls("token")[0]
    form = dict(x.split("=", 1) for x in first.body.decode().split("&"))
    assert form["client_assertion_type"] == \
        "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    assert "client_secret" not in form
    # the projected token rotates: the next token request reads the file
    tok.write_text("az-fed-jwt-two.payload.sig\n")
    azure.add_federated(wid, "az-fed-jwt-two.payload.sig")
    azure.reject_assertion(wid, "az-fed-jwt-one.payload.sig")
    assert read_until(app / "API_KEY",
                      lambda: len(azure.issued_by("token")) >= 2, 30)
    assert [r.status for r in azure.calls("token")][:2] == [200, 200]
    assert sfs.read(app / "API_KEY") == b"az-api-key-0123"


@pytest.mark.timeout_s(90)
def test_token_refreshed_before_expiry(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    azure.token_lifetime = 6
    m = az_mount(billing_app())
    app = m.app("billing")
    assert read_until(app / "API_KEY",
                      lambda: len(azure.issued_by("token")) >= 3, 30)
    issued = azure.issued_by("token")
    by_value = {t.value: t for t in issued}
    for r in with_token(azure):
        t = by_value[r.header("Authorization").split(" ", 1)[1]]
        assert r.time < t.expires, "a token was sent after it expired"
        assert r.status == 200
    # each refresh came before the previous token expired
    asked = [r for r in azure.calls("token") if r.status == 200]
    for prev, nxt in zip(issued, asked[1:]):
        assert nxt.time < prev.expires, "refreshed only after expiry"


def test_revoked_token_is_replaced_once(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"az-api-key-0123"
    azure.revoke_tokens()
    assert sfs.read(app / "API_KEY") == b"az-api-key-0123"
    assert len(azure.issued_by("token")) == 2
    refused = [r for r in with_token(azure) if r.status == 401]
    assert len(refused) == 1


def test_managed_identity_imds(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    mi = azure.add_managed_identity()
    azure.imds_status_next(1, 410)
    m = az_mount(billing_app(), env={
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": azure.imds_url})
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    imds = azure.calls("imds")
    assert [r.status for r in imds] == [410, 200]
    r = imds[-1]
    assert r.header("Metadata") == "true"
    assert r.qs("api-version") == "2018-02-01"
    assert r.qs("resource") == "https://vault.azure.net"
    assert r.qs("client_id") is None
    assert azure.issued_by("imds")[0].identity.client_id == mi.client_id
    assert azure.count_op("token") == 0


def test_managed_identity_user_assigned_numbers(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    azure.add_managed_identity()
    mi = azure.add_managed_identity("0f3c1d2e-5ec2-4f00-8a11-7e57c11e0003")
    azure.imds_numbers = True
    m = az_mount(billing_app(), env={}, imds_endpoint=azure.imds_url,
                 client_id=mi.client_id, credential="managed_identity")
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    assert azure.calls("imds")[-1].qs("client_id") == mi.client_id
    assert azure.issued_by("imds")[0].identity.client_id == mi.client_id


@pytest.mark.timeout_s(90)
def test_app_service_identity_with_refresh(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    azure.add_managed_identity()
    azure.token_lifetime = 6
    m = az_mount(billing_app(), env={
        "IDENTITY_ENDPOINT": azure.identity_endpoint,
        "IDENTITY_HEADER": azure.identity_header})
    app = m.app("billing")
    assert read_until(app / "API_KEY",
                      lambda: len(azure.issued_by("appservice")) >= 2, 30)
    calls = azure.calls("appservice")
    assert all(r.header("X-IDENTITY-HEADER") == azure.identity_header
               for r in calls)
    assert {r.qs("api-version") for r in calls} == {"2019-08-01"}
    assert all(r.status == 200 for r in with_token(azure))


# ----------------------------------------------------- refusals, faults

def test_disabled_secret_is_eacces(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    azure.disable("billing-env")
    m = az_mount(billing_app())
    m.expect_log(r"billing-env: the secret is disabled")
    assert sfs.errno_of(sfs.read, m.app("billing") / ".env") == "EACCES"


def test_identity_without_permission(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    azure.set_perms(APP_ID, {"list"})
    m = az_mount(billing_app())
    m.expect_log(r"billing-env: access denied")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    lines = [ln for ln in warn_lines(m) if "access denied" in ln]
    assert lines, warn_lines(m)
    assert "billing-env" in lines[0] and f"client id {APP_ID}" in lines[0]
    assert "AccessDenied" in lines[0]
    # logged once a minute, not at every read
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    assert len([ln for ln in warn_lines(m) if "access denied" in ln and
                ln.startswith("secretfs: warn: azure azure: ")]) == 1


def test_missing_secret_as_a_mapping(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app(**{"env.GONE": "azure://no-such-secret"}))
    m.expect_log(r"no-such-secret")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "GONE") in ("ENOENT", "EIO")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"


def test_rate_limit_once_is_retried(azure, az_mount, secrets):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    azure.faults.rate_limit_next(1, retry_after=1,
                                 path=r"^/secrets/billing-env/$")
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    assert azure.faults.pending() == 0


@pytest.mark.parametrize("kind", ["not-json", "truncated", "null", "array",
                                  "no-value", "wrong-types"])
def test_garbage_is_eio(azure, az_mount, secrets, kind):
    put_json(azure, secrets, "billing-env", BILLING)
    m = az_mount(billing_app())
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    m.expect_log(r"(?i)billing-env|garbage")
    rule = azure.faults.garbage_next(None, kind,
                                     path=r"^/secrets/billing-env/$")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EIO"
    azure.faults.remove(rule)
    assert sfs.read(m.app("billing") / "API_KEY") == b"az-api-key-0123"
    assert m.proc.poll() is None
