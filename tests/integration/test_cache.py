"""The cache seen through real mounts: ttl, the background refresher,
single-flight misses, stale-if-error up to max_stale, the LRU bound,
per-app overrides, and the kernel cache kept right by invalidation (or
bypassed with -o kernel_cache=no).

Provider requests are counted at the Vault emulator; the file store is
used where nothing needs counting. Timings are chosen so each assertion
has one cause: a refresh test uses a ttl far longer than the time it
waits, so only the refresher can explain what it sees, and an app that
must keep its cached value has both ttl and refresh far in the future.
"""

import os
import random
import threading
import time

import pytest

pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402
from vault_fixtures import (config_text, provider_section,  # noqa: E402
                            write_private)

XATTR = "user.secretfs."


# ---------------------------------------------------------------- helpers

@pytest.fixture
def vault_mount_args(vault, mount, store, tmp_path):
    """Like vault_mount (token auth, root token), plus the daemon's
    command-line args. Takes vault before mount, so the emulator stops
    only after the daemons have unmounted."""
    def start(apps, settings=None, args=()):
        token = write_private(tmp_path / "vault-token",
                              vault.root_token + "\n")
        section = provider_section(vault, "vault", auth="token",
                                   token_file=token)
        return mount(config=config_text(store.dir, [section], apps, settings),
                     args=args)
    return start


def put(emu, secrets, mount, path, data):
    for v in data.values():
        secrets.add(v)
    return emu.put(mount, path, data)


def data_gets(emu, path):
    """GETs of a KV v2 entry under secret/."""
    return emu.count(f"/v1/secret/data/{path}", "GET")


def wait_until(pred, timeout, interval=0.02):
    """Poll pred until true; the seconds it took, or None on timeout."""
    start = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)


def xattr(path, name):
    return os.getxattr(path, XATTR + name).decode()


# ------------------------------------------------- the background refresher

def test_store_change_visible_within_refresh(mount, store):
    store.put("team/live", {"TOKEN": "live-token-one",
                            "OTHER": "live-other-value"})
    # ttl 30 s: nothing below waits that long, so a change seen within
    # the second is the refresher's doing, not a revalidating open
    m = mount({"live": {"store": "local://team/live"}},
              settings={"ttl": "30s", "refresh": "300ms"})
    app = m.app("live")
    assert sfs.read(app / "TOKEN") == b"live-token-one"
    assert "live-other-value" in sfs.read_text(app / ".env")
    assert sfs.read(app / "OTHER") == b"live-other-value"
    before = {n: os.stat(app / n) for n in ("TOKEN", "OTHER", ".env")}
    time.sleep(1.1)     # mtimes have a resolution of one second

    new = "live-token-two-and-longer"
    store.put("team/live", {"TOKEN": new, "OTHER": "live-other-value"})
    # stat only: the kernel holds the attributes for an hour, so the new
    # size shows only if the refresher found the change and invalidated
    took = wait_until(lambda: os.stat(app / "TOKEN").st_size == len(new),
                      timeout=3.0)
    assert took is not None, "the change never showed (refresh = 300ms)"
    # refresh 300ms +-10%, a refresher pass every refresh/4, and slack
    assert took < 1.5, f"the change took {took:.2f} s to show"
    st = os.stat(app / "TOKEN")
    assert st.st_mtime > before["TOKEN"].st_mtime
    assert st.st_ino == before["TOKEN"].st_ino
    assert sfs.read(app / "TOKEN") == new.encode()
    env = sfs.parse(sfs.read_text(app / ".env"))
    assert env == {"TOKEN": new, "OTHER": "live-other-value"}
    assert os.stat(app / ".env").st_mtime > before[".env"].st_mtime
    # the app's other file did not change: its mtime stays
    assert sfs.read(app / "OTHER") == b"live-other-value"
    assert os.stat(app / "OTHER").st_mtime == before["OTHER"].st_mtime


