"""Concurrent writers through one mount: the three-way merge of .env
writes (base = what the writer opened), compare-and-set retries of per-key
writes, and a store that fails in the middle of a write."""

import errno
import os
import pathlib
import time
import subprocess
import threading

import pytest

import sfs

START = {"A": "cw-a-start", "B": "cw-b-start", "C": "cw-c-start"}
CONFLICT_LOG = r"was changed by someone else since the file was opened"


@pytest.fixture
def billing(mount, store):
    store.put("team/billing", START)
    return mount({"billing": {"store": "local://team/billing",
                              "mode": "0600"}})


def env_path(m):
    return m.app("billing") / ".env"


class EnvWriter:
    """An open .env: the text it read at open, and the text it writes."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        chunks = []
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        self.seen = sfs.parse(b"".join(chunks).decode())

    def write(self, mapping):
        data = sfs.render(mapping).encode()
        os.ftruncate(self.fd, 0)
        assert os.pwrite(self.fd, data, 0) == len(data)

    def edit(self, change):
        """Write what was read, with change applied (None removes)."""
        new = dict(self.seen)
        for k, v in change.items():
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        self.write(new)

    def close(self):
        """The errno name close() failed with, or None."""
        return sfs.errno_of(os.close, self.fd)


def applied(base, *changes):
    out = dict(base)
    for change in changes:
        for k, v in change.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
    return out


# ---------------------------------------------------------------- .env merge

@pytest.mark.parametrize("first,second", [
    ({"A": "cw-a-first"}, {"B": "cw-b-second"}),
    ({"D": "cw-d-first"}, {"C": None}),
    ({"A": None}, {"B": "cw-b-second", "E": "cw-e-second"}),
    ({"D": "cw-d-both"}, {"D": "cw-d-both"}),
    ({"A": None}, {"A": None}),
], ids=["change-change", "add-remove", "remove-change+add",
        "same-add", "same-remove"])
def test_env_writers_of_different_keys_both_land(billing, store, secrets,
                                                 first, second):
    for v in list(first.values()) + list(second.values()):
        if v:
            secrets.add(v)
    w1 = EnvWriter(env_path(billing))
    w2 = EnvWriter(env_path(billing))
    assert w1.seen == w2.seen == START
    w1.edit(first)
    w2.edit(second)
    assert w1.close() is None
    assert store.get("team/billing") == applied(START, first)
    assert w2.close() is None
    want = applied(START, first, second)
    assert store.get("team/billing") == want
    assert sfs.read_text(env_path(billing)) == sfs.render(want)
    assert sorted(os.listdir(billing.app("billing"))) == [".env"] + sorted(want)


@pytest.mark.parametrize("first,second", [
    ({"A": "cw-a-first"}, {"A": "cw-a-second", "C": "cw-c-second"}),
    ({"A": "cw-a-first"}, {"A": None, "C": "cw-c-second"}),
    ({"A": None}, {"A": "cw-a-second", "C": "cw-c-second"}),
    ({"D": "cw-d-first"}, {"D": "cw-d-second", "C": None}),
], ids=["change-change", "change-remove", "remove-change", "add-add"])
def test_env_writers_of_the_same_key_conflict(billing, store, secrets,
                                              first, second):
    for v in list(first.values()) + list(second.values()):
        if v:
            secrets.add(v)
    billing.expect_log(CONFLICT_LOG)
    w1 = EnvWriter(env_path(billing))
    w2 = EnvWriter(env_path(billing))
    w1.edit(first)
    w2.edit(second)
    assert w1.close() is None
    after_first = store.raw("team/billing")
    assert sfs.parse(after_first.decode()) == applied(START, first)
    # nothing of the second writer lands: not its other key either
    assert w2.close() == "EBUSY"
    assert store.raw("team/billing") == after_first
    assert sfs.read_text(env_path(billing)) == \
        sfs.render(applied(START, first))
    # opened again, on top of the first writer's change, it applies
    w3 = EnvWriter(env_path(billing))
    w3.edit(second)
    assert w3.close() is None
    assert store.get("team/billing") == applied(START, first, second)


def test_key_file_write_conflicts_with_open_env_writer(billing, store, secrets):
    secrets.add("cw-a-keyfile")
    secrets.add("cw-a-envfile")
    billing.expect_log(CONFLICT_LOG)
    w = EnvWriter(env_path(billing))
    w.edit({"A": "cw-a-envfile", "B": "cw-b-envfile"})
    assert sfs.write_file(billing.app("billing") / "A", "cw-a-keyfile") == \
        (None, None)
    before = store.raw("team/billing")
    assert w.close() == "EBUSY"
    assert store.raw("team/billing") == before
    assert store.get("team/billing") == applied(START, {"A": "cw-a-keyfile"})


def test_key_file_write_of_another_key_survives_env_writer(billing, store,
                                                            secrets):
    secrets.add("cw-b-keyfile")
    secrets.add("cw-a-envfile")
    w = EnvWriter(env_path(billing))
    w.edit({"A": "cw-a-envfile"})
    assert sfs.write_file(billing.app("billing") / "B", "cw-b-keyfile") == \
        (None, None)
    # the .env writer still holds B's old value: it did not change it, so
    # the key file's write survives
    assert w.close() is None
    assert store.get("team/billing") == applied(
        START, {"A": "cw-a-envfile", "B": "cw-b-keyfile"})


def test_two_open_key_file_writers_last_close_wins(billing, store, secrets):
    # a key file has no merge: each close() sets the key
    secrets.add("cw-a-one")
    secrets.add("cw-a-two")
    path = billing.app("billing") / "A"
    fd1 = os.open(path, os.O_WRONLY | os.O_TRUNC)
    fd2 = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd1, b"cw-a-one")
    os.write(fd2, b"cw-a-two")
    assert sfs.errno_of(os.close, fd1) is None
    assert store.get("team/billing")["A"] == "cw-a-one"
    assert sfs.errno_of(os.close, fd2) is None
    assert store.get("team/billing") == applied(START, {"A": "cw-a-two"})


# ---------------------------------------------------------------- CAS races

def race(workers, rounds, fn):
    """Run fn(worker, round) in one thread per worker; collect failures."""
    errors = []
    barrier = threading.Barrier(workers)

    def body(w):
        barrier.wait()
        for r in range(rounds):
            try:
                problem = fn(w, r)
            except Exception as e:  # report, do not hang the others
                problem = f"{type(e).__name__}: {e}"
            if problem:
                errors.append(f"worker {w} round {r}: {problem}")
                return

    threads = [threading.Thread(target=body, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("workers", [2, 8])
def test_key_file_writes_of_different_keys_all_land(mount, store, workers):
    keys = [f"K{w}" for w in range(workers)]
    store.put("team/billing", {k: f"cw-{k}-start" for k in keys})
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}})
    app = m.app("billing")
    rounds = 60
    # a write that runs out of CAS attempts fails the test below; its log
    # line need not fail it twice
    m.expect_log(r"kept changing; gave up")

    def one(w, r):
        value = f"cw-{keys[w]}-round-{r}"
        res = sfs.write_file(app / keys[w], value)
        if res != (None, None):
            return f"write failed at {res}"
        # only this worker writes this key: a lost update would show here
        got = store.get("team/billing").get(keys[w])
        if got != value:
            return f"store has {got!r} right after writing {value!r}"
        return None

    assert race(workers, rounds, one) == []
    assert store.get("team/billing") == \
        {k: f"cw-{k}-round-{rounds - 1}" for k in keys}


@pytest.mark.timeout_s(120)
def test_env_writer_racing_key_file_writers(mount, store):
    # worker 0 edits E through .env (open, read, change E, close); the
    # others set their own key files; nobody touches another's key, so
    # every write lands
    workers = 5
    store.put("team/billing", {"E": "cw-e-start",
                               **{f"K{w}": f"cw-k{w}-start"
                                  for w in range(1, workers)}})
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}})
    app = m.app("billing")
    rounds = 40
    m.expect_log(r"kept changing; gave up")

    def one(w, r):
        if w == 0:
            wr = EnvWriter(app / ".env")
            wr.edit({"E": f"cw-e-round-{r}"})
            failed = wr.close()
            key, value = "E", f"cw-e-round-{r}"
            if failed:
                return f".env close failed with {failed}"
        else:
            key, value = f"K{w}", f"cw-k{w}-round-{r}"
            res = sfs.write_file(app / key, value)
            if res != (None, None):
                return f"write failed at {res}"
        got = store.get("team/billing").get(key)
        return None if got == value else \
            f"store has {got!r} right after writing {value!r}"

    assert race(workers, rounds, one) == []
    last = rounds - 1
    assert store.get("team/billing") == {
        "E": f"cw-e-round-{last}",
        **{f"K{w}": f"cw-k{w}-round-{last}" for w in range(1, workers)}}


def test_env_writers_in_two_daemons_merge(mount, store, secrets):
    # two mounts of one store: the merge works across processes too
    store.put("team/billing", START)
    apps = {"billing": {"store": "local://team/billing", "mode": "0600"}}
    m1, m2 = mount(apps), mount(apps)
    m2.expect_log(CONFLICT_LOG)
    for v in ("cw-a-one", "cw-b-two", "cw-a-two"):
        secrets.add(v)
    w1, w2 = EnvWriter(env_path(m1)), EnvWriter(env_path(m2))
    w1.edit({"A": "cw-a-one"})
    w2.edit({"B": "cw-b-two"})
    assert (w1.close(), w2.close()) == (None, None)
    want = applied(START, {"A": "cw-a-one", "B": "cw-b-two"})
    assert store.get("team/billing") == want
    assert sfs.read_text(env_path(m2)) == sfs.render(want)
    w1, w2 = EnvWriter(env_path(m1)), EnvWriter(env_path(m2))
    w1.edit({"C": None})
    w2.edit({"A": "cw-a-two", "C": "cw-c-two"})
    assert (w1.close(), w2.close()) == (None, "EBUSY")
    assert store.get("team/billing") == applied(want, {"C": None})


@pytest.mark.timeout_s(120)
def test_key_file_writers_in_two_daemons_all_land(mount, store):
    store.put("team/billing", {"K0": "cw-k0-start", "K1": "cw-k1-start"})
    apps = {"billing": {"store": "local://team/billing", "mode": "0600"}}
    mounts = [mount(apps), mount(apps)]
    rounds = 60
    for m in mounts:
        m.expect_log(r"kept changing; gave up")

    def one(w, r):
        value = f"cw-k{w}-round-{r}"
        res = sfs.write_file(mounts[w].app("billing") / f"K{w}", value)
        if res != (None, None):
            return f"write failed at {res}"
        got = store.get("team/billing").get(f"K{w}")
        return None if got == value else \
            f"store has {got!r} right after writing {value!r}"

    assert race(2, rounds, one) == []
    assert store.get("team/billing") == {"K0": f"cw-k0-round-{rounds - 1}",
                                         "K1": f"cw-k1-round-{rounds - 1}"}


# ---------------------------------------------------------------- store failure

@pytest.fixture
def tiny_store(fuse_ready, tmp_path, secrets):
    """A store on a 64 KiB tmpfs, and fill()/free() to run it out of space:
    the provider's temporary file is then created but cannot be written."""
    d = tmp_path / "tiny"
    d.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700",
                          "sfs-it-tiny", str(d)], capture_output=True,
                         text=True, timeout=20, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs store: {res.stderr.strip()}")
    s = sfs.Store(d, secrets)
    filler = d / "filler"

    def fill():
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)
        # a part page may be left: a one-page write must fail now
        fd = os.open(d / "probe", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            assert sfs.errno_of(os.write, fd, b"x" * 4096) == "ENOSPC", \
                "the tmpfs store is not full"
        finally:
            os.close(fd)
            (d / "probe").unlink()

    def free():
        filler.unlink()

    s.fill, s.free = fill, free
    try:
        yield s
    finally:
        subprocess.run(["umount", "-l", str(d)], timeout=20,
                       stdin=subprocess.DEVNULL, check=False)


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in pathlib.Path(d).rglob("*")
                  if p.is_file())


