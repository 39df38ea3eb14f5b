"""secretfs on Vault: real mounts whose [provider vault] talks to the
emulator (tests/emulators/vault.py). Reads from KV v2 and v1, versions,
generated values, CAS writes, logins and renewal, and every failure the
design's "what bad input gets" table promises an answer for.

The daemon runs with ttl = 0 and max_stale = 0 (vault_fixtures.SETTINGS):
every read reaches Vault, and a failing Vault fails the read.
"""

import os
import re
import threading
import time

import pytest

# vault_fixtures is a plugin (fixtures vault, vault_factory, vault_mount)
# whose helpers are imported too: register it for assert rewriting first
pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402
from vault_fixtures import data_writes, statuses, write_private  # noqa: E402

BILLING = {"DB_PASSWORD": "vault-db-pw 'quoted'",
           "API_KEY": "vault-api-key-0123",
           "MULTI": "vault line one\nline two"}


def put(emu, secrets, mount, path, data, **kw):
    for v in data.values():
        if isinstance(v, str):
            secrets.add(v)
    return emu.put(mount, path, data, **kw)


def billing_app(**extra):
    return {"billing": {"store": "vault://secret/billing", "mode": "0600",
                        **extra}}


def seq(statuses_seen, first, then=200):
    """True when a `first` answer is followed later by a `then` one."""
    try:
        i = statuses_seen.index(first)
    except ValueError:
        return False
    return then in statuses_seen[i + 1:]


# ----------------------------------------------------------------- reads

