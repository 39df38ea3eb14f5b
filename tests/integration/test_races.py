"""Races through a real mount: readers, writers, store changes the
refresher finds, refresh requests, an on_change hook and SIGHUP reloads,
all at once.

Meant for the ThreadSanitizer build (scripts/test runs it with
SECRETFS_BIN=build-tsan/secretfs and SECRETFS_RACE_SECONDS=20): the FUSE
worker threads, the cache's refresher, the invalidation thread, the
hooks thread and the reload run against each other, and any report stops the daemon
(halt_on_error, sfs.daemon_env) and fails the test. Under the ordinary
build it runs briefly (3 s) as a concurrency test: every write lands, no
reader sees an error, and the daemon stays up.
"""

import os
import random
import signal
import threading
import time
import traceback

import pytest

import sfs

SECONDS = float(os.environ.get("SECRETFS_RACE_SECONDS", "3"))
WRITERS = 3
READERS = 3


def settings():
    # short enough that the refresher and revalidation run all the time
    return {"ttl": "200ms", "refresh": "100ms"}


def apps(generation):
    """The configuration of one reload generation: the written app never
    changes; the others alternate (mode, ttl, a provider re-created, an
    app removed and added back)."""
    out = {"rw": {"store": "local://team/rw", "mode": "0600"},
           "ro": {"store": "local://team/ro", "on_change": "/bin/true",
                  "mode": "0640" if generation % 2 else "0600",
                  "ttl": "300ms" if generation % 2 else "150ms"}}
    if generation % 3 != 2:
        out["flip"] = {"store": "other://team/flip",
                       "env.RW_A": "local://team/rw#W0"}
    return out


def config(store, generation):
    # [provider other] changes every generation: a reload re-creates it
    # while the refresher and readers may be fetching through the old one
    # (its directory alternates between the store and a link to it)
    directory = store.dir if generation % 2 else link_of(store)
    extra = f"\n[provider other]\ntype = file\ndirectory = {directory}\n"
    return sfs.config_text(store.dir, apps(generation), settings(), extra)


def put_atomic(store, locator, mapping):
    """store.put as a rename, so the daemon never reads a half-written
    file (a key missing from it would be ENOENT, rightly)."""
    path = store.path(locator)
    tmp = path.with_name(path.name + ".tmp")
    for v in mapping.values():
        store.secrets.add(v)
    tmp.write_text(sfs.render(mapping))
    os.replace(tmp, path)


def link_of(store):
    link = store.dir.parent / "store-link"
    if not link.exists():
        link.symlink_to(store.dir)
    return link


class Worker(threading.Thread):
    def __init__(self, fn, stop):
        super().__init__(daemon=True)
        self.fn, self.stop, self.errors, self.count = fn, stop, [], 0

    def run(self):
        while not self.stop.is_set():
            try:
                self.fn()
                self.count += 1
            except Exception as e:  # reported by the test, not lost
                where = traceback.extract_tb(e.__traceback__)[-1]
                path = getattr(e, "filename", None)
                self.errors.append(f"{self.fn.__name__}: {e!r} {path} at "
                                   f"line {where.lineno}: {where.line}")
                if len(self.errors) > 20:
                    return


