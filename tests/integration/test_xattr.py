"""Extended attributes: user.secretfs.{source,version,age,stale,error}
on key files, mapped keys, generated keys, .env and .env.keys (never a
secret value in any of them), and the two controls: user.secretfs.refresh
(revalidate now) and user.secretfs.regenerate (a new value for a
generate: key, its argon2id hashes re-derived, nothing else touched).

Vault (the emulator) is the store here: requests are counted there and
versions are plain numbers.
"""

import os
import re
import subprocess
import time

import pytest

pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402
from vault_fixtures import data_writes  # noqa: E402

try:
    import argon2   # Debian: python3-argon2
except ImportError:     # pragma: no cover - depends on the host
    argon2 = None

XATTR = "user.secretfs."
NAMES = ["source", "version", "age", "stale", "error"]

BILLING = {"API_KEY": "xa-api-key-value-0001",
           "DB_USER": "xa-db-user-value-0002"}
SHARED = {"password": "xa-shared-db-password-03"}
# a real dotenvx key: .env.encrypted, the view of it, must read too
DOTENVX = {"private_key": "5c0a9d1e2f3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"}
PROD_KEYS = {"prod": "6d1b0e2f3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6"}

APP = {"store": "vault://secret/billing",
       "env.DB_PASSWORD": "vault://secret/shared/db#password",
       "env.PASSWORD": "generate:password:24",
       "env.TOKEN": "generate:hex:16",
       "env.TOKEN_HASH": "generate:argon2id:TOKEN",
       "keys.default": "vault://secret/dotenvx#private_key",
       "keys.prod": "vault://kv1/keys#prod",
       "mode": "0600"}

# the store's own keys, and the generated ones (stored there too)
STORE_KEYS = sorted(BILLING)
GENERATED = ["PASSWORD", "TOKEN", "TOKEN_HASH"]


def put(emu, secrets, mount, path, data):
    for v in data.values():
        secrets.add(v)
    return emu.put(mount, path, data)


def xget(path, name):
    return os.getxattr(path, XATTR + name).decode()


def xall(path):
    return {n: xget(path, n) for n in NAMES}


def gets(emu, api_path):
    return emu.count(api_path, "GET")


SETTINGS = {"ttl": "5m", "refresh": "5m", "max_stale": "1h"}


@pytest.fixture
def make_billing(vault, vault_mount, secrets):
    """Factory: the app mounted (ttl and refresh far away unless told
    otherwise) and read once, so its generated values exist; returns
    (mount, app dir, .env values)."""
    def make(settings=None):
        put(vault, secrets, "secret/", "billing", BILLING)
        put(vault, secrets, "secret/", "shared/db", SHARED)
        put(vault, secrets, "secret/", "dotenvx", DOTENVX)
        put(vault, secrets, "kv1/", "keys", PROD_KEYS)
        m = vault_mount({"billing": dict(APP)},
                        settings={**SETTINGS, **(settings or {})})
        app = m.app("billing")
        env = sfs.parse(sfs.read_text(app / ".env"))
        for k in GENERATED:
            secrets.add(env[k])
        return m, app, env
    return make


@pytest.fixture
def billing(make_billing):
    return make_billing()


def assert_no_secret(secrets, text, where):
    found = [v for v in secrets.values if v in text]
    # name the place and how many, never the value
    assert not found, f"{len(found)} secret value(s) in {where}"


# -------------------------------------------------------------- contents

def test_attributes_of_each_kind_of_file(vault, billing):
    m, app, env = billing
    store_version = str(vault.version("secret/", "billing"))
    # the first read generated three keys: one write on top of version 1
    assert store_version == "2"

    key = xall(app / "API_KEY")
    assert key["source"] == "vault://secret/billing#API_KEY"
    assert key["version"] == store_version
    assert key["stale"] == "0" and key["error"] == ""

    mapped = xall(app / "DB_PASSWORD")
    assert mapped["source"] == "vault://secret/shared/db#password"
    assert mapped["version"] == "1"
    assert mapped["stale"] == "0" and mapped["error"] == ""

    gen = xall(app / "TOKEN")
    assert gen["source"] == "generate:hex:16"
    assert gen["version"] == store_version     # it lives in the store
    assert xget(app / "TOKEN_HASH", "source") == "generate:argon2id:TOKEN"
    assert xget(app / "PASSWORD", "source") == "generate:password:24"

    whole = xall(app / ".env")
    assert whole["source"].split("\n") == [
        "vault://secret/billing",
        "vault://secret/shared/db#password",
        "generate:password:24",
        "generate:hex:16",
        "generate:argon2id:TOKEN",
    ]
    assert whole["version"] == store_version
    assert whole["stale"] == "0" and whole["error"] == ""

    keys = xall(app / ".env.keys")
    assert keys["source"].split("\n") == [
        "vault://secret/dotenvx#private_key",
        "vault://kv1/keys#prod",
    ]
    assert keys["version"] == "1"
    assert keys["stale"] == "0" and keys["error"] == ""
    assert sfs.parse(sfs.read_text(app / ".env.keys")) == {
        "DOTENV_PRIVATE_KEY": DOTENVX["private_key"],
        "DOTENV_PRIVATE_KEY_PROD": PROD_KEYS["prod"]}

    for name in ["API_KEY", "DB_PASSWORD", "TOKEN", ".env", ".env.keys"]:
        age = xget(app / name, "age")
        assert re.fullmatch(r"\d+", age), (name, age)
        assert int(age) <= 5, (name, age)
        assert sorted(os.listxattr(app / name)) == \
            sorted(XATTR + n for n in NAMES), name