def test_read_env_and_keys_kv2(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == sfs.render(BILLING)
    for k, v in BILLING.items():
        assert sfs.read(app / k) == v.encode(), k
        assert os.stat(app / k).st_size == len(v.encode())
    assert sorted(os.listdir(app)) == sorted([".env", *BILLING])
    assert vault.count("/v1/secret/data/billing", "GET") >= 1
    # the logical path is never sent as is to a v2 mount
    assert vault.count("/v1/secret/billing") == 0


def test_json_values_are_text_in_files(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing",
        {"PORT": 5432, "DEBUG": False, "RATIO": 1.5, "NAME": "vault-json-nm"})
    m = vault_mount(billing_app())
    app = m.app("billing")
    assert sfs.read(app / "PORT") == b"5432"
    assert sfs.read(app / "DEBUG") == b"false"
    assert sfs.read(app / "NAME") == b"vault-json-nm"
    # a write of another key keeps the JSON types of the untouched ones
    assert sfs.write_file(app / "NAME", secrets.add("vault-json-nm2")) == \
        (None, None)
    assert vault.get("secret/", "billing") == {
        "PORT": 5432, "DEBUG": False, "RATIO": 1.5, "NAME": "vault-json-nm2"}


def test_read_kv1(vault, vault_mount, secrets):
    data = {"USER": "vault-v1-user", "PASS": "vault-v1-pass"}
    put(vault, secrets, "kv1/", "legacy/app", data)
    m = vault_mount({"legacy": {"store": "vault://kv1/legacy/app"}})
    assert sfs.read_text(m.app("legacy") / ".env") == sfs.render(data)
    assert sfs.read(m.app("legacy") / "PASS") == b"vault-v1-pass"
    assert vault.count("/v1/kv1/legacy/app", "GET") >= 1
    assert vault.count("/v1/kv1/data/legacy/app") == 0


def test_nested_paths_and_mount_with_slash(vault, vault_mount, secrets):
    put(vault, secrets, "kv/team/", "apps/billing/prod",
        {"STRIPE": "vault-stripe-key"})
    put(vault, secrets, "secret/", "shared/db",
        {"password": "vault-shared-db-pw", "user": "vault-shared-user"})
    m = vault_mount({"billing": {
        "store": "vault://kv/team/apps/billing/prod",
        "env.DB": "vault://secret/shared/db#password"}})
    env = sfs.parse(sfs.read_text(m.app("billing") / ".env"))
    assert env == {"STRIPE": "vault-stripe-key", "DB": "vault-shared-db-pw"}
    assert vault.count("/v1/kv/team/data/apps/billing/prod", "GET") >= 1
    assert vault.count("/v1/secret/data/shared/db", "GET") >= 1
    # the mount was found through Vault, not guessed
    assert any(r.path.startswith("/v1/sys/internal/ui/mounts/kv/team")
               for r in vault.requests)


def test_version_parameter(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "shared/db", {"password": "vault-pw-v1"})
    put(vault, secrets, "secret/", "shared/db", {"password": "vault-pw-v2"})
    m = vault_mount({"billing": {
        "env.OLD": "vault://secret/shared/db?version=1#password",
        "env.NEW": "vault://secret/shared/db#password"}})
    assert sfs.read(m.app("billing") / "OLD") == b"vault-pw-v1"
    assert sfs.read(m.app("billing") / "NEW") == b"vault-pw-v2"
    assert any(r.path == "/v1/secret/data/shared/db" and
               r.qs("version") == "1" for r in vault.requests)


def test_kv_version_auto_falls_back_to_v1_on_404(vault_factory, vault_mount,
                                                 secrets):
    emu = vault_factory({"kv1/": 1}, ui_mounts="404")
    put(emu, secrets, "kv1/", "old", {"K": "vault-old-vault-v1"})
    m = vault_mount({"old": {"store": "vault://kv1/old"}}, emu=emu)
    assert sfs.read(m.app("old") / "K") == b"vault-old-vault-v1"
    assert emu.count("/v1/kv1/old", "GET") >= 1


def test_kv_version_pinned(vault_factory, vault_mount, secrets):
    emu = vault_factory({"secret/": 2}, ui_mounts="404")
    put(emu, secrets, "secret/", "pinned", {"K": "vault-pinned-v2"})
    m = vault_mount({"p": {"store": "vault://secret/pinned"}}, emu=emu,
                    kv_version=2)
    assert sfs.read(m.app("p") / "K") == b"vault-pinned-v2"


# ---------------------------------------------------- generated values

@pytest.mark.timeout_s(120)
def test_generated_value_created_with_cas_and_converges(vault, vault_mount,
                                                        secrets):
    apps = {}
    for i in range(4):
        apps[f"gen{i}"] = {"store": f"vault://secret/gen{i}",
                           "env.TOKEN": "generate:hex:16"}
    # gen2 and gen3 exist already (another key): the new key needs cas=1
    put(vault, secrets, "secret/", "gen2", {"NAME": "vault-gen-name"})
    put(vault, secrets, "secret/", "gen3", {"NAME": "vault-gen-name"})
    m1 = vault_mount(apps)
    m2 = vault_mount(apps)
    for i in range(4):
        name = "TOKEN" if i % 2 == 0 else ".env"
        barrier = threading.Barrier(2)
        results = [None, None]

        def reader(slot, mm):
            barrier.wait(timeout=10)
            try:
                results[slot] = sfs.read_text(mm.app(f"gen{i}") / name)
            except OSError as e:
                results[slot] = e

        threads = [threading.Thread(target=reader, args=(j, mm))
                   for j, mm in enumerate((m1, m2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in results:
            assert isinstance(r, str), f"gen{i}: read failed: {r!r}"
        if name == ".env":
            vals = [sfs.parse(r)["TOKEN"] for r in results]
        else:
            vals = results
        for v in vals:
            secrets.add(v)
        assert vals[0] == vals[1], f"gen{i}: the mounts disagree"
        assert re.fullmatch(r"[0-9a-f]{32}", vals[0])
        stored = vault.get("secret/", f"gen{i}")
        assert stored["TOKEN"] == vals[0]
        if i >= 2:
            assert stored["NAME"] == "vault-gen-name"
        writes = data_writes(vault, "secret/", f"gen{i}")
        assert writes, f"gen{i}: nothing written"
        assert all("cas" in (w.get("options") or {}) for w in writes), writes
        # created only if absent, or on top of the version read
        assert writes[0]["options"]["cas"] == (0 if i < 2 else 1)
        # one value won: whoever lost its CAS race adopted it
        for mm in (m1, m2):
            assert sfs.read_text(mm.app(f"gen{i}") / "TOKEN") == vals[0]


# ---------------------------------------------------------------- writes

def test_key_write_lands_with_cas(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    new = secrets.add("vault-new-db-pw")
    assert sfs.write_file(m.app("billing") / "DB_PASSWORD", new) == (None, None)
    assert vault.get("secret/", "billing") == {**BILLING, "DB_PASSWORD": new}
    writes = data_writes(vault, "secret/", "billing")
    assert writes[-1]["options"] == {"cas": 1}
    assert writes[-1]["data"] == {**BILLING, "DB_PASSWORD": new}
    assert vault.version("secret/", "billing") == 2
    assert sfs.read(m.app("billing") / "DB_PASSWORD") == new.encode()


def test_key_write_kv1(vault, vault_mount, secrets):
    put(vault, secrets, "kv1/", "legacy/app", {"A": "vault-v1-a",
                                              "B": "vault-v1-b"})
    m = vault_mount({"legacy": {"store": "vault://kv1/legacy/app",
                                "mode": "0600"}})
    new = secrets.add("vault-v1-a-new")
    assert sfs.write_file(m.app("legacy") / "A", new) == (None, None)
    assert vault.get("kv1/", "legacy/app") == {"A": new, "B": "vault-v1-b"}
    posts = vault.requests_to("/v1/kv1/legacy/app", "POST")
    assert posts and posts[-1].json() == {"A": new, "B": "vault-v1-b"}


def test_env_edit_conflicting_with_concurrent_write_is_ebusy(
        vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    env = m.app("billing") / ".env"
    mine = sfs.read_text(env).replace("vault-api-key-0123", "vault-api-mine")
    secrets.add("vault-api-mine")
    fd = os.open(env, os.O_WRONLY | os.O_TRUNC)
    try:
        # someone else changes the same key between open and close
        put(vault, secrets, "secret/", "billing",
            {**BILLING, "API_KEY": "vault-api-theirs"})
        os.write(fd, mine.encode())
    finally:
        closed = sfs.errno_of(os.close, fd)
    m.expect_log(r"(?i)API_KEY|conflict|busy|changed|check-and-set")
    assert closed == "EBUSY"
    assert vault.get("secret/", "billing")["API_KEY"] == "vault-api-theirs"
    assert vault.version("secret/", "billing") == 2


def test_env_edit_with_concurrent_write_to_other_key_merges(
        vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    env = m.app("billing") / ".env"
    mine = sfs.read_text(env).replace("vault-api-key-0123", "vault-api-mine")
    secrets.add("vault-api-mine")
    fd = os.open(env, os.O_WRONLY | os.O_TRUNC)
    try:
        put(vault, secrets, "secret/", "billing",
            {**BILLING, "DB_PASSWORD": "vault-db-theirs"})
        os.write(fd, mine.encode())
    finally:
        closed = sfs.errno_of(os.close, fd)
    assert closed is None
    assert vault.get("secret/", "billing") == {
        **BILLING, "API_KEY": "vault-api-mine",
        "DB_PASSWORD": "vault-db-theirs"}
    assert data_writes(vault, "secret/", "billing")[-1]["options"] == \
        {"cas": 2}


# ----------------------------------------------------------------- auth

def test_approle_login_and_renewal(vault, vault_mount, secrets, tmp_path):
    put(vault, secrets, "secret/", "billing", BILLING)
    vault.add_policy("billing", {"secret/data/billing": ["read"]})
    vault.add_approle("billing", "vault-role-id-1", "vault-secret-id-1",
                      ["billing"], ttl=3)
    m = vault_mount(billing_app(), auth="approle",
                    role_id_file=write_private(tmp_path / "role-id",
                                               "vault-role-id-1\n"),
                    secret_id_file=write_private(tmp_path / "secret-id",
                                                 "vault-secret-id-1\n"))
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"
    logins = vault.requests_to("/v1/auth/approle/login", "POST")
    assert len(logins) == 1
    assert logins[0].json() == {"role_id": "vault-role-id-1",
                                "secret_id": "vault-secret-id-1"}
    assert logins[0].header("X-Vault-Token") is None
    # past 2/3 of the 3 s TTL the next request renews first
    deadline = time.monotonic() + 8
    while vault.count("/v1/auth/token/renew-self", "POST") == 0 and \
            time.monotonic() < deadline:
        time.sleep(0.5)
        assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"
    renews = vault.requests_to("/v1/auth/token/renew-self", "POST")
    assert renews, "the token was never renewed"
    assert renews[0].status == 200
    token = vault.issued_tokens[-1]
    assert renews[0].header("X-Vault-Token") == token
    # renewed, not replaced: no second login, and never a 403
    assert vault.count("/v1/auth/approle/login") == 1
    assert 403 not in [r.status for r in vault.requests]
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"


def test_kubernetes_login_rereads_jwt(vault, vault_mount, secrets, tmp_path):
    put(vault, secrets, "secret/", "billing", BILLING)
    vault.add_policy("billing", {"secret/data/billing": ["read"]})
    vault.add_k8s_role("billing", "vault-jwt-one", ["billing"], ttl=3,
                       renewable=False, mount="k8s/prod")
    jwt = tmp_path / "sa-token"
    jwt.write_text("vault-jwt-one\n")
    m = vault_mount(billing_app(), auth="kubernetes", role="billing",
                    jwt_file=jwt, mount="k8s/prod")
    app = m.app("billing")
    assert sfs.read(app / "DB_PASSWORD") == BILLING["DB_PASSWORD"].encode()
    # the projected token rotates; the old one is no longer accepted
    jwt.write_text("vault-jwt-two\n")
    vault.k8s_accept("billing", "vault-jwt-two", mount="k8s/prod")
    time.sleep(2.5)
    assert sfs.read(app / "DB_PASSWORD") == BILLING["DB_PASSWORD"].encode()
    logins = vault.requests_to("/v1/auth/k8s/prod/login", "POST")
    assert [r.json()["jwt"] for r in logins] == ["vault-jwt-one",
                                                 "vault-jwt-two"]
    assert all(r.json()["role"] == "billing" for r in logins)
    assert [r.status for r in logins] == [200, 200]


def test_token_from_environment(vault, vault_mount, secrets, monkeypatch):
    put(vault, secrets, "secret/", "billing", BILLING)
    tok = vault.create_token(["root"])
    monkeypatch.setenv("VAULT_TOKEN", tok)
    m = vault_mount(billing_app(), token_file=None)
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"
    assert {r.header("X-Vault-Token") for r in
            vault.requests_to("/v1/secret/data/billing")} == {tok}


def test_token_file_readable_by_others_is_refused(vault, vault_mount,
                                                  tmp_path):
    loose = write_private(tmp_path / "loose-token", vault.root_token + "\n",
                          mode=0o644)
    with pytest.raises(AssertionError, match=r"group or others|0644|mode"):
        vault_mount(billing_app(), token_file=loose)
    assert not any(r.header("X-Vault-Token") for r in vault.requests)


def test_403_is_eacces_and_logged(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    put(vault, secrets, "secret/", "forbidden", {"k": "vault-forbidden-v"})
    vault.add_policy("billing", {"secret/data/billing": ["read"]})
    tok = vault.create_token(["billing"], ttl=3600)
    m = vault_mount(billing_app(**{
        "env.SECRET": "vault://secret/forbidden#k"}), token=tok)
    m.expect_log(r"secret/forbidden")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "SECRET") == "EACCES"
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"
    assert 403 in statuses(vault, "/v1/secret/data/forbidden")
    lines = [ln for ln in m.stderr_text().splitlines()
             if re.match(r"secretfs: (error|warn): ", ln)]
    assert any("secret/forbidden" in ln for ln in lines), lines
    assert sfs.repeated_locator(m.stderr_text(), "vault://secret/forbidden#k",
                                "secret/forbidden") == []


# -------------------------------------------------------------- failures

def test_sealed_is_eio(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    m.expect_log(r"(?i)secret/billing|seal|503|unavailable")
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"
    vault.seal()
    assert sfs.errno_of(sfs.read, app / "API_KEY") == "EIO"
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert 503 in statuses(vault, "/v1/secret/data/billing")
    vault.unseal()
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"


@pytest.mark.parametrize("status,retry_after", [(429, "1"), (503, None),
                                                (500, None), (502, None)])
def test_transient_error_once_is_retried(vault, vault_mount, secrets,
                                         status, retry_after):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    vault.faults.fail_next(1, status, retry_after=retry_after,
                           path=r"^/v1/secret/data/billing$")
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"
    assert vault.faults.pending() == 0
    assert seq(statuses(vault, "/v1/secret/data/billing"), status), \
        statuses(vault, "/v1/secret/data/billing")
    if retry_after:
        reqs = vault.requests_to("/v1/secret/data/billing")
        i = [r.status for r in reqs].index(status)
        assert reqs[i + 1].time - reqs[i].time >= 0.9, "Retry-After ignored"


def test_dropped_connection_is_retried(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    vault.faults.drop_next(1, path=r"^/v1/secret/data/billing$")
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"
    reqs = vault.requests_to("/v1/secret/data/billing")
    faults = [r.fault for r in reqs]
    assert "drop" in faults
    assert reqs[faults.index("drop")].status is None
    assert 200 in [r.status for r in reqs[faults.index("drop") + 1:]]


GARBAGE = ["not-json", "truncated", "empty", "null", "array", "wrong-types",
           "data-null", "data-data-string", "version-string"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_body_is_eio(vault, vault_mount, secrets, kind):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    m.expect_log(r"(?i)secret/billing|garbage|json")
    rule = vault.faults.garbage_next(None, kind,
                                     path=r"^/v1/secret/data/billing$")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "API_KEY") == "EIO"
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert rule.fired >= 1
    vault.faults.remove(rule)
    # the daemon is alive and well
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"
    assert m.proc.poll() is None


def test_huge_body_is_eio(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    m.expect_log(r"(?i)secret/billing|large|limit|big")
    rule = vault.faults.huge_next(None, size=5 << 20,
                                  path=r"^/v1/secret/data/billing$")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "API_KEY") == "EIO"
    assert rule.fired >= 1
    vault.faults.remove(rule)
    assert sfs.read(app / "API_KEY") == b"vault-api-key-0123"
    assert m.proc.poll() is None


def test_hang_times_out_as_eio(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app(), settings={"request_timeout": "2s"})
    m.expect_log(r"(?i)secret/billing|time")
    vault.faults.hang_next(None, seconds=20,
                           path=r"^/v1/secret/data/billing$")
    t0 = time.monotonic()
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EIO"
    assert time.monotonic() - t0 < 8
    vault.faults.clear()
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"


# ------------------------------------------------------------ the wire

def test_every_request_carries_x_vault_request(vault_factory, vault_mount,
                                               secrets, tmp_path):
    # Vault Agent mode: a request without the header would get 412
    emu = vault_factory(require_request_header=True)
    put(emu, secrets, "secret/", "billing", BILLING)
    emu.add_policy("billing", {"secret/data/billing": ["read", "update"]})
    emu.add_approle("billing", "vault-role-id-2", "vault-secret-id-2",
                    ["billing"], ttl=60)
    m = vault_mount(billing_app(), emu=emu, auth="approle",
                    role_id_file=write_private(tmp_path / "rid",
                                               "vault-role-id-2"),
                    secret_id_file=write_private(tmp_path / "sid",
                                                 "vault-secret-id-2"))
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == sfs.render(BILLING)
    assert sfs.write_file(app / "API_KEY", secrets.add("vault-api-new")) == \
        (None, None)
    assert emu.requests, "no request reached the emulator"
    for r in emu.requests:
        values = [v for k, v in r.header_list if k.lower() == "x-vault-request"]
        assert values == ["true"], (r.method, r.path, values)
    assert 412 not in [r.status for r in emu.requests]


def test_token_never_in_daemon_log(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    vault.add_policy("billing", {"secret/data/billing": ["read", "update"]})
    tok = vault.create_token(["billing"], ttl=3600)    # registered secret
    m = vault_mount(billing_app(**{"env.X": "vault://secret/other#x"}),
                    token=tok)
    m.expect_log(r"secret/other")
    app = m.app("billing")
    sfs.read(app / "API_KEY")
    sfs.errno_of(sfs.read, app / "X")                  # a 403 on the way
    sfs.write_file(app / "API_KEY", secrets.add("vault-api-log-check"))
    assert all(r.header("X-Vault-Token") == tok for r in vault.requests
               if r.path.startswith("/v1/secret/"))
    text = m.stderr_text()
    assert tok not in text and tok[4:] not in text
    for r in vault.requests:
        assert tok not in r.raw_path and tok not in r.raw_query


def test_namespace_header(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", {"K": "vault-in-team1"},
        namespace="team1")
    put(vault, secrets, "secret/", "billing", {"K": "vault-in-root"})
    m = vault_mount(billing_app(), namespace="team1")
    assert sfs.read(m.app("billing") / "K") == b"vault-in-team1"
    data_reqs = vault.requests_to("/v1/secret/data/billing")
    assert data_reqs
    assert {r.header("X-Vault-Namespace").strip("/") for r in data_reqs} == \
        {"team1"}


def test_redirect_same_origin_is_followed(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app())
    vault.faults.fail_next(1, 307, path=r"^/v1/secret/data/billing$",
                           headers={"Location": vault.url +
                                    "/v1/secret/data/billing"})
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"
    reqs = vault.requests_to("/v1/secret/data/billing")
    i = [r.status for r in reqs].index(307)
    assert reqs[i + 1].status == 200
    assert reqs[i + 1].header("X-Vault-Token") == vault.root_token


def test_standby_redirect_to_other_origin_keeps_token(vault_factory,
                                                      vault_mount, secrets):
    active = vault_factory()
    standby = vault_factory(root_token=active.root_token)
    put(active, secrets, "secret/", "billing", BILLING)
    standby.standby(active.url)
    m = vault_mount(billing_app(), emu=standby)
    m.expect_log(r"(?i)secret/billing|redirect|permission")
    app = m.app("billing")
    result = sfs.errno_of(sfs.read, app / "API_KEY")
    assert 307 in [r.status for r in standby.requests]
    # the token went to the node the client was configured with, never on
    # to the other origin the redirect named
    assert all(r.header("X-Vault-Token") is None for r in active.requests)
    assert result in ("EACCES", "EIO")


def test_https_to_http_redirect_refused(vault_factory, vault_mount, secrets):
    plain = vault_factory()
    tls = vault_factory(tls=True, root_token=plain.root_token)
    put(plain, secrets, "secret/", "billing", BILLING)
    tls.standby(plain.url)
    m = vault_mount(billing_app(), emu=tls, ca_file=tls.tls.ca_file)
    m.expect_log(r"(?i)secret/billing|redirect|https")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EIO"
    assert plain.requests == []


# ------------------------------------------------------------------ TLS

def test_tls_with_ca_file(vault_factory, vault_mount, secrets):
    emu = vault_factory(tls=True)
    put(emu, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app(), emu=emu, ca_file=emu.tls.ca_file)
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"


def test_tls_with_ca_path(vault_factory, vault_mount, secrets):
    emu = vault_factory(tls=True)
    put(emu, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app(), emu=emu, ca_path=emu.tls.ca_dir)
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"


def test_tls_unknown_ca_is_eio(vault_factory, vault_mount, secrets):
    emu = vault_factory(tls=True)
    put(emu, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app(), emu=emu)
    m.expect_log(r"(?i)secret/billing|tls|certificate|ssl")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EIO"
    assert emu.requests == []


def test_tls_skip_verify_warns(vault_factory, vault_mount, secrets):
    emu = vault_factory(tls=True)
    put(emu, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app(), emu=emu, tls_skip_verify="true")
    m.expect_log(r"tls_skip_verify")
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"
    assert re.search(r"^secretfs: warn: .*tls_skip_verify", m.stderr_text(),
                     re.M)


def test_tls_client_certificate(vault_factory, vault_mount, secrets):
    emu = vault_factory(tls=True, tls_client_auth=True)
    put(emu, secrets, "secret/", "billing", BILLING)
    m = vault_mount(billing_app(), emu=emu, ca_file=emu.tls.ca_file,
                    client_cert=emu.tls.client_cert,
                    client_key=emu.tls.client_key)
    assert sfs.read(m.app("billing") / "API_KEY") == b"vault-api-key-0123"
