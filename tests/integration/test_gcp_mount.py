"""secretfs on GCP Secret Manager: real mounts whose [provider gcp] talks
to the emulator (tests/emulators/gcpsm.py). A JSON secret as an app's
store, a binary single value with its exact bytes, versions, aliases and
full resource names, a regional secret, generated keys in a new secret,
.env edits written through, every credential type (service account key,
authorized user, workload identity federation from a file and a URL with
impersonation, impersonated service account, metadata server) with token
expiry and refresh, and the refusals: a corrupted payload, an identity
without permission, a disabled version.

The daemon runs with ttl = 0 and max_stale = 0: every read reaches the
emulator, and a failing source fails the read. Its credentials come from
the files and environment each test gives (gcp_mount removes every
GOOGLE_* / GCE_* / CLOUDSDK_* variable and points HOME at an empty
folder, so no gcloud file of the machine is found).
"""

import base64
import contextlib
import http.server
import json
import os
import re
import subprocess
import threading
import time

import pytest

pytest.register_assert_rewrite("gcp_fixtures")
pytest_plugins = ["gcp_fixtures"]

import sfs  # noqa: E402
from gcp_fixtures import (PROJECT, SA_EMAIL,  # noqa: E402
                          write_service_account_adc,
                          write_authorized_user_adc,
                          write_external_account_adc,
                          write_impersonated_adc)

SETTINGS = {"ttl": "0", "max_stale": "0", "request_timeout": "10s"}
BILLING = {"DB_PASSWORD": "gcp-db-pw 'quoted'", "API_KEY": "gcp-api-key-0123",
           "MULTI": "gcp line one\nline two"}
ENV_PREFIXES = ("GOOGLE_", "GCE_", "CLOUDSDK_", "GCLOUD_")


# ------------------------------------------------------------ fixtures

def provider_section(emu, name="gcp", **opts):
    base = {"type": "gcp-secretmanager", "project": PROJECT,
            "endpoint": emu.url, "ca_file": emu.ca_file}
    base.update(opts)
    return f"[provider {name}]\n" + "".join(
        f"{k} = {v}\n" for k, v in base.items() if v is not None)


def config_text(store_dir, section, apps, settings=None):
    lines = ["# written by tests/integration (gcp)", "[secretfs]"]
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
def sa_adc(gcp, tmp_path):
    return write_service_account_adc(gcp, gcp.sa, tmp_path / "sa.json")


@pytest.fixture
def gcp_mount(gcp, mount, store, tmp_path):
    """Factory: gcp_mount(apps, emu=None, env=None, settings=None,
    **provider_opts) -> sfs.Mount. Without credentials_file in opts or
    GOOGLE_APPLICATION_CREDENTIALS in env, the service account's key
    file. It takes gcp before mount so the emulator stops after every
    daemon has unmounted."""
    home = tmp_path / "home"
    home.mkdir()

    def start(apps, emu=None, env=None, settings=None, **opts):
        emu = emu or gcp
        env = {"HOME": str(home), **(env or {})}
        if "credentials_file" not in opts and \
                "GOOGLE_APPLICATION_CREDENTIALS" not in env and \
                "GCE_METADATA_HOST" not in env:
            opts["credentials_file"] = write_service_account_adc(
                emu, emu.sa, tmp_path / "sa.json")
        with daemon_environment(env):
            return mount(config=config_text(
                store.dir, provider_section(emu, **opts), apps, settings))

    return start


def put_json(emu, secrets, name, mapping, **kw):
    for v in mapping.values():
        secrets.add(v)
    return emu.add_version(PROJECT, name, json.dumps(mapping), **kw)


def stored(emu, name, **kw):
    return json.loads(emu.access(PROJECT, name, **kw))


def billing_app(store="gcp://billing-env", **extra):
    return {"billing": {"store": store, "mode": "0600", **extra}}


def warn_lines(m):
    return [ln for ln in m.stderr_text().splitlines()
            if re.match(r"secretfs: (error|warn): ", ln)]


def bearer_tokens(emu):
    return {r.header("Authorization") for r in emu.sm_calls()}


# ----------------------------------------------------------------- reads

