"""A sustained read load: every read is right, and the daemon's memory
stays bounded (issue 10).

200 reader threads loop open+read+close over the .env of several apps
for a few seconds. Every read must return the complete .env the store's
entry renders. The daemon keeps a snapshot of the file per open file
until its RELEASE, which the kernel sends in the background: when it let
only 12 of those through at a time (its default max_background), the
readers' opens outran their releases and the snapshots piled up for as
long as the load lasted (200 readers for 60 s took the daemon to 989 MB).
So the .env here is large (about 24 KiB) and the daemon's peak RSS
(VmHWM) may grow by at most a generous bound over the load: with the
backlog, thousands of opens' snapshots sat in memory at once, far past
it; without it, about one per reader does.

Nothing here is timed: the load runs for a fixed time and only its
outcome is checked. ASan holds freed memory in a quarantine (256 MiB by
default), which would count every snapshot ever freed, so the daemon
under test runs with a small one.
"""

import secrets as pyrandom
import subprocess

import pytest

import sfs

READERS = 200
SECONDS = 5.0
APPS = 4
KEYS = 12
VALUE_LEN = 2000        # 12 x 2 KB: a .env of about 24 KiB
GROWTH_MAX = 96 << 20   # bytes VmHWM may grow by over the load


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def make_apps(store):
    apps = {}
    for a in range(APPS):
        store.put(f"load/app{a}", {
            f"KEY_{k:02d}": f"S3cr3t-{pyrandom.token_hex(8)}-" +
            pyrandom.token_hex(VALUE_LEN // 2)[:VALUE_LEN - 24]
            for k in range(KEYS)})
        apps[f"app{a}"] = {"store": f"local://load/app{a}"}
    return apps


READLOOP_C = sfs.REPO / "tests" / "bench" / "readloop.c"


@pytest.fixture(scope="module")
def readloop(tmp_path_factory):
    """The benchmarks' C reader (tests/bench/readloop.c), built here:
    Python threads share one interpreter lock and never get this many
    opens in flight at once."""
    out = tmp_path_factory.mktemp("readloop") / "readloop"
    subprocess.run(["cc", "-O2", "-std=gnu11", "-pthread", "-o", str(out),
                    str(READLOOP_C)], check=True, timeout=120)
    return out


def load(readloop, threads, seconds, paths):
    """readloop -l: threads looping over paths; every read must equal the
    first read of its path. (ops, errors, complaints)."""
    r = subprocess.run([str(readloop), "-l", str(threads), str(seconds),
                        *map(str, paths)], capture_output=True, text=True,
                       timeout=seconds + 60, check=False)
    kv = dict(f.split("=", 1) for f in r.stdout.split())
    return int(kv.get("ops", 0)), int(kv.get("errors", -1)), r.stderr


@pytest.mark.timeout_s(120)
def test_many_readers_read_whole_env_and_memory_stays_bounded(mount, store,
                                                              readloop):
    apps = make_apps(store)
    m = mount(apps, asan_extra=":quarantine_size_mb=4"
              ":thread_local_quarantine_size_kb=64")
    paths = [m.app(a) / ".env" for a in apps]
    want = {}
    for a, p in zip(apps, paths):
        want[p] = p.read_bytes()
        # complete: exactly the store's entry, every key
        assert sfs.parse(want[p].decode()) == store.get(f"load/{a}")
    # the workers and the cache are warm: what grows from here is load
    load(readloop, READERS, 0.5, paths)
    before = status_kib(m.pid, "VmRSS") << 10

    ops, errors, complaints = load(readloop, READERS, SECONDS, paths)

    # every read whole and the same as every other of its file
    assert errors == 0, f"{errors} of {ops} reads failed or differed:\n" \
        f"{complaints}"
    assert ops > READERS
    peak = status_kib(m.pid, "VmHWM") << 10
    assert peak - before < GROWTH_MAX, (
        f"the daemon's peak RSS grew by {(peak - before) >> 20} MiB over "
        f"{ops} reads by {READERS} readers (from {before >> 20} MiB)")
    # and it still serves the same files
    for p in paths:
        assert p.read_bytes() == want[p]