def test_full_store_fails_close_and_keeps_entry(tiny_store, mount, secrets):
    store = tiny_store
    store.put("team/billing", START)
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}},
              store=store)
    m.expect_log(r"No space left on device")
    app = m.app("billing")
    secrets.add("cw-a-on-full")
    store.fill()
    before = store.raw("team/billing")

    assert sfs.write_file(app / "A", "cw-a-on-full") == ("close", "ENOSPC")
    assert store.raw("team/billing") == before
    env = sfs.render(applied(START, {"A": "cw-a-on-full"}))
    assert sfs.write_file(app / ".env", env) == ("close", "ENOSPC")
    assert store.raw("team/billing") == before
    # no temporary file is left behind in the store
    assert files_under(store.dir) == ["filler", "team/billing.env"]
    # the mount still serves the stored values
    assert sfs.read(app / "A") == START["A"].encode()
    assert sfs.read_text(app / ".env") == sfs.render(START)

    # room again: the same write goes through
    store.free()
    assert sfs.write_file(app / "A", "cw-a-on-full") == (None, None)
    assert store.get("team/billing") == applied(START, {"A": "cw-a-on-full"})


def test_full_store_new_key_is_not_left_behind(tiny_store, mount, secrets):
    # a new key whose value the store did not take is not in the folder
    # afterwards: the mount shows what the store has
    store = tiny_store
    store.put("team/billing", START)
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}},
              store=store)
    m.expect_log(r"No space left on device")
    app = m.app("billing")
    secrets.add("cw-new-on-full")
    store.fill()
    before = store.raw("team/billing")
    assert sfs.write_file(app / "NEW_KEY", "cw-new-on-full") == \
        ("close", "ENOSPC")
    assert store.raw("team/billing") == before
    assert sorted(os.listdir(app)) == [".env", "A", "B", "C"]
    assert sfs.errno_of(sfs.read, app / "NEW_KEY") == "ENOENT"