def test_store_is_a_json_secret(gcp, gcp_mount, secrets):
    put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app())
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == sfs.render(BILLING)
    for k, v in BILLING.items():
        assert sfs.read(app / k) == v.encode(), k
        assert os.stat(app / k).st_size == len(v.encode())
    assert sorted(os.listdir(app)) == sorted([".env", *BILLING])
    paths = {r.path for r in gcp.calls("AccessSecretVersion")}
    assert paths == {f"/v1/projects/{PROJECT}/secrets/billing-env/"
                     "versions/latest:access"}
    # one JWT-bearer grant, its token on every request
    grants = gcp.calls("token")
    assert [r.grant for r in grants] == \
        ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims = gcp.jwt_claims[-1]
    assert header["alg"] == "RS256" and header["kid"] == gcp.sa.private_key_id
    assert claims["iss"] == SA_EMAIL and claims["aud"] == gcp.token_url
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims["exp"] - claims["iat"] == 3600
    assert bearer_tokens(gcp) == {"Bearer " + gcp.issued_by("token")[0].value}


def test_binary_single_value_exact_bytes(gcp, gcp_mount, secrets):
    blob = bytes(range(256)) + b"\x00tail\xff"
    secrets.add(base64.b64encode(blob).decode())
    gcp.add_version(PROJECT, "tls-der", blob)
    gcp.add_version(PROJECT, "plain", secrets.add("gcp-plain {not json"))
    m = gcp_mount({"billing": {"env.TLS_DER": "gcp://tls-der",
                               "env.PLAIN": "gcp://plain"}})
    app = m.app("billing")
    assert sfs.read(app / "TLS_DER") == blob
    assert os.stat(app / "TLS_DER").st_size == len(blob)
    assert sfs.read(app / "PLAIN") == b"gcp-plain {not json"


def test_versions_aliases_and_full_names(gcp, gcp_mount, secrets):
    v1 = put_json(gcp, secrets, "shared-db", {"password": "gcp-pw-v1"})
    put_json(gcp, secrets, "shared-db", {"password": "gcp-pw-v2"})
    gcp.set_alias(PROJECT, "shared-db", "stable", v1)
    gcp.add_project("other-proj")
    gcp.add_version("other-proj", "token", secrets.add("gcp-other-token"))
    m = gcp_mount({"billing": {
        "env.OLD": f"gcp://shared-db?version={v1}#password",
        "env.ALIAS": "gcp://shared-db?version=stable#password",
        "env.NEW": "gcp://shared-db#password",
        "env.FULL": f"gcp://projects/{PROJECT}/secrets/shared-db/"
                    f"versions/{v1}#password",
        "env.OTHER": "gcp://other-proj/token",
        "env.OTHER_FULL": "gcp://projects/other-proj/secrets/token"}})
    app = m.app("billing")
    assert sfs.read(app / "OLD") == b"gcp-pw-v1"
    assert sfs.read(app / "ALIAS") == b"gcp-pw-v1"
    assert sfs.read(app / "NEW") == b"gcp-pw-v2"
    assert sfs.read(app / "FULL") == b"gcp-pw-v1"
    assert sfs.read(app / "OTHER") == b"gcp-other-token"
    assert sfs.read(app / "OTHER_FULL") == b"gcp-other-token"
    out = subprocess.run(["getfattr", "-n", "user.secretfs.version",
                          "--only-values", str(app / "NEW")],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == "2"


def test_regional_secret(gcp, gcp_mount, secrets):
    put_json(gcp, secrets, "billing-env", {"REGION_KEY": "gcp-regional-v"},
             location="europe-west1")
    gcp.add_version(PROJECT, "global-only",
                    secrets.add("gcp-global-value"))
    m = gcp_mount({"billing": {
        "store": "gcp://billing-env",
        "env.GLOBAL": "gcp://projects/secretfs-test/secrets/global-only"}},
        location="europe-west1")
    app = m.app("billing")
    assert sfs.read(app / "REGION_KEY") == b"gcp-regional-v"
    paths = {r.path for r in gcp.calls("AccessSecretVersion")}
    assert f"/v1/projects/{PROJECT}/locations/europe-west1/secrets/" \
        "billing-env/versions/latest:access" in paths
    # a full regional name from a global provider
    m2 = gcp_mount({"b2": {"env.R": f"gcp://projects/{PROJECT}/locations/"
                                    "europe-west1/secrets/billing-env"
                                    "#REGION_KEY"}})
    assert sfs.read(m2.app("b2") / "R") == b"gcp-regional-v"


def test_bad_secret_id_is_a_config_error(gcp, tmp_path):
    cfg = tmp_path / "secretfs.conf"
    text = config_text(tmp_path, provider_section(gcp), {
        "billing": {"env.DB_PASSWORD": "gcp://db.password"}})
    cfg.write_text(text)
    line = text.splitlines().index(
        "env.DB_PASSWORD = gcp://db.password") + 1
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          str(mnt)], capture_output=True, text=True,
                         timeout=20, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert f"{cfg}:{line}: " in res.stderr
    assert "not a Secret Manager secret id" in res.stderr
    assert gcp.requests == []


