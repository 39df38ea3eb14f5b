"""Generated values: created on first access, stored, never changed, and the
same for every mount that reads them."""

import base64
import re
import threading
import uuid

import pytest

import sfs

SHAPES = {
    "generate:base64:32": lambda v: len(base64.b64decode(v, validate=True)) == 32
    and len(v) == 44,
    "generate:base64url:32": lambda v: re.fullmatch(r"[A-Za-z0-9_-]{43}", v)
    is not None,
    "generate:hex:16": lambda v: re.fullmatch(r"[0-9a-f]{32}", v) is not None,
    "generate:password:24": lambda v: re.fullmatch(r"[A-Za-z0-9]{24}", v)
    is not None,
    "generate:password": lambda v: re.fullmatch(r"[A-Za-z0-9]{32}", v)
    is not None,
    "generate:uuid": lambda v: uuid.UUID(v).version == 4 and len(v) == 36
    and v == v.lower(),
    "generate:fernet": lambda v: len(base64.urlsafe_b64decode(v)) == 32
    and len(v) == 44,
}


def gen_apps(store, prefix="gen"):
    env = {f"env.K{i}": spec for i, spec in enumerate(SHAPES)}
    store.put(f"team/{prefix}", {"NAME": f"{prefix}-entry-name"})
    return {prefix: {"store": f"local://team/{prefix}", **env}}


def test_generated_values_have_the_right_shape(mount, store, secrets):
    m = mount(gen_apps(store))
    app = m.app("gen")
    for i, spec in enumerate(SHAPES):
        v = sfs.read_text(app / f"K{i}")
        secrets.add(v)
        assert SHAPES[spec](v), f"{spec} gave a value of the wrong shape"
    # distinct values, not one reused
    values = [sfs.read_text(app / f"K{i}") for i in range(len(SHAPES))]
    assert len(set(values)) == len(values)


def test_generated_on_env_read_and_stored(mount, store, secrets):
    store.put("team/web", {"NAME": "web-entry-name"})
    m = mount({"web": {"store": "local://team/web",
                       "env.SESSION_SECRET": "generate:base64:32",
                       "env.ADMIN_PASSWORD": "generate:password:24"}})
    assert "SESSION_SECRET" not in store.get("team/web")
    env = sfs.parse(sfs.read_text(m.app("web") / ".env"))
    for v in env.values():
        secrets.add(v)
    assert set(env) == {"NAME", "SESSION_SECRET", "ADMIN_PASSWORD"}
    stored = store.get("team/web")
    assert stored["SESSION_SECRET"] == env["SESSION_SECRET"]
    assert stored["ADMIN_PASSWORD"] == env["ADMIN_PASSWORD"]
    assert stored["NAME"] == "web-entry-name"
    # the key files serve the same values
    assert sfs.read_text(m.app("web") / "SESSION_SECRET") == env["SESSION_SECRET"]
    assert sfs.read_text(m.app("web") / "ADMIN_PASSWORD") == env["ADMIN_PASSWORD"]


def test_generated_on_key_read_and_stable(mount, store, secrets):
    store.put("team/web", {"NAME": "web-entry-name"})
    m = mount({"web": {"store": "local://team/web",
                       "env.SESSION_SECRET": "generate:base64:32"}})
    first = secrets.add(sfs.read_text(m.app("web") / "SESSION_SECRET"))
    assert store.get("team/web")["SESSION_SECRET"] == first
    for _ in range(5):
        assert sfs.read_text(m.app("web") / "SESSION_SECRET") == first
    assert sfs.parse(sfs.read_text(m.app("web") / ".env"))["SESSION_SECRET"] == first


def test_existing_store_value_is_kept(mount, store):
    store.put("team/web", {"SESSION_SECRET": "gen-preexisting-value"})
    m = mount({"web": {"store": "local://team/web",
                       "env.SESSION_SECRET": "generate:base64:32"}})
    assert sfs.read(m.app("web") / "SESSION_SECRET") == b"gen-preexisting-value"
    assert store.get("team/web") == {"SESSION_SECRET": "gen-preexisting-value"}


def test_persists_across_remount(mount, store, secrets):
    store.put("team/web", {"NAME": "web-entry-name"})
    apps = {"web": {"store": "local://team/web",
                    "env.SESSION_SECRET": "generate:base64:32",
                    "env.ADMIN_PASSWORD": "generate:password:24"}}
    m1 = mount(apps)
    s1 = secrets.add(sfs.read_text(m1.app("web") / "SESSION_SECRET"))
    p1 = secrets.add(sfs.read_text(m1.app("web") / "ADMIN_PASSWORD"))
    m1.unmount()
    stored = store.get("team/web")
    assert (stored["SESSION_SECRET"], stored["ADMIN_PASSWORD"]) == (s1, p1)
    raw = store.raw("team/web")

    m2 = mount(apps)
    assert sfs.read_text(m2.app("web") / "SESSION_SECRET") == s1
    assert sfs.read_text(m2.app("web") / "ADMIN_PASSWORD") == p1
    env = sfs.parse(sfs.read_text(m2.app("web") / ".env"))
    assert (env["SESSION_SECRET"], env["ADMIN_PASSWORD"]) == (s1, p1)
    # nothing was regenerated or rewritten
    assert store.raw("team/web") == raw


@pytest.mark.timeout_s(120)
def test_two_mounts_converge(mount, store, secrets):
    rounds = 6
    apps = {}
    for i in range(rounds):
        store.put(f"race/app{i}", {"NAME": f"race-entry-{i}"})
        apps[f"app{i}"] = {"store": f"local://race/app{i}",
                           "env.TOKEN": "generate:base64:32",
                           "env.PASSWORD": "generate:password:20"}
    m1 = mount(apps)
    m2 = mount(apps)

    for i in range(rounds):
        # alternate the file raced on: the key file, then the .env
        name = "TOKEN" if i % 2 == 0 else ".env"
        barrier = threading.Barrier(2)
        results = [None, None]

        def reader(slot, m):
            barrier.wait(timeout=10)
            try:
                results[slot] = sfs.read_text(m.app(f"app{i}") / name)
            except OSError as e:
                results[slot] = e

        threads = [threading.Thread(target=reader, args=(j, mm))
                   for j, mm in enumerate((m1, m2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in results:
            assert isinstance(r, str), f"round {i}: read failed: {r!r}"
            secrets.add(r)
        if name == ".env":
            envs = [sfs.parse(r) for r in results]
            for e in envs:
                for v in e.values():
                    secrets.add(v)
            assert envs[0] == envs[1], f"round {i}: mounts disagree"
            token = envs[0]["TOKEN"]
        else:
            assert results[0] == results[1], f"round {i}: mounts disagree"
            token = results[0]
        stored = store.get(f"race/app{i}")
        assert stored["TOKEN"] == token
        assert stored["NAME"] == f"race-entry-{i}"
        # and both keep serving it
        for mm in (m1, m2):
            assert sfs.read_text(mm.app(f"app{i}") / "TOKEN") == token
        assert sfs.read_text(m1.app(f"app{i}") / "PASSWORD") == \
            sfs.read_text(m2.app(f"app{i}") / "PASSWORD")
        secrets.add(store.get(f"race/app{i}")["PASSWORD"])