def test_full_store_fails_rename_save(tiny_store, mount, secrets):
    # sed -i saves by rename: the rename reports the failure and the entry
    # keeps its text
    store = tiny_store
    store.put("team/billing", START)
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}},
              store=store)
    m.expect_log(r"No space left on device")
    app = m.app("billing")
    store.fill()
    before = store.raw("team/billing")
    res = subprocess.run(["sed", "-i", "s/cw-a-start/cw-a-by-sed/", ".env"],
                         cwd=app, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert res.returncode != 0
    assert "No space left on device" in res.stderr
    assert store.raw("team/billing") == before
    assert files_under(store.dir) == ["filler", "team/billing.env"]
    assert sfs.read_text(app / ".env") == sfs.render(START)


def test_full_store_fails_fsync_and_keeps_entry(tiny_store, mount, secrets):
    # fsync() commits too: it reports the full disk as close() does
    store = tiny_store
    store.put("team/billing", START)
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}},
              store=store)
    m.expect_log(r"No space left on device")
    app = m.app("billing")
    secrets.add("cw-a-by-fsync")
    store.fill()
    before = store.raw("team/billing")
    fd = os.open(app / "A", os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b"cw-a-by-fsync")
        assert sfs.errno_of(os.fsync, fd) == "ENOSPC"
    finally:
        sfs.errno_of(os.close, fd)
    assert store.raw("team/billing") == before
    assert files_under(store.dir) == ["filler", "team/billing.env"]
    assert sfs.read(app / "A") == START["A"].encode()


@pytest.mark.parametrize("how", ["create", "truncate"])
def test_full_store_fails_bare_create_and_truncate(tiny_store, mount, how):
    # touch NEW writes nothing, yet commits at close(): a store failure must
    # reach close() there too. A bare truncation (`: > KEY`) commits at the
    # release, after close() returned: its failure reaches only the log.
    store = tiny_store
    store.put("team/billing", START)
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}},
              store=store)
    m.expect_log(r"No space left on device")
    app = m.app("billing")
    store.fill()
    before = store.raw("team/billing")
    if how == "create":
        fd = os.open(app / "NEW_KEY", os.O_WRONLY | os.O_CREAT, 0o600)
        assert sfs.errno_of(os.close, fd) == "ENOSPC"
    else:
        fd = os.open(app / "A", os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        deadline = time.monotonic() + 3
        while "No space left on device" not in m.stderr_text():
            assert time.monotonic() < deadline, "no log line for the failure"
            time.sleep(0.02)
    assert store.raw("team/billing") == before
    assert sfs.read(app / "A") == START["A"].encode()
    assert sorted(os.listdir(app)) == [".env", "A", "B", "C"]