# ---------------------------------------------------------------- writes

def test_generated_key_creates_the_secret(gcp, gcp_mount, secrets):
    m = gcp_mount(billing_app("gcp://gen-app",
                              **{"env.SECRET_KEY": "generate:hex:16"}),
                  replication="us-east1,europe-west4")
    value = secrets.add(sfs.read_text(m.app("billing") / "SECRET_KEY"))
    assert re.fullmatch(r"[0-9a-f]{32}", value)
    assert stored(gcp, "gen-app") == {"SECRET_KEY": value}
    s = gcp.secret(PROJECT, "gen-app")
    assert [r["location"] for r in s.replication["userManaged"]["replicas"]] == \
        ["us-east1", "europe-west4"]
    assert len(s.versions) == 1
    # the client's checksum was sent and checked
    assert gcp.version(PROJECT, "gen-app").client_crc
    assert sfs.read_text(m.app("billing") / "SECRET_KEY") == value
    m.expect_log(r"created secret")


def test_env_edit_writes_through_keeping_types(gcp, gcp_mount, secrets):
    secrets.add("gcp-keep-types-pw")
    gcp.add_version(PROJECT, "billing-env", json.dumps(
        {"PORT": 5432, "PW": "gcp-keep-types-pw"}))
    m = gcp_mount(billing_app())
    env = m.app("billing") / ".env"
    new = {"PORT": "5432", "PW": secrets.add("gcp-new-types-pw"),
           "ADDED": secrets.add("gcp-added-value")}
    assert sfs.write_file(env, sfs.render(new)) == (None, None)
    assert stored(gcp, "billing-env") == {"PORT": 5432, **{
        k: v for k, v in new.items() if k != "PORT"}}
    assert len(gcp.secret(PROJECT, "billing-env").versions) == 2
    assert sfs.parse(sfs.read_text(env)) == new
    # a per-key file too
    pw = secrets.add("gcp-per-key-pw")
    assert sfs.write_file(m.app("billing") / "PW", pw) == (None, None)
    assert stored(gcp, "billing-env")["PW"] == pw


def test_pinned_version_is_read_only(gcp, gcp_mount, secrets):
    v1 = put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app(f"gcp://billing-env?version={v1}"))
    m.expect_log(r"read-only")
    stage, err = sfs.write_file(m.app("billing") / "API_KEY", "x-new-value")
    assert err in ("EROFS", "EACCES", "EPERM")
    assert len(gcp.secret(PROJECT, "billing-env").versions) == 1


# ----------------------------------------------------------- credentials

def test_authorized_user_with_refresh(gcp, gcp_mount, secrets, tmp_path):
    user = gcp.add_user("dev@example.com", perms={"accessor"})
    adc = write_authorized_user_adc(gcp, user, tmp_path / "adc.json")
    put_json(gcp, secrets, "billing-env", BILLING)
    gcp.token_lifetime = 4
    m = gcp_mount(billing_app(), env={"GOOGLE_APPLICATION_CREDENTIALS": adc},
                  token_uri=gcp.token_url)
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    assert [r.grant for r in gcp.calls("token")] == ["refresh_token"]
    # refreshed at half of a short life, before it expires
    time.sleep(2.5)
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    assert len(gcp.calls("token")) == 2
    assert all(r.status == 200 for r in gcp.sm_calls())


def test_gcloud_file_in_home(gcp, gcp_mount, secrets, tmp_path):
    """Without a file named, gcloud's ADC file under $HOME is used."""
    user = gcp.add_user("dev2@example.com", perms={"accessor"})
    home = tmp_path / "home2"
    (home / ".config/gcloud").mkdir(parents=True)
    write_authorized_user_adc(
        gcp, user, home / ".config/gcloud/application_default_credentials.json")
    put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app(), env={"HOME": str(home),
                                      "GCE_METADATA_HOST": "127.0.0.1:9"},
                  token_uri=gcp.token_url)
    assert sfs.read(m.app("billing") / "API_KEY") == b"gcp-api-key-0123"
    assert gcp.sm_calls()[0].identity == "dev2@example.com"