@pytest.mark.timeout_s(90)
def test_unchanged_value_keeps_mtime_across_refreshes(vault, vault_mount,
                                                      secrets):
    data = {"API_KEY": "steady-api-key-0001", "DB": "steady-db-pw-0002"}
    put(vault, secrets, "secret/", "steady", data)
    m = vault_mount({"steady": {"store": "vault://secret/steady"}},
                    settings={"ttl": "1s", "refresh": "300ms",
                              "max_stale": "1h"})
    app = m.app("steady")
    text = sfs.render(data)
    assert sfs.read_text(app / ".env") == text
    assert sfs.read(app / "API_KEY") == data["API_KEY"].encode()
    before = {n: os.stat(app / n) for n in (".env", "API_KEY")}
    gets = data_gets(vault, "steady")

    end = time.monotonic() + 3.2
    while time.monotonic() < end:
        assert sfs.read_text(app / ".env") == text
        assert sfs.read(app / "API_KEY") == data["API_KEY"].encode()
        for n, st0 in before.items():
            st = os.stat(app / n)
            assert (st.st_mtime_ns, st.st_size, st.st_ino) == \
                (st0.st_mtime_ns, st0.st_size, st0.st_ino), \
                f"{n} changed although the store did not"
        time.sleep(0.2)
    # it was revalidated all along (every 300ms, and past each ttl)
    assert data_gets(vault, "steady") - gets >= 5


# ------------------------------------------------------ single flight, ttl

