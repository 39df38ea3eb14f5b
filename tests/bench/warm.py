"""warm.py - warm read: open+read+close of a 1 KiB .env, over and over.

secretfs with the kernel cache (the default) and with -o kernel_cache=no,
against the same 1024 bytes on a tmpfs of our own and against the floor
of FUSE itself: libfuse's example hello_ll.c serving the same bytes with
keep_cache and noflush (multithreaded, as secretfs runs, and
single-threaded), all timed by readloop (C) in this run. Reader and
daemons are pinned to one CPU: unpinned runs split into two clusters
depending on where a daemon's threads land. The app's one source is the file store, so after the
first read every open is served from the daemon's cache: what is measured
is the FUSE path, not a provider.

    /usr/bin/python3 tests/bench/warm.py [--n 100000] [--cpu 1]
"""

import argparse
import secrets
import string

import benchlib as B

KEYS = 16
SIZE = 1024


def one_kib_env():
    """16 keys whose rendered .env is exactly SIZE bytes."""
    alphabet = string.ascii_letters + string.digits
    names = [f"SECRET_KEY_{i:02d}" for i in range(KEYS)]
    # KEY='value'\n: len(key) + 4 bytes around each value
    room = SIZE - sum(len(k) + 4 for k in names)
    lens = [room // KEYS + (1 if i < room % KEYS else 0) for i in range(KEYS)]
    text = "".join(B.dotenv_line(k, "".join(secrets.choice(alphabet)
                                            for _ in range(n)))
                   for k, n in zip(names, lens))
    assert len(text) == SIZE
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000,
                    help="iterations per measurement (default 100000)")
    ap.add_argument("--cpu", type=int, default=1,
                    help="the CPU reader and daemons are pinned to (default 1)")
    args = ap.parse_args()
    B.require_root()
    work = B.workdir("warm")
    text = one_kib_env()
    store = work / "store"
    store.mkdir()
    (store / "bench.env").write_text(text)
    conf = B.config_text(
        providers={"local": {"type": "file", "directory": str(store)}},
        apps={"bench": {"store": "local://bench", "mode": "0444"}})

    tmp = B.tmpfs(work / "tmpfs", size="4m")
    (tmp / ".env").write_text(text)
    cached = B.Daemon(work / "cached", conf).start()
    direct = B.Daemon(work / "direct", conf,
                      ["-o", "kernel_cache=no"]).start()
    readonly = B.Daemon(work / "readonly", conf, ["-o", "ro"]).start()
    floor = B.HelloFloor(work / "floor", text).start()
    floor1 = B.HelloFloor(work / "floor1", text, singlethread=True).start()
    for d in (cached, direct, readonly, floor, floor1):
        B.pin(d.pid, args.cpu)
    paths = {"tmpfs": tmp / ".env",
             "floor": floor.path(),
             "floor1": floor1.path(),
             "readonly": readonly.path("bench", ".env"),
             "cached": cached.path("bench", ".env"),
             "direct": direct.path("bench", ".env")}
    for name, p in paths.items():
        got = p.read_bytes()
        if got != text.encode():
            raise SystemExit(f"warm: {name} serves {len(got)} bytes, "
                             f"not the {SIZE} expected")

    # interleaved rounds, so drift on a shared machine hits all alike
    runs = {k: [] for k in paths}
    for _ in range(3):
        for name, p in paths.items():
            runs[name].append(B.readloop(p, args.n // 3 + 1,
                                          cpu=args.cpu))
    res = {k: {m: B.median(r[m] for r in v) for m in ("median_ns", "p99_ns")}
           for k, v in runs.items()}
    base = res["tmpfs"]
    floor_ns = res["floor"]["median_ns"]

    rows = []
    for name, label, limit, flimit in (
            ("floor", "FUSE floor (hello_ll, keep_cache, noflush, "
             "multithreaded)", None, None),
            ("floor1", "FUSE floor, single-threaded", None, None),
            ("readonly", "-o ro (kernel cache, no opens)", 1.5, None),
            ("cached", "kernel cache, read-write", 1.5, 1.15),
            ("direct", "kernel_cache=no", 15.0, 3.0)):
        r = res[name]
        ratio = r["median_ns"] / base["median_ns"]
        rows.append((f"1 KiB .env open+read+close, {label}, median",
                     B.fmt_ns(r["median_ns"]), B.fmt_ns(base["median_ns"]),
                     B.fmt_ratio(r["median_ns"], base["median_ns"]),
                     B.target(f"<= {limit:g}x tmpfs", ratio <= limit)
                     if limit else "-"))
        if flimit:
            rows.append((f"  the same against the FUSE floor (multithreaded)",
                         B.fmt_ns(r["median_ns"]), B.fmt_ns(floor_ns),
                         B.fmt_ratio(r["median_ns"], floor_ns),
                         B.target(f"<= {flimit:g}x floor",
                                  r["median_ns"] / floor_ns <= flimit)))
        rows.append((f"1 KiB .env open+read+close, {label}, p99",
                     B.fmt_ns(r["p99_ns"]), B.fmt_ns(base["p99_ns"]),
                     B.fmt_ratio(r["p99_ns"], base["p99_ns"]), "-"))
    notes = [f"baseline: the same {SIZE} bytes on tmpfs; readloop (C), "
             f"{3 * (args.n // 3 + 1):,} iterations each in 3 interleaved "
             "rounds, batches of 100, median of the rounds' figures"]
    for d in (readonly, cached, direct):
        notes += [f"daemon log: {ln}" for ln in d.complaints()]
    B.table("warm read (1 KiB .env, file store, cache hot)", rows, notes)


if __name__ == "__main__":
    main()