def test_expired_token_is_replaced_once(gcp, gcp_mount, secrets):
    put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app())
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    gcp.revoke_tokens()
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    assert len(gcp.calls("token")) == 2
    statuses = [r.status for r in gcp.sm_calls()]
    assert statuses.count(401) == 1 and statuses[-1] == 200, statuses


def test_external_account_file_with_impersonation(gcp, gcp_mount, secrets,
                                                  tmp_path):
    subject = tmp_path / "k8s-token"
    subject.write_text(secrets.add("eyJhbGciOi.gcp-subject-1.sig") + "\n")
    ext = gcp.add_external("eyJhbGciOi.gcp-subject-1.sig",
                           impersonate=SA_EMAIL)
    adc = write_external_account_adc(gcp, tmp_path / "wif.json",
                                     gcp.pool_audience(),
                                     subject_token_file=subject,
                                     impersonate=SA_EMAIL)
    put_json(gcp, secrets, "billing-env", BILLING)
    gcp.token_lifetime = 4
    m = gcp_mount(billing_app(), env={"GOOGLE_APPLICATION_CREDENTIALS": adc})
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    assert gcp.count_op("sts") == 1 and gcp.count_op("generateAccessToken") == 1
    assert gcp.sm_calls()[-1].identity == SA_EMAIL
    # the projected token rotates: the new one is read at the refresh
    subject.write_text(secrets.add("eyJhbGciOi.gcp-subject-2.sig"))
    gcp.add_external("eyJhbGciOi.gcp-subject-2.sig", name=ext.name)
    gcp.reject_subject_token(ext.name, "eyJhbGciOi.gcp-subject-1.sig")
    time.sleep(2.5)
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    assert gcp.count_op("sts") == 2


@contextlib.contextmanager
def subject_server(body, header=("X-Token-Auth", "gcp-url-header-value")):
    """A URL-sourced subject token (as an AWS or Azure instance's metadata
    serves one): body (JSON) to requests that carry header."""
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get(header[0]))
            ok = self.headers.get(header[0]) == header[1]
            data = json.dumps(body).encode() if ok else b"no"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/token", seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_external_account_url_json_without_impersonation(gcp, gcp_mount,
                                                         secrets, tmp_path):
    gcp.add_external(secrets.add("gcp-url-subject-token"), perms={"accessor"})
    hdr = ("X-Token-Auth", secrets.add("gcp-url-header-value"))
    with subject_server({"access_token": "gcp-url-subject-token"},
                        hdr) as (url, seen):
        adc = write_external_account_adc(
            gcp, tmp_path / "wif.json", gcp.pool_audience(),
            subject_token_url=url, url_headers=dict([hdr]))
        d = json.loads(open(adc).read())
        d["credential_source"]["format"] = {
            "type": "json", "subject_token_field_name": "access_token"}
        with open(adc, "w") as f:
            json.dump(d, f)
        put_json(gcp, secrets, "billing-env", BILLING)
        m = gcp_mount(billing_app(),
                      env={"GOOGLE_APPLICATION_CREDENTIALS": adc})
        assert sfs.read(m.app("billing") / "API_KEY") == b"gcp-api-key-0123"
        assert seen == [hdr[1]]
    assert gcp.count_op("sts") == 1
    assert gcp.count_op("generateAccessToken") == 0
    form = gcp.calls("sts")[0].body.decode()
    assert "requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token" in form


def test_impersonated_service_account(gcp, gcp_mount, secrets, tmp_path):
    user = gcp.add_user("admin@example.com", perms=set())
    gcp.allow_impersonation("admin@example.com", SA_EMAIL)
    adc = write_impersonated_adc(gcp, tmp_path / "imp.json",
                                 user.adc(None), SA_EMAIL)
    put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app(), env={"GOOGLE_APPLICATION_CREDENTIALS": adc},
                  token_uri=gcp.token_url)
    assert sfs.read(m.app("billing") / "API_KEY") == b"gcp-api-key-0123"
    assert gcp.count_op("generateAccessToken") == 1
    assert gcp.sm_calls()[-1].identity == SA_EMAIL


