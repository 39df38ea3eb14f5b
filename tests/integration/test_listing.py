"""The tree: root lists the apps, an app lists .env, .env.keys and its keys."""

import os
import stat

import sfs


def test_root_lists_apps_sorted(mount, store):
    store.put("team/web", {"WEB_TOKEN": "listing-web-token"})
    store.put("team/api", {"API_TOKEN": "listing-api-token"})
    store.put("team/billing", {"DB_PASSWORD": "listing-db-pw"})
    # configured out of order on purpose
    m = mount({
        "web": {"store": "local://team/web"},
        "billing": {"store": "local://team/billing"},
        "api": {"store": "local://team/api"},
    })
    assert os.listdir(m.path) == ["api", "billing", "web"]
    st = os.stat(m.path)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o555
    assert (st.st_uid, st.st_gid) == (0, 0)
    for app in ("api", "billing", "web"):
        assert stat.S_ISDIR(os.stat(m.app(app)).st_mode)


def test_app_lists_env_and_keys(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "listing-db-pw",
                               "STRIPE_KEY": "listing-stripe"})
    store.put("team/shared", {"DATABASE_URL": "postgres://listing/db"})
    m = mount({"billing": {
        "store": "local://team/billing",
        "env.DATABASE_URL": "local://team/shared#DATABASE_URL",
        "env.SECRET_KEY": "generate:hex:16",
    }})
    assert sorted(os.listdir(m.app("billing"))) == sorted(
        [".env", "DATABASE_URL", "DB_PASSWORD", "SECRET_KEY", "STRIPE_KEY"])
    for name in os.listdir(m.app("billing")):
        assert stat.S_ISREG(os.stat(m.app("billing") / name).st_mode), name


def test_env_keys_listed_only_with_keys(mount, store):
    store.put("team/a", {"A_VALUE": "listing-a-value"})
    store.put("team/b", {"B_VALUE": "listing-b-value"})
    store.put("team/dotenvx", {"private_key": "a1" * 32})
    m = mount({
        "plain": {"store": "local://team/a"},
        "withkeys": {"store": "local://team/b",
                     "keys.production": "local://team/dotenvx#private_key"},
    })
    assert sorted(os.listdir(m.app("plain"))) == [".env", "A_VALUE"]
    # each keys.ENV also shows its encrypted view (docs/dotenvx.md)
    assert sorted(os.listdir(m.app("withkeys"))) == [
        ".env", ".env.keys", ".env.production.encrypted", "B_VALUE"]
    assert sfs.errno_of(os.stat, m.app("plain") / ".env.keys") == "ENOENT"
    assert sfs.errno_of(os.stat, m.app("plain") /
                        ".env.production.encrypted") == "ENOENT"


def test_missing_names_are_enoent(mount, store):
    store.put("team/a", {"A_VALUE": "listing-a-value"})
    m = mount({"plain": {"store": "local://team/a"}})
    assert sfs.errno_of(os.stat, m.path / "nosuchapp") == "ENOENT"
    assert sfs.errno_of(os.stat, m.app("plain") / "NO_SUCH_KEY") == "ENOENT"
    assert sfs.errno_of(sfs.read, m.app("plain") / "NO_SUCH_KEY") == "ENOENT"
