"""scale.py - 10,000 apps x 20 keys: mount, list, memory.

One file store holding one entry (20 keys, 32-character values) per app,
and a configuration of 10,000 [app] sections, one store each. Measured:

  mount      exec of `secretfs -f` until the mountpoint answers; baseline:
             the same binary and store with a one-app configuration
  ls         listing the root (getdents only, median of 5); baseline: a
             tmpfs folder of 10,000 subfolders. Then `ls -l`-like: list
             and lstat every app folder (once, cold)
  read all   open+read+close of every app's .env, one after another (each
             a cold fetch from the store); baseline: reading the 10,000
             store files directly. A note splits the time per file into
             the daemon's CPU, the reader's and waiting
  RSS        the daemon's VmRSS after reading every .env; baseline: its
             VmRSS right after the mount. Bytes per cached secret is the
             difference over the 200,000 secrets; its baseline is what one
             secret's key and value take as text
  big apps   one app of 5,000 and one of 50,000 keys (--big), each on a
             fresh mount: `ls -l` of the app folder (cold: every key file
             looked up and stat'ed), then reading every key file once;
             baseline: the same on a tmpfs folder of as many files. Both
             must stay within a constant factor of the baseline at every
             size (issue 10: ls -l took 9 s at 5,000 keys and did not end
             in 15 minutes at 50,000)

    /usr/bin/python3 tests/bench/scale.py [--apps 10000] [--keys 20]
                                          [--big 5000,50000]
"""

import argparse
import os
import secrets
import subprocess
import time

import benchlib as B


def make_store(store, napps, nkeys):
    d = store / "apps"
    d.mkdir(parents=True)
    plain = 0
    for i in range(napps):
        lines = []
        for k in range(nkeys):
            key, value = f"KEY_{k:02d}", secrets.token_hex(16)
            plain += len(key) + len(value)
            lines.append(B.dotenv_line(key, value))
        (d / f"app{i:05d}.env").write_text("".join(lines))
    return plain


def app_names(napps):
    return [f"app{i:05d}" for i in range(napps)]


def config(store, names):
    return B.config_text(
        providers={"local": {"type": "file", "directory": str(store)}},
        apps={n: {"store": f"local://apps/{n}"} for n in names})


def time_ns(fn):
    t0 = time.perf_counter_ns()
    out = fn()
    return time.perf_counter_ns() - t0, out


def list_and_stat(root):
    names = os.listdir(root)
    for n in names:
        os.lstat(os.path.join(root, n))
    return names


def read_all(paths):
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += len(f.read())
    return total


def ls_l(folder):
    """`ls -l` of folder, output discarded (C locale: no collation cost)."""
    subprocess.run(["ls", "-l", str(folder)], stdout=subprocess.DEVNULL,
                   check=True, timeout=3600,
                   env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})


def read_files(folder, names):
    return read_all(os.path.join(folder, n) for n in names)