@pytest.mark.timeout_s(120)
def test_concurrent_cold_readers_share_one_fetch(vault, vault_mount,
                                                 secrets):
    # 20 fresh apps, each with its own store entry and all with two keys
    # of one shared entry. The kernel serializes lookups within a folder,
    # not across folders: the daemon sees many misses on the shared entry
    # at once, and on each store entry from .env and its key files.
    napps = 20
    shared = {"password": "cold-shared-password", "user": "cold-shared-user"}
    put(vault, secrets, "secret/", "shared", shared)
    apps, expected = {}, {}
    for i in range(napps):
        name = f"cold{i:02d}"
        own = {"OWN": f"cold-own-value-{i:02d}-x",
               "MORE": f"cold-more-{i:02d}-y"}
        put(vault, secrets, "secret/", f"cold/{name}", own)
        apps[name] = {"store": f"vault://secret/cold/{name}",
                      "env.SHARED": "vault://secret/shared#password",
                      "env.SHARED_USER": "vault://secret/shared#user"}
        want = {**own, "SHARED": shared["password"],
                "SHARED_USER": shared["user"]}
        expected[(name, ".env")] = sfs.render(want).encode()
        for k, v in want.items():
            expected[(name, k)] = v.encode()
    m = vault_mount(apps, settings={"ttl": "5m", "refresh": "5m",
                                    "max_stale": "1h"})
    vault.faults.latency(0.1, path=r"^/v1/secret/data/")
    # 200 readers: most open .env, the rest a key file
    files = [".env", ".env", ".env", "OWN", "MORE", "SHARED", ".env",
             "SHARED_USER", ".env", ".env"]
    jobs = [(f"cold{i % napps:02d}", files[(i // napps) % len(files)])
            for i in range(200)]
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def reader(i):
        try:
            barrier.wait(timeout=30)
            results[i] = sfs.read(m.app(jobs[i][0]) / jobs[i][1])
        except (OSError, threading.BrokenBarrierError) as e:
            results[i] = e

    threads = [threading.Thread(target=reader, args=(i,))
               for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bad = [(jobs[i], r) for i, r in enumerate(results)
           if r != expected[jobs[i]]]
    assert not bad, f"{len(bad)} readers got something else: {bad[:3]!r}"
    counts = {p: c for p, c in vault.counts().items() if "/data/" in p}
    assert data_gets(vault, "shared") == 1, counts
    for name in apps:
        assert data_gets(vault, f"cold/{name}") == 1, counts


@pytest.mark.parametrize("kernel_cache", ["yes", "no"])
def test_no_provider_request_within_ttl(vault, vault_mount_args, secrets,
                                        kernel_cache):
    data = {"API_KEY": "ttl-api-key-000001", "DB": "ttl-db-password-02"}
    put(vault, secrets, "secret/", "warm", data)
    put(vault, secrets, "secret/", "shared", {"password": "ttl-shared-pw-03"})
    m = vault_mount_args(
        {"warm": {"store": "vault://secret/warm",
                  "env.SHARED": "vault://secret/shared#password"}},
        settings={"ttl": "5m", "refresh": "5m", "max_stale": "1h"},
        args=("-o", f"kernel_cache={kernel_cache}"))
    app = m.app("warm")
    want = {**data, "SHARED": "ttl-shared-pw-03"}
    assert sfs.read_text(app / ".env") == sfs.render(want)
    before = (data_gets(vault, "warm"), data_gets(vault, "shared"))
    assert before == (1, 1)
    for _ in range(20):
        assert sfs.read_text(app / ".env") == sfs.render(want)
        for k, v in want.items():
            assert sfs.read(app / k) == v.encode()
            assert os.stat(app / k).st_size == len(v)
        assert sorted(os.listdir(app)) == sorted([".env", *want])
    assert (data_gets(vault, "warm"), data_gets(vault, "shared")) == before


def test_missing_entry_remembered_two_seconds(vault, vault_mount, secrets):
    m = vault_mount({"late": {"store": "vault://secret/late"}},
                    settings={"ttl": "5m", "refresh": "5m",
                              "max_stale": "1h"})
    app = m.app("late")
    asked = time.monotonic()    # the "missing" answer comes after this
    # a missing store entry is an empty app (it is made on the first write)
    assert sfs.read_text(app / ".env") == ""
    assert vault.count("/v1/secret/data/late", "GET") == 1
    put(vault, secrets, "secret/", "late", {"NOW": "late-arrival-value"})
    for _ in range(5):
        assert sfs.read_text(app / ".env") == ""
    assert vault.count("/v1/secret/data/late", "GET") == 1
    assert time.monotonic() - asked < 1.5, "too slow to check the window"
    took = wait_until(lambda: sfs.read_text(app / ".env") != "", timeout=5)
    assert took is not None, "the new entry never showed"
    assert time.monotonic() - asked >= 1.95
    assert sfs.read_text(app / ".env") == "NOW='late-arrival-value'\n"
    assert sfs.read(app / "NOW") == b"late-arrival-value"


# ------------------------------------------------------- stale if error

@pytest.mark.timeout_s(90)
def test_stale_served_while_down_then_eio_then_fresh(vault, vault_mount,
                                                     secrets):
    old = {"API_KEY": "stale-api-key-old-01", "DB": "stale-db-pw-old-02"}
    put(vault, secrets, "secret/", "flaky", old)
    m = vault_mount({"flaky": {"store": "vault://secret/flaky"}},
                    settings={"ttl": "1s", "refresh": "1h",
                              "max_stale": "5s"})
    m.expect_log(r"secret/flaky")
    app = m.app("flaky")
    key = app / "API_KEY"
    assert sfs.read(key) == old["API_KEY"].encode()
    fetched = time.monotonic()
    assert xattr(key, "stale") == "0"
    assert xattr(key, "error") == ""

    vault.seal()
    new = {"API_KEY": "stale-api-key-new-03", "DB": "stale-db-pw-new-04"}
    put(vault, secrets, "secret/", "flaky", new)    # lands while sealed
    time.sleep(1.2)     # past ttl: the next read revalidates, and fails
    assert sfs.read(key) == old["API_KEY"].encode()
    assert sfs.read_text(app / ".env") == sfs.render(old)
    assert xattr(key, "stale") == "1"
    assert xattr(app / ".env", "stale") == "1"
    error = xattr(key, "error")
    assert error, "no error recorded while the provider fails"
    assert "503" in error or "sealed" in error.lower(), error
    assert int(xattr(key, "age")) >= 1
    assert time.monotonic() - fetched < 5, "too slow to see the stale window"

    # past max_stale: no value any more, not the stale one
    took = wait_until(lambda: sfs.errno_of(sfs.read, key) == "EIO",
                      timeout=10, interval=0.25)
    assert took is not None, "the stale value was served past max_stale"
    assert time.monotonic() - fetched >= 4.5
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "DB") == "EIO"
    assert xattr(key, "error")

    vault.unseal()
    took = wait_until(lambda: sfs.errno_of(sfs.read, key) is None, timeout=10,
                      interval=0.25)
    assert took is not None, "never recovered after the provider came back"
    assert sfs.read(key) == new["API_KEY"].encode()
    assert sfs.read_text(app / ".env") == sfs.render(new)
    assert xattr(key, "stale") == "0"
    assert xattr(key, "error") == ""
    assert xattr(key, "version") == "2"


def test_per_app_max_stale(vault, vault_mount, secrets):
    put(vault, secrets, "secret/", "tolerant", {"V": "tolerant-value-0001"})
    put(vault, secrets, "secret/", "strict", {"V": "strict-value-000002"})
    m = vault_mount({"tolerant": {"store": "vault://secret/tolerant",
                                  "max_stale": "1h"},
                     "strict": {"store": "vault://secret/strict",
                                "max_stale": "0"}},
                    settings={"ttl": "0", "refresh": "1h",
                              "max_stale": "0"})
    m.expect_log(r"secret/strict|secret/tolerant")
    tol, strict = m.app("tolerant"), m.app("strict")
    assert sfs.read(tol / "V") == b"tolerant-value-0001"
    assert sfs.read(strict / "V") == b"strict-value-000002"
    rule = vault.faults.fail_next(None, 503, path=r"^/v1/secret/data/")
    try:
        assert sfs.read(tol / "V") == b"tolerant-value-0001"
        assert xattr(tol / "V", "stale") == "1"
        assert sfs.errno_of(sfs.read, strict / "V") == "EIO"
        assert sfs.errno_of(sfs.read, strict / ".env") == "EIO"
        assert xattr(strict / "V", "error")
    finally:
        vault.faults.remove(rule)
    assert rule.fired >= 3
    assert sfs.read(tol / "V") == b"tolerant-value-0001"
    assert xattr(tol / "V", "stale") == "0"
    assert sfs.read(strict / "V") == b"strict-value-000002"
    assert xattr(strict / "V", "error") == ""


# ---------------------------------------------------------------- eviction

@pytest.mark.timeout_s(120)
def test_eviction_under_tiny_cache_keeps_values_right(vault, vault_mount,
                                                      secrets):
    napps = 30
    values = {}
    apps = {}
    for i in range(napps):
        name = f"ev{i:02d}"
        values[name] = {"A": f"evict-{i:02d}-alpha-" + "a" * 30,
                        "B": f"evict-{i:02d}-bravo-" + "b" * 30}
        put(vault, secrets, "secret/", f"evict/{name}", values[name])
        apps[name] = {"store": f"vault://secret/evict/{name}"}
    # one entry larger than the whole cache
    values["big"] = {"HUGE": "evict-big-" + "z" * 6000}
    put(vault, secrets, "secret/", "evict/big", values["big"])
    apps["big"] = {"store": "vault://secret/evict/big"}
    m = vault_mount(apps, settings={"ttl": "5m", "refresh": "5m",
                                    "max_stale": "1h", "cache_size": "4K"})

    def check(name, file=".env"):
        want = values[name]
        if file == ".env":
            assert sfs.read_text(m.app(name) / ".env") == \
                sfs.render(want), name
        else:
            assert sfs.read(m.app(name) / file) == want[file].encode(), \
                (name, file)

    order = sorted(values)
    for rnd in range(3):
        for name in (order if rnd != 1 else reversed(order)):
            check(name)
            for k in values[name]:
                check(name, k)
    gets = sum(c for p, c in vault.counts().items()
               if p.startswith("/v1/secret/data/evict/"))
    # 31 entries cannot fit in 4 KiB: later rounds had to fetch again
    assert gets > len(values), f"only {gets} fetches: nothing was evicted?"

    errors = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(40):
                name = rng.choice(order)
                check(name, rng.choice([".env", *values[name]]))
        except AssertionError as e:
            errors.append(repr(e)[:200])
        except OSError as e:
            errors.append(f"{e!r}")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]


# ----------------------------------------------------- per-app overrides

def test_per_app_ttl(mount, store):
    store.put("team/fast", {"KEY": "fast-value-one"})
    store.put("team/slow", {"KEY": "slow-value-one"})
    # defaults far in the future; "fast" revalidates at every open. The
    # apps use distinct entries: one shared entry would be revalidated by
    # the fast app's reads for both.
    m = mount({"fast": {"store": "local://team/fast", "ttl": "0"},
               "slow": {"store": "local://team/slow"}},
              settings={"ttl": "1h", "refresh": "1h"})
    fast, slow = m.app("fast"), m.app("slow")
    assert sfs.read(fast / "KEY") == b"fast-value-one"
    assert sfs.read(slow / "KEY") == b"slow-value-one"
    assert sfs.read_text(slow / ".env") == "KEY='slow-value-one'\n"

    store.put("team/fast", {"KEY": "fast-value-two-longer"})
    store.put("team/slow", {"KEY": "slow-value-two-longer"})
    assert sfs.read(fast / "KEY") == b"fast-value-two-longer"
    assert sfs.read_text(fast / ".env") == "KEY='fast-value-two-longer'\n"
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        assert sfs.read(slow / "KEY") == b"slow-value-one"
        assert sfs.read_text(slow / ".env") == "KEY='slow-value-one'\n"
        assert os.stat(slow / "KEY").st_size == len("slow-value-one")
        time.sleep(0.1)
    # asked to, it revalidates
    os.setxattr(slow, XATTR + "refresh", b"1")
    assert sfs.read(slow / "KEY") == b"slow-value-two-longer"


def test_per_app_refresh(mount, store):
    store.put("team/bg", {"KEY": "bg-value-one"})
    store.put("team/quiet", {"KEY": "quiet-value-one"})
    m = mount({"bg": {"store": "local://team/bg", "refresh": "300ms"},
               "quiet": {"store": "local://team/quiet"}},
              settings={"ttl": "1h", "refresh": "1h"})
    bg, quiet = m.app("bg"), m.app("quiet")
    assert sfs.read(bg / "KEY") == b"bg-value-one"
    assert sfs.read(quiet / "KEY") == b"quiet-value-one"
    store.put("team/bg", {"KEY": "bg-value-two-longer"})
    store.put("team/quiet", {"KEY": "quiet-value-two-longer"})
    took = wait_until(
        lambda: os.stat(bg / "KEY").st_size == len("bg-value-two-longer"),
        timeout=3)
    assert took is not None and took < 1.5, took
    assert sfs.read(bg / "KEY") == b"bg-value-two-longer"
    time.sleep(0.5)
    assert sfs.read(quiet / "KEY") == b"quiet-value-one"
    assert os.stat(quiet / "KEY").st_size == len("quiet-value-one")


# ------------------------------------------------------------ kernel cache

def test_kernel_cache_change_at_open_past_ttl_and_by_write(mount, store):
    store.put("team/kc", {"KEY": "kc-value-one", "OTHER": "kc-other-value"})
    m = mount({"kc": {"store": "local://team/kc", "mode": "0600"}},
              settings={"ttl": "1s", "refresh": "1h"})
    app = m.app("kc")
    assert sfs.read(app / "KEY") == b"kc-value-one"
    st0 = os.stat(app / "KEY")
    time.sleep(1.2)     # past ttl, and a second for mtime
    store.put("team/kc", {"KEY": "kc-value-two-longer",
                          "OTHER": "kc-other-value"})
    # the open revalidates (past ttl) and reads around the stale pages
    assert sfs.read(app / "KEY") == b"kc-value-two-longer"
    took = wait_until(
        lambda: os.stat(app / "KEY").st_size == len("kc-value-two-longer"),
        timeout=3)
    assert took is not None, "stat kept the old size after the change"
    st1 = os.stat(app / "KEY")
    assert st1.st_mtime > st0.st_mtime
    assert sfs.read(app / "KEY") == b"kc-value-two-longer"

    time.sleep(1.1)
    new = "kc-value-three-written-here"
    store.secrets.add(new)
    assert sfs.write_file(app / "KEY", new) == (None, None)
    took = wait_until(lambda: os.stat(app / "KEY").st_size == len(new),
                      timeout=3)
    assert took is not None, "stat kept the old size after a write"
    assert os.stat(app / "KEY").st_mtime > st1.st_mtime
    assert sfs.read(app / "KEY") == new.encode()
    assert store.get("team/kc") == {"KEY": new, "OTHER": "kc-other-value"}
    assert sfs.read(app / "OTHER") == b"kc-other-value"


def test_kernel_cache_no(mount, store):
    store.put("team/direct", {"KEY": "direct-value-one"})
    m = mount({"direct": {"store": "local://team/direct"}},
              settings={"ttl": "3s", "refresh": "1h"},
              args=("-o", "kernel_cache=no"))
    app = m.app("direct")
    assert sfs.read(app / "KEY") == b"direct-value-one"
    assert sfs.read_text(app / ".env") == "KEY='direct-value-one'\n"
    fetched = time.monotonic()
    store.put("team/direct", {"KEY": "direct-value-two-longer"})
    # within ttl: the daemon's cached value, read after read
    for _ in range(10):
        assert sfs.read(app / "KEY") == b"direct-value-one"
    assert os.stat(app / "KEY").st_size == len("direct-value-one")
    assert time.monotonic() - fetched < 2.5, "too slow to check within ttl"
    time.sleep(max(0.0, 3.2 - (time.monotonic() - fetched)))
    # past ttl: the next open revalidates, and the size follows
    assert sfs.read(app / "KEY") == b"direct-value-two-longer"
    assert sfs.read_text(app / ".env") == "KEY='direct-value-two-longer'\n"
    took = wait_until(lambda: os.stat(app / "KEY").st_size ==
                      len("direct-value-two-longer"), timeout=3)
    assert took is not None, "stat kept the old size after the change"
    # every read(2) of an open file is served by the daemon from its
    # snapshot: reading one byte at a time gives the same bytes
    with open(app / "KEY", "rb", buffering=0) as f:
        got = b"".join(iter(lambda: f.read(1), b""))
    assert got == b"direct-value-two-longer"


@pytest.mark.parametrize("args", [(), ("-o", "kernel_cache=no")],
                         ids=["kernel_cache", "kernel_cache_no"])
def test_env_kept_until_its_sources_change(mount, store, args):
    """Warm opens of .env serve what the last read made of it while its
    sources stay cached fresh: a change shows once past ttl, at once when
    asked to refresh or written through the mount, and an open file goes
    on reading the version it opened."""
    store.put("team/kept", {"KEY": "kept-value-one"})
    m = mount({"kept": {"store": "local://team/kept", "mode": "0600"}},
              settings={"ttl": "1s", "refresh": "1h"}, args=args)
    env = m.app("kept") / ".env"
    one = "KEY='kept-value-one'\n"
    assert sfs.read_text(env) == one
    fetched = time.monotonic()
    store.put("team/kept", {"KEY": "kept-value-two-longer"})
    held = open(env, "rb", buffering=0)
    for _ in range(20):
        assert sfs.read_text(env) == one
    assert time.monotonic() - fetched < 0.9, "too slow to check within ttl"
    time.sleep(1.2)
    two = "KEY='kept-value-two-longer'\n"
    assert sfs.read_text(env) == two
    assert held.read() == one.encode()
    held.close()

    store.put("team/kept", {"KEY": "kept-value-three-much-longer"})
    assert sfs.read_text(env) == two
    os.setxattr(m.app("kept"), XATTR + "refresh", b"1")
    assert sfs.read_text(env) == "KEY='kept-value-three-much-longer'\n"
    assert sfs.write_file(m.app("kept") / "KEY", "kept-value-four") == \
        (None, None)
    assert sfs.read_text(env) == "KEY='kept-value-four'\n"