@pytest.mark.timeout_s(int(SECONDS) + 60)
def test_readers_writers_refresher_reloads(mount, store, secrets):
    store.put("team/rw", {f"W{i}": f"race-rw-{i}-S3cr3t-start"
                          for i in range(WRITERS)})
    store.put("team/ro", {"RO": "race-ro-S3cr3t-0"})
    store.put("team/flip", {"FLIP": "race-flip-S3cr3t-0"})
    m = mount(config=config(store, 0))
    rw, ro = m.app("rw"), m.app("ro")
    stop = threading.Event()
    last = {}   # writer i -> the last value it wrote and saw committed
    generation = [0]

    def writer(i):
        n = [0]

        def step():
            n[0] += 1
            value = secrets.add(f"race-w{i}-S3cr3t-{n[0]:06d}")
            if n[0] % 2:
                stage, err = sfs.write_file(rw / f"W{i}", value)
                assert (stage, err) == (None, None), (stage, err)
            else:
                # a .env edit changing only this writer's key: merged
                # against what it read, so the others' writes survive
                with open(rw / ".env", "r+b") as f:
                    seen = sfs.parse(f.read().decode())
                    seen[f"W{i}"] = value
                    f.seek(0)
                    f.truncate()
                    f.write(sfs.render(seen).encode())
            last[i] = value
        return step

    def reader():
        for path in (rw / ".env", ro / ".env", ro / "RO",
                     rw / f"W{random.randrange(WRITERS)}"):
            sfs.read(path)
        os.listdir(m.path)
        flip = m.app("flip")
        try:   # there in two generations of three
            sfs.read(flip / ".env")
        except FileNotFoundError:
            pass

    def changer():
        # the store changes behind the mount: the refresher finds it,
        # tells the invalidation thread, and readers see the new value
        k = changer.n = getattr(changer, "n", 0) + 1
        put_atomic(store, "team/ro", {"RO": f"race-ro-S3cr3t-{k}"})
        put_atomic(store, "team/flip", {"FLIP": f"race-flip-S3cr3t-{k}"})
        os.setxattr(ro / "RO", "user.secretfs.refresh", b"1")
        time.sleep(0.05)

    def reloader():
        generation[0] += 1
        m.config_path.write_text(config(store, generation[0]))
        os.kill(m.pid, signal.SIGHUP)
        time.sleep(0.5)

    workers = [Worker(writer(i), stop) for i in range(WRITERS)]
    workers += [Worker(reader, stop) for _ in range(READERS)]
    workers += [Worker(changer, stop), Worker(reloader, stop)]
    for w in workers:
        w.start()
    time.sleep(SECONDS)
    stop.set()
    for w in workers:
        w.join(30)
        assert not w.is_alive(), "a worker hung on the mount"
    errors = [e for w in workers for e in w.errors]
    assert not errors, errors[:5]
    assert m.proc.poll() is None, "the daemon died:\n" + m.stderr_text()[-4000:]

    # a change only the refresher finds, right before the unmount: its
    # changed() call (the kernel's copy dropped, the hook poked) then runs
    # with nothing else between it and the daemon's shutdown
    put_atomic(store, "team/ro", {"RO": "race-ro-S3cr3t-last"})
    time.sleep(0.3)     # a few refresh periods, with no read meanwhile
    deadline = time.monotonic() + 10
    while sfs.read_text(ro / "RO") != "race-ro-S3cr3t-last":
        assert time.monotonic() < deadline, "the last change never showed"
        time.sleep(0.05)

    counts = [w.count for w in workers]
    assert all(c > 0 for c in counts), counts
    assert generation[0] > 0
    # every writer's last write is what the store and the mount hold
    want = {f"W{i}": last[i] for i in range(WRITERS)}
    got = store.get("team/rw")
    assert {k: got.get(k) for k in want} == want
    shown = sfs.parse(sfs.read_text(rw / ".env"))
    assert {k: shown.get(k) for k in want} == want
    print(f"races: {SECONDS:g} s, {generation[0]} reloads, "
          f"operations per worker {counts}")


def test_refresher_change_at_unmount(mount, store):
    """A change only the refresher finds, then the unmount with nothing
    read in between: its changed() call (the kernel's copy dropped, the
    hooks poked) is then the last thing before the daemon's shutdown,
    which must not race it (ops_stop cleared the hooks pointer that
    changed() reads without the lock that call holds)."""
    store.put("team/ro", {"RO": "race-unmount-S3cr3t-0"})
    m = mount({"ro": {"store": "local://team/ro"}},
              settings={"ttl": "300ms", "refresh": "50ms"})
    assert sfs.read_text(m.app("ro") / "RO") == "race-unmount-S3cr3t-0"
    put_atomic(store, "team/ro", {"RO": "race-unmount-S3cr3t-1"})
    # several refresh periods, and no read: a read would order the
    # refresher's work before the shutdown in ThreadSanitizer's eyes
    time.sleep(0.5)
    m.unmount()