def big_app(work, nkeys):
    """ls -l and reading every key of one app of nkeys keys, on a fresh
    mount, and the same on tmpfs: rows of the table."""
    store = work / f"big-{nkeys}"
    (store / "apps").mkdir(parents=True)
    # short lines: the file store holds at most about 1 MiB per entry
    keys = [f"K{k:05d}" for k in range(nkeys)]
    values = {k: secrets.token_hex(4) for k in keys}
    (store / "apps" / "big.env").write_text(
        "".join(B.dotenv_line(k, values[k]) for k in keys))
    tmp = B.tmpfs(work / f"big-tmpfs-{nkeys}", size="256m")
    for k in keys:
        (tmp / k).write_text(values[k])
    d = B.Daemon(work / f"big-mnt-{nkeys}", B.config_text(
        providers={"local": {"type": "file", "directory": str(store)}},
        apps={"big": {"store": "local://apps/big"}})).start()
    folder = d.path("big")
    lsl_ns, _ = time_ns(lambda: ls_l(folder))
    lsl_base, _ = time_ns(lambda: ls_l(tmp))
    read_ns, _ = time_ns(lambda: read_files(folder, keys))
    read_base, _ = time_ns(lambda: read_files(tmp, keys))
    complaints = d.complaints()
    d.stop()
    return [
        (f"app of {nkeys:,} keys: ls -l of its folder (cold)",
         B.fmt_ns(lsl_ns), B.fmt_ns(lsl_base), B.fmt_ratio(lsl_ns, lsl_base),
         B.target("<= 10x tmpfs", lsl_ns <= 10 * lsl_base)),
        (f"app of {nkeys:,} keys: read every key file once",
         B.fmt_ns(read_ns), B.fmt_ns(read_base),
         B.fmt_ratio(read_ns, read_base),
         B.target("<= 10x tmpfs", read_ns <= 10 * read_base)),
    ], complaints


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--big", default="5000,50000",
                    help="key counts of the big apps (comma-separated; "
                    "empty: none)")
    args = ap.parse_args()
    B.require_root()
    work = B.workdir("scale")
    store = work / "store"
    names = app_names(args.apps)
    gen_ns, plain = time_ns(lambda: make_store(store, args.apps, args.keys))
    nsecrets = args.apps * args.keys
    notes = [f"{args.apps:,} apps x {args.keys} keys = {nsecrets:,} secrets; "
             f"store and config written in {B.fmt_ns(gen_ns)}"]

    # baseline mount: one app, same store
    one = [B.Daemon(work / f"one-{i}", config(store, names[:1])).start()
           for i in range(3)]
    one_ns = B.median(d.mount_ns for d in one)
    for d in one:
        d.stop()

    conf = config(store, names)
    mounts = []
    while True:
        d = B.Daemon(work / f"all-{len(mounts)}", conf).start()
        mounts.append(d.mount_ns)
        if len(mounts) == 3 or d.mount_ns > 5e9:
            break
        d.stop()
    mount_ns = B.median(mounts)
    rss_mounted = d.rss_kib() * 1024

    tmp = B.tmpfs(work / "tmpfs", size="16m")
    for n in names:
        (tmp / n).mkdir()
    ls = [time_ns(lambda: os.listdir(d.mnt)) for _ in range(5)]
    got = sorted(ls[0][1])
    if got != names:
        raise SystemExit(f"scale: root lists {len(got)} entries, not "
                         f"{len(names)}")
    ls_ns = B.median(t for t, _ in ls)
    ls_base = B.median(time_ns(lambda: os.listdir(tmp))[0] for _ in range(5))
    lsl_ns, _ = time_ns(lambda: list_and_stat(d.mnt))
    lsl_base, _ = time_ns(lambda: list_and_stat(tmp))

    paths = [d.path(n, ".env") for n in names]
    cpu0, mine0 = d.cpu_ns(), time.process_time_ns()
    read_ns, nbytes = time_ns(lambda: read_all(paths))
    daemon_cpu, reader_cpu = d.cpu_ns() - cpu0, time.process_time_ns() - mine0
    read_base, _ = time_ns(lambda: read_all(
        store / "apps" / f"{n}.env" for n in names))
    rss = d.rss_kib() * 1024
    per_secret = (rss - rss_mounted) / nsecrets
    plain_per = plain / nsecrets
    complaints = d.complaints()
    d.stop()

    MiB = 1024 * 1024
    rows = [
        (f"mount, {args.apps:,} apps (exec to live, median of {len(mounts)})",
         B.fmt_ns(mount_ns), B.fmt_ns(one_ns), B.fmt_ratio(mount_ns, one_ns),
         B.target("< 1 s", mount_ns < 1e9)),
        (f"ls root: {args.apps:,} entries (getdents, median of 5)",
         B.fmt_ns(ls_ns), B.fmt_ns(ls_base), B.fmt_ratio(ls_ns, ls_base),
         B.target("< 100 ms", ls_ns < 100e6)),
        ("ls -l root: list + lstat every app (cold)",
         B.fmt_ns(lsl_ns), B.fmt_ns(lsl_base), B.fmt_ratio(lsl_ns, lsl_base),
         B.target("<= 3x tmpfs", lsl_ns <= 3 * lsl_base)),
        (f"read every .env once, sequential ({B.fmt_bytes(nbytes)})",
         B.fmt_ns(read_ns), B.fmt_ns(read_base),
         B.fmt_ratio(read_ns, read_base),
         B.target("<= 3x the store files", read_ns <= 3 * read_base)),
        ("daemon RSS after reading every .env (vs after mount)",
         B.fmt_bytes(rss), B.fmt_bytes(rss_mounted),
         B.fmt_ratio(rss, rss_mounted), B.target("< 64 MiB", rss < 64 * MiB)),
        ("bytes per cached secret (RSS delta / secrets; vs key+value text)",
         f"{per_secret:,.0f} B", f"{plain_per:,.0f} B",
         B.fmt_ratio(per_secret, plain_per), "-"),
    ]
    for n in (int(x) for x in args.big.split(",") if x):
        big_rows, big_complaints = big_app(work, n)
        rows += big_rows
        complaints += big_complaints
    n = len(names)
    notes.append(f"read every .env: per file {B.fmt_ns(read_ns / n)} wall, of "
                 f"it {B.fmt_ns(daemon_cpu / n)} daemon CPU and "
                 f"{B.fmt_ns(reader_cpu / n)} reader CPU (user+system); the "
                 "rest is waiting for the other side to be scheduled: each "
                 "cold .env is 4 FUSE round trips (LOOKUP, OPEN, Python's "
                 "isatty IOCTL, READ) and a RELEASE, the store file read "
                 "directly none")
    notes.append("baselines: mount of a one-app config; a tmpfs folder of "
                 f"{args.apps:,} subfolders; the store files read directly; "
                 "RSS right after the mount; for the big apps, a tmpfs "
                 "folder of as many files")
    notes += [f"daemon log: {ln}" for ln in complaints[:5]]
    B.table(f"scale ({args.apps:,} apps x {args.keys} keys, file store)",
            rows, notes)


if __name__ == "__main__":
    main()