def test_age_counts_seconds_since_fetch(billing):
    m, app, env = billing
    assert int(xget(app / "API_KEY", "age")) <= 1
    time.sleep(2.2)
    assert 2 <= int(xget(app / "API_KEY", "age")) <= 4
    assert 2 <= int(xget(app / ".env", "age")) <= 4
    # a forced revalidation starts the count again
    os.setxattr(app / "API_KEY", XATTR + "refresh", b"1")
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    assert int(xget(app / "API_KEY", "age")) <= 1


def test_getfattr_dump(billing, secrets):
    m, app, env = billing
    for name in ["API_KEY", "DB_PASSWORD", "TOKEN", ".env", ".env.keys"]:
        res = subprocess.run(["getfattr", "-d", str(app / name)],
                             capture_output=True, text=True, timeout=20)
        assert res.returncode == 0, res.stderr
        dumped = dict(re.findall(r'^(user\.secretfs\.\w+)="(.*)"$',
                                 res.stdout, re.M))
        assert sorted(dumped) == sorted(XATTR + n for n in NAMES), res.stdout
        assert dumped[XATTR + "stale"] == "0"
        assert_no_secret(secrets, res.stdout, f"getfattr -d {name}")
    res = subprocess.run(["getfattr", "-n", XATTR + "source", "--only-values",
                          str(app / "API_KEY")],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 0 and res.stdout == \
        "vault://secret/billing#API_KEY"


def test_no_attribute_holds_a_value(vault, make_billing, secrets):
    # every read revalidates, and a failure is not covered by a stale value
    m, app, env = make_billing({"ttl": "0", "max_stale": "0"})
    files = sorted(os.listdir(app))
    assert ".env.keys" in files and "TOKEN_HASH" in files
    assert env["TOKEN_HASH"].startswith("$argon2id$")

    def check(where):
        for name in files:
            for attr in os.listxattr(app / name):
                assert_no_secret(secrets, xget(app / name, attr[len(XATTR):]),
                                 f"{where}: {name} {attr}")

    check("healthy")
    # and while failing: the error attribute quotes the provider, which
    # must not bring a value along
    m.expect_log(r"secret/billing|secret/shared|secret/dotenvx|kv1/keys")
    # 501: an error the HTTP layer does not retry, so this stays quick
    vault.faults.fail_next(None, 501, path=r"^/v1/(secret|kv1)/")
    for name in files:
        assert sfs.errno_of(sfs.read, app / name) == "EIO", name
    for name in ["API_KEY", "DB_PASSWORD", "TOKEN", ".env", ".env.keys"]:
        error = xget(app / name, "error")
        assert "501" in error, (name, error)
        assert xget(app / name, "stale") == "0"
    check("failing")


def test_unknown_names(billing):
    m, app, env = billing
    assert sfs.errno_of(os.getxattr, app / "API_KEY", XATTR + "value") == \
        "ENODATA"
    assert sfs.errno_of(os.getxattr, app / "API_KEY", "user.other") == \
        "ENODATA"
    assert sfs.errno_of(os.setxattr, app / "API_KEY", XATTR + "frobnicate",
                        b"1") in ("ENOTSUP", "EOPNOTSUPP")
    assert sfs.errno_of(os.setxattr, app / "API_KEY", "user.mine",
                        b"1") in ("ENOTSUP", "EOPNOTSUPP")
    # the app folder has no attributes of its own to show
    assert os.listxattr(app) == []


# -------------------------------------------------------------- refresh

def test_refresh_on_a_file_fetches_again(vault, billing, secrets):
    m, app, env = billing
    billing_api = "/v1/secret/data/billing"
    shared_api = "/v1/secret/data/shared/db"
    for _ in range(3):
        assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
        assert sfs.read(app / "DB_PASSWORD") == SHARED["password"].encode()
    s0 = gets(vault, shared_api)
    # a change in the store is not seen within ttl...
    put(vault, secrets, "secret/", "shared/db",
        {"password": "xa-shared-db-password-new"})
    assert sfs.read(app / "DB_PASSWORD") == SHARED["password"].encode()
    assert gets(vault, shared_api) == s0
    # ...until asked for (setfattr(1) as a user would)
    subprocess.run(["setfattr", "-n", XATTR + "refresh", "-v", "1",
                    str(app / "DB_PASSWORD")], check=True, timeout=20)
    assert sfs.read(app / "DB_PASSWORD") == b"xa-shared-db-password-new"
    assert gets(vault, shared_api) == s0 + 1
    assert xget(app / "DB_PASSWORD", "version") == "2"
    assert sfs.read(app / "DB_PASSWORD") == b"xa-shared-db-password-new"
    assert gets(vault, shared_api) == s0 + 1

    # a store key: the next read fetches the store entry once, then it is
    # cached again
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    b0 = gets(vault, billing_api)
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    assert gets(vault, billing_api) == b0
    os.setxattr(app / "API_KEY", XATTR + "refresh", b"1")
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    assert gets(vault, billing_api) == b0 + 1
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    assert gets(vault, billing_api) == b0 + 1


def test_refresh_on_the_app_folder_fetches_every_source(vault, billing):
    m, app, env = billing
    apis = ["/v1/secret/data/billing", "/v1/secret/data/shared/db",
            "/v1/secret/data/dotenvx", "/v1/kv1/keys"]
    text, keys = sfs.read_text(app / ".env"), sfs.read_text(app / ".env.keys")
    before = [gets(vault, a) for a in apis]
    assert sfs.read_text(app / ".env") == text
    assert [gets(vault, a) for a in apis] == before
    subprocess.run(["setfattr", "-n", XATTR + "refresh", "-v", "1", str(app)],
                   check=True, timeout=20)
    assert sfs.read_text(app / ".env") == text
    assert sfs.read_text(app / ".env.keys") == keys
    assert [gets(vault, a) for a in apis] == [n + 1 for n in before]
    assert sfs.parse(text) == env


def test_refresh_while_the_provider_is_down_keeps_the_stale_value(
        vault, billing):
    # A forced revalidation that fails is a failed revalidation: within
    # max_stale (1h here) the last good value is still served, marked.
    m, app, env = billing
    m.expect_log(r"secret/billing|secret/shared|sealed|503")
    vault.seal()
    os.setxattr(app, XATTR + "refresh", b"1")
    assert sfs.errno_of(sfs.read, app / "API_KEY") is None, \
        "refresh while the provider is down threw the stale value away"
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    assert xget(app / "API_KEY", "stale") == "1"
    assert xget(app / "API_KEY", "error")
    vault.unseal()
    os.setxattr(app, XATTR + "refresh", b"1")
    assert sfs.read(app / "API_KEY") == BILLING["API_KEY"].encode()
    assert xget(app / "API_KEY", "stale") == "0"
    assert xget(app / "API_KEY", "error") == ""


# ----------------------------------------------------------- regenerate

def store_values(vault):
    return vault.get("secret/", "billing")


def verify_argon2(hashed, value):
    """True when hashed is an argon2id hash of value."""
    assert hashed.startswith("$argon2id$"), hashed[:10]
    if argon2 is None:
        return None
    try:
        return argon2.PasswordHasher().verify(hashed, value)
    except argon2.exceptions.VerifyMismatchError:
        return False


def test_regenerate_changes_exactly_that_key(vault, billing, secrets):
    m, app, env = billing
    stored = store_values(vault)
    assert {k: stored[k] for k in GENERATED} == {k: env[k] for k in GENERATED}
    assert verify_argon2(env["TOKEN_HASH"], env["TOKEN"]) in (True, None)
    version = vault.version("secret/", "billing")

    subprocess.run(["setfattr", "-n", XATTR + "regenerate", "-v", "1",
                    str(app / "TOKEN")], check=True, timeout=20)
    after = sfs.parse(sfs.read_text(app / ".env"))
    for k in GENERATED:
        secrets.add(after[k])
    assert re.fullmatch(r"[0-9a-f]{32}", after["TOKEN"])
    assert after["TOKEN"] != env["TOKEN"]
    # the hash made of it follows; everything else stays
    assert after["TOKEN_HASH"] != env["TOKEN_HASH"]
    assert verify_argon2(after["TOKEN_HASH"], after["TOKEN"]) in (True, None)
    assert verify_argon2(after["TOKEN_HASH"], env["TOKEN"]) in (False, None)
    assert after["PASSWORD"] == env["PASSWORD"]
    for k in [*STORE_KEYS, "DB_PASSWORD"]:
        assert after[k] == env[k], k
    # stored, in one compare-and-set write
    assert vault.version("secret/", "billing") == version + 1
    assert store_values(vault) == {**stored, "TOKEN": after["TOKEN"],
                                   "TOKEN_HASH": after["TOKEN_HASH"]}
    assert data_writes(vault, "secret/", "billing")[-1]["options"] == \
        {"cas": version}
    assert sfs.read(app / "TOKEN") == after["TOKEN"].encode()
    assert os.stat(app / "TOKEN").st_size == len(after["TOKEN"])
    assert xget(app / "TOKEN", "version") == str(version + 1)

    # another generated key: only it changes
    os.setxattr(app / "PASSWORD", XATTR + "regenerate", b"1")
    third = sfs.parse(sfs.read_text(app / ".env"))
    secrets.add(third["PASSWORD"])
    assert third["PASSWORD"] != after["PASSWORD"]
    assert len(third["PASSWORD"]) == 24
    assert {k: v for k, v in third.items() if k != "PASSWORD"} == \
        {k: v for k, v in after.items() if k != "PASSWORD"}
    assert store_values(vault)["PASSWORD"] == third["PASSWORD"]

    # the hash itself: a fresh salt, still a hash of the same TOKEN
    os.setxattr(app / "TOKEN_HASH", XATTR + "regenerate", b"1")
    fourth = sfs.parse(sfs.read_text(app / ".env"))
    secrets.add(fourth["TOKEN_HASH"])
    assert fourth["TOKEN_HASH"] != third["TOKEN_HASH"]
    assert fourth["TOKEN"] == third["TOKEN"]
    assert verify_argon2(fourth["TOKEN_HASH"], fourth["TOKEN"]) in (True,
                                                                     None)


@pytest.mark.skipif(argon2 is None and os.environ.get("CI") != "true",
                    reason="python3-argon2 is not installed")
def test_regenerated_hash_verifies_with_argon2(billing, secrets):
    m, app, env = billing
    assert verify_argon2(env["TOKEN_HASH"], env["TOKEN"]) is True
    os.setxattr(app / "TOKEN", XATTR + "regenerate", b"1")
    after = sfs.parse(sfs.read_text(app / ".env"))
    secrets.add(after["TOKEN"])
    secrets.add(after["TOKEN_HASH"])
    assert verify_argon2(after["TOKEN_HASH"], after["TOKEN"]) is True
    assert verify_argon2(after["TOKEN_HASH"], env["TOKEN"]) is False
    assert sfs.read(app / "TOKEN_HASH") == after["TOKEN_HASH"].encode()


def test_regenerate_refused_on_other_keys(vault, billing):
    m, app, env = billing
    m.expect_log(r"is not a generate: key")
    version = vault.version("secret/", "billing")
    for name in ["API_KEY", "DB_PASSWORD", ".env", ".env.keys", ""]:
        target = app / name if name else app
        assert sfs.errno_of(os.setxattr, target, XATTR + "regenerate",
                            b"1") == "EINVAL", name or "the app folder"
    res = subprocess.run(["setfattr", "-n", XATTR + "regenerate", "-v", "1",
                          str(app / "API_KEY")], capture_output=True,
                         text=True, timeout=20)
    assert res.returncode != 0 and "Invalid argument" in res.stderr
    assert vault.version("secret/", "billing") == version
    assert sfs.parse(sfs.read_text(app / ".env")) == env


def test_file_store_attributes(mount, store, secrets):
    store.put("team/filed", {"KEY": "xa-file-store-value-06"})
    m = mount({"filed": {"store": "local://team/filed", "mode": "0600"}},
              settings={"ttl": "5m", "refresh": "5m"})
    app = m.app("filed")
    assert sfs.read(app / "KEY") == b"xa-file-store-value-06"
    a = xall(app / "KEY")
    assert a["source"] == "local://team/filed#KEY"
    assert re.fullmatch(r"[0-9a-f]+", a["version"]), a["version"]
    assert (a["stale"], a["error"]) == ("0", "")
    assert xget(app / ".env", "source") == "local://team/filed"
    assert xget(app / ".env", "version") == a["version"]
    # a write through the mount is a new version
    new = secrets.add("xa-file-store-value-07")
    assert sfs.write_file(app / "KEY", new) == (None, None)
    assert xget(app / "KEY", "version") not in ("", a["version"])
    assert_no_secret(secrets, repr(xall(app / "KEY")), "KEY's attributes")