def test_metadata_server_with_refresh(gcp, gcp_mount, secrets):
    gcp.add_metadata_account(perms={"accessor"})
    put_json(gcp, secrets, "billing-env", BILLING)
    gcp.token_lifetime = 4
    # no project configured: the metadata server's
    m = gcp_mount(billing_app(), env={"GCE_METADATA_HOST": gcp.metadata_host},
                  project=None)
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    md = gcp.calls("metadata")
    assert all(r.header("Metadata-Flavor") == "Google" for r in md)
    assert any(r.path.endswith("/project/project-id") for r in md)
    time.sleep(2.5)
    assert sfs.read(app / "API_KEY") == b"gcp-api-key-0123"
    assert len([r for r in gcp.calls("metadata")
                if r.path.endswith("/token")]) == 2


def test_readable_key_file_is_refused(gcp, tmp_path, sa_adc):
    os.chmod(sa_adc, 0o644)
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(config_text(tmp_path, provider_section(
        gcp, credentials_file=sa_adc), {}))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          str(mnt)], capture_output=True, text=True,
                         timeout=20, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert "readable by group or others" in res.stderr
    assert "PRIVATE KEY" not in res.stderr


def test_unknown_credentials_type_is_refused(gcp, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "external_account_authorized_user"}')
    os.chmod(bad, 0o600)
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(config_text(tmp_path, provider_section(
        gcp, credentials_file=bad), {}))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          str(mnt)], capture_output=True, text=True,
                         timeout=20, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert "credentials of type 'external_account_authorized_user'" in \
        res.stderr


# -------------------------------------------------------------- refusals

@pytest.mark.parametrize("how", ["crc", "data"])
def test_corrupted_payload_is_eio(gcp, gcp_mount, secrets, how):
    gcp.add_version(PROJECT, "tls-key", secrets.add("gcp-crc-checked-value"))
    m = gcp_mount({"billing": {"env.TLS_KEY": "gcp://tls-key"}})
    m.expect_log(r"does not match its CRC32C checksum")
    gcp.corrupt_next(3, how=how)
    assert sfs.errno_of(sfs.read, m.app("billing") / "TLS_KEY") == "EIO"
    assert any("tls-key" in ln and "CRC32C" in ln for ln in warn_lines(m)), \
        warn_lines(m)
    # served again once the answers are sound
    gcp._corrupt.clear()
    assert sfs.read(m.app("billing") / "TLS_KEY") == b"gcp-crc-checked-value"


def test_payload_without_checksum_is_served(gcp, gcp_mount, secrets):
    gcp.add_version(PROJECT, "old", secrets.add("gcp-old-version-value"))
    m = gcp_mount({"billing": {"env.OLD": "gcp://old"}})
    gcp.corrupt_next(1, how="no-crc")
    assert sfs.read(m.app("billing") / "OLD") == b"gcp-old-version-value"


def test_identity_without_permission(gcp, gcp_mount, secrets):
    put_json(gcp, secrets, "billing-env", BILLING)
    gcp.set_perms(gcp.sa, set())
    m = gcp_mount(billing_app())
    m.expect_log(r"access denied")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    lines = [ln for ln in warn_lines(m) if "access denied" in ln]
    assert lines, warn_lines(m)
    assert SA_EMAIL in lines[0] and "billing-env" in lines[0]
    assert "PERMISSION_DENIED" in lines[0]
    # once a minute at most
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    assert len([ln for ln in warn_lines(m) if "access denied" in ln
                and "gcp gcp:" in ln]) == 1


def test_disabled_version_is_eacces(gcp, gcp_mount, secrets):
    v = put_json(gcp, secrets, "billing-env", BILLING)
    gcp.disable(PROJECT, "billing-env", v)
    m = gcp_mount(billing_app())
    m.expect_log(r"FAILED_PRECONDITION")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    assert any("cannot be used" in ln for ln in warn_lines(m)), warn_lines(m)


def test_missing_secret_as_a_mapping(gcp, gcp_mount, secrets):
    put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app(**{"env.NOPE": "gcp://no-such-secret"}))
    m.expect_log(r"no-such-secret")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "NOPE") in ("ENOENT", "EIO")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert any("not found" in ln for ln in warn_lines(m)), warn_lines(m)


def test_rate_limit_once_is_retried(gcp, gcp_mount, secrets):
    put_json(gcp, secrets, "billing-env", BILLING)
    m = gcp_mount(billing_app())
    assert sfs.read(m.app("billing") / "API_KEY") == b"gcp-api-key-0123"
    gcp.quota_exceeded_next(1)
    assert sfs.read(m.app("billing") / "API_KEY") == b"gcp-api-key-0123"
