"""benchlib.py - what the secretfs benchmarks share.

Daemons (one foreground secretfs on a fresh mountpoint, mount time from
exec to the mount answering), tmpfs baselines, Vault emulators with a
latency, the readloop timing tool (readloop.c) and the result table.

Everything a benchmark mounts or starts is registered here and undone at
exit, on SIGINT/SIGTERM too: mounts are unmounted (lazily if they must),
daemons and emulators stopped, the work folder removed.

Paths come from the environment scripts/bench sets: SECRETFS_BIN (the
release build's secretfs) and SECRETFS_READLOOP (the built readloop).
"""

import atexit
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
# secretfs refuses a configuration group or others may write
os.umask(0o022)
BUILD = REPO / "build-bench"
BIN = pathlib.Path(os.environ.get("SECRETFS_BIN", BUILD / "secretfs"))
READLOOP = pathlib.Path(os.environ.get("SECRETFS_READLOOP",
                                       BUILD / "readloop"))
sys.path.insert(0, str(REPO / "tests" / "emulators"))

MOUNT_WAIT_S = 60.0

# ------------------------------------------------------------ cleanup

_undo = []              # callables, run last-registered first


def on_exit(fn):
    _undo.append(fn)
    return fn


def forget(fn):
    if fn in _undo:
        _undo.remove(fn)


def _cleanup():
    while _undo:
        fn = _undo.pop()
        try:
            fn()
        except Exception as exc:      # keep undoing the rest
            print(f"bench: cleanup: {exc}", file=sys.stderr)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def require_root():
    if os.geteuid() != 0:
        sys.exit("bench: benchmarks mount filesystems: run them as root")
    for p, what in ((BIN, "secretfs"), (READLOOP, "readloop")):
        if not os.access(p, os.X_OK):
            sys.exit(f"bench: {what} not built at {p} (run scripts/bench)")


def workdir(name):
    """A fresh 0755 folder in /tmp, removed at exit."""
    d = pathlib.Path(tempfile.mkdtemp(prefix=f"sfs-bench-{name}-", dir="/tmp"))
    d.chmod(0o755)

    def rm():
        # never under a live mount: those were undone first
        shutil.rmtree(d, ignore_errors=True)
    on_exit(rm)
    return d


def _umount(path, tries):
    """Unmount path with the first of tries (argv lists) that works."""
    if not os.path.ismount(path):
        return
    for argv in tries:
        r = subprocess.run([*argv, str(path)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30, check=False)
        if r.returncode == 0:
            return


# ------------------------------------------------------------ daemons

class Daemon:
    """secretfs -f on DIR/mnt with DIR/secretfs.conf; log in DIR/daemon.log."""

    def __init__(self, directory, config, args=(), env=None):
        self.env = None if env is None else {**os.environ, **env}
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.conf = self.dir / "secretfs.conf"
        self.conf.write_text(config)
        self.mnt = self.dir / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.mnt.chmod(0o755)
        self.log = self.dir / "daemon.log"
        self.args = list(args)
        self.proc = None
        self.mount_ns = None

    def start(self):
        """Start and wait until the mount answers; mount_ns is the time
        from exec to then."""
        parent = os.stat(self.dir).st_dev
        with open(self.log, "wb") as log:
            t0 = time.perf_counter_ns()
            self.proc = subprocess.Popen(
                [str(BIN), "-f", "-o", f"config={self.conf}", *self.args,
                 str(self.mnt)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, env=self.env)
            on_exit(self.stop)
            deadline = time.monotonic() + MOUNT_WAIT_S
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"secretfs exited with "
                                       f"{self.proc.returncode} before "
                                       f"mounting:\n{self.log_tail()}")
                # stat of the mountpoint answers once the daemon serves
                if os.stat(self.mnt).st_dev != parent:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"secretfs did not mount within "
                                       f"{MOUNT_WAIT_S} s:\n{self.log_tail()}")
                time.sleep(0.0005)
            self.mount_ns = time.perf_counter_ns() - t0
        return self

    @property
    def pid(self):
        return self.proc.pid

    def path(self, *parts):
        return self.mnt.joinpath(*parts)

    def status_kib(self, field):
        """A VmXXX: line of the daemon's /proc status (VmRSS, VmHWM), KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field}")

    def cpu_ns(self):
        """CPU time the daemon used so far (user + system), ns."""
        return cpu_ns(self.pid)

    def rss_kib(self):
        """VmRSS of the daemon, KiB."""
        return self.status_kib("VmRSS")

    def log_tail(self, n=4000):
        try:
            return self.log.read_bytes().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def complaints(self):
        """The daemon's error:/warn: lines (printed as notes, never fatal)."""
        try:
            text = self.log.read_text("utf-8", "replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines()
                if ln.startswith(("secretfs: error:", "secretfs: warn:"))]

    def stop(self):
        forget(self.stop)
        if self.proc is None:
            return
        _umount(self.mnt, [["fusermount3", "-u"], ["fusermount3", "-uz"]])
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_ns(pid):
    """CPU time process pid used so far (user + system), ns."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def config_text(settings=None, providers=(), apps=None):
    """INI: [secretfs] settings, provider sections (name -> {opt: value})
    and apps (name -> {opt: value})."""
    lines = ["# written by tests/bench", "[secretfs]"]
    lines += [f"{k} = {v}" for k, v in (settings or {}).items()]
    for name, opts in dict(providers).items():
        lines += ["", f"[provider {name}]"]
        lines += [f"{k} = {v}" for k, v in opts.items()]
    for name, opts in (apps or {}).items():
        lines += ["", f"[app {name}]"]
        lines += [f"{k} = {v}" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


def dotenv_line(key, value):
    """KEY='value' (values here never hold a quote)."""
    assert "'" not in value
    return f"{key}='{value}'\n"


def tmpfs(directory, size="64m"):
    """Mount a tmpfs of our own at directory; unmounted at exit."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                    "sfs-bench", str(d)], check=True, timeout=30)
    on_exit(lambda: _umount(d, [["umount"], ["umount", "-l"]]))
    return d


# ------------------------------------------------------------ the floor

HELLO_LL = pathlib.Path("/usr/share/doc/libfuse3-dev/examples/hello_ll.c")


class HelloFloor:
    """libfuse's own example hello_ll.c (Debian's libfuse3-dev), built
    here with its one file's text replaced by text and its open replying
    keep_cache + noflush: the least a FUSE daemon can do per open.
    Mounted in the foreground on DIR/mnt; the file is DIR/mnt/hello.
    singlethread: fuse_session_loop instead of libfuse's multithreaded
    loop (which secretfs uses)."""

    def __init__(self, directory, text, singlethread=False):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.mnt = self.dir / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.mnt.chmod(0o755)
        self.args = ["-s"] if singlethread else []
        self.bin = self.dir / "hello_ll"
        self._build(text)
        self.proc = None

    def _build(self, text):
        src = HELLO_LL.read_text()
        lit = '"' + (text.replace("\\", "\\\\").replace('"', '\\"')
                     .replace("\n", "\\n")) + '"'
        patched = src.replace('"Hello World!\\n"', lit, 1).replace(
            "\telse\n\t\tfuse_reply_open(req, fi);",
            "\telse {\n\t\tfi->keep_cache = 1;\n\t\tfi->noflush = 1;"
            "\n\t\tfuse_reply_open(req, fi);\n\t}", 1)
        if patched.count("keep_cache") != 1 or lit not in patched:
            raise RuntimeError(f"{HELLO_LL}: not the hello_ll.c expected")
        c = self.dir / "hello_ll.c"
        c.write_text(patched)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"],
                               check=True, capture_output=True, text=True,
                               timeout=30).stdout.split()
        subprocess.run(["cc", "-O2", "-o", str(self.bin), str(c), *flags],
                       check=True, timeout=120)

    def start(self):
        parent = os.stat(self.dir).st_dev
        self.proc = subprocess.Popen([str(self.bin), "-f", *self.args,
                                      str(self.mnt)],
                                     stdin=subprocess.DEVNULL)
        on_exit(self.stop)
        deadline = time.monotonic() + MOUNT_WAIT_S
        while os.stat(self.mnt).st_dev == parent:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.bin.name} did not mount")
            time.sleep(0.0005)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def path(self):
        return self.mnt / "hello"

    def stop(self):
        forget(self.stop)
        if self.proc is None:
            return
        _umount(self.mnt, [["fusermount3", "-u"], ["fusermount3", "-uz"]])
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


COLDFLOOR = REPO / "tests" / "bench" / "coldfloor.c"


def build_coldfloor(directory):
    """Compile coldfloor.c into directory; the binary's path."""
    out = pathlib.Path(directory) / "coldfloor"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"],
                           check=True, capture_output=True, text=True,
                           timeout=30).stdout.split()
    subprocess.run(["cc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                    "-o", str(out), str(COLDFLOOR), *flags],
                   check=True, timeout=120)
    return out


class ColdFloor(HelloFloor):
    """coldfloor.c (built by build_coldfloor) on DIR/mnt: dirs folders
    app00000.. of one .env of size bytes each, answered from memory with
    secretfs's mount options, init and timeouts (the floor of scale.py's
    cold reads). ro: a read-only mount without opens, as secretfs -o ro;
    singlethread: fuse_session_loop instead of the multithreaded loop."""

    def __init__(self, directory, binary, dirs, size, ro=False,
                 singlethread=False):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.mnt = self.dir / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.mnt.chmod(0o755)
        self.bin = binary
        self.args = ["-o", f"dirs={dirs},size={size}" + (",ro" if ro else "")]
        if singlethread:
            self.args.append("-s")
        self.proc = None

    def path(self, *parts):
        return self.mnt.joinpath(*parts)

    def cpu_ns(self):
        return cpu_ns(self.pid)


# ------------------------------------------------------------ emulators

def _emulator_nodelay():
    """The emulator writes a response's headers and body in two sends;
    on a kept-alive connection Nagle then holds the body until the
    client's delayed ACK, about 40 ms per request, which would swamp the
    latency being measured. TCP_NODELAY on each accepted socket, here
    rather than in the emulator the tests share."""
    import socket
    import httpbase
    if getattr(httpbase._Handler, "_bench_nodelay", False):
        return
    orig = httpbase._Handler.setup

    def setup(self):
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        orig(self)
    httpbase._Handler.setup = setup
    httpbase._Handler._bench_nodelay = True


def vault(latency_s=0.0, token="bench-root-token"):
    """A Vault emulator (KV v2 at secret/) on loopback; every request
    waits latency_s first. Stopped at exit."""
    _emulator_nodelay()
    from vault import VaultEmulator
    emu = VaultEmulator({"secret/": 2}, root_token=token).start()
    on_exit(emu.stop)
    if latency_s:
        emu.faults.latency(latency_s)
    return emu


def token_file(path, emu):
    p = pathlib.Path(path)
    p.write_text(emu.root_token + "\n")
    p.chmod(0o600)
    return p


def vault_provider(emu, tokfile, **opts):
    return {"type": "vault", "address": emu.url, "auth": "token",
            "token_file": str(tokfile), **opts}


def max_overlap(emus, latency_s):
    """The most data GETs in flight at once across emus: each is taken to
    occupy [arrival, arrival + latency_s] (the emulated delay dominates)."""
    events = []
    for emu in emus:
        for r in emu.requests:
            if "/data/" in r.path and r.method == "GET":
                events += [(r.time, 1), (r.time + latency_s, -1)]
    cur = best = 0
    for _, d in sorted(events):
        cur += d
        best = max(best, cur)
    return best


# ------------------------------------------------------------ readloop

def _parse_kv(line):
    return {k: int(v) for k, v in (f.split("=", 1) for f in line.split())}


def pin(pid, cpu):
    """Move every thread of pid to CPU cpu (threads it starts later
    inherit it)."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
                   check=True, capture_output=True, timeout=30)


def readloop(path, n, batch=100, cpu=None):
    """Time n open+read+close of path: {median_ns, p99_ns, min_ns, ...};
    on CPU cpu if given."""
    pinned = [] if cpu is None else ["taskset", "-c", str(cpu)]
    r = subprocess.run([*pinned, str(READLOOP), str(path), str(n), str(batch)],
                       capture_output=True, text=True, timeout=150,
                       check=False)
    if r.returncode != 0:
        raise RuntimeError(f"readloop {path}: {r.stderr.strip()}")
    return _parse_kv(r.stdout)


def herd(threads, paths):
    """threads readers released at once over paths: {ok, failed, wall_ns,
    median_ns, max_ns}."""
    r = subprocess.run([str(READLOOP), "-t", str(threads),
                        *map(str, paths)], capture_output=True, text=True,
                       timeout=120, check=False)
    out = _parse_kv(r.stdout) if r.stdout.strip() else {"ok": 0,
                                                        "failed": threads}
    out["errors"] = r.stderr.strip().splitlines()
    return out


def load(threads, seconds, paths):
    """threads readers looping over paths for seconds (readloop -l):
    {ops, errors, wall_ns, messages}."""
    r = subprocess.run([str(READLOOP), "-l", str(threads), str(seconds),
                        *map(str, paths)], capture_output=True, text=True,
                       timeout=seconds + 120, check=False)
    out = _parse_kv(r.stdout) if r.stdout.strip() else {"ops": 0,
                                                        "errors": 1,
                                                        "wall_ns": 0}
    out["messages"] = r.stderr.strip().splitlines()
    return out


def read_once_ns(path):
    """One open+read+close from Python (for reads far slower than
    Python's overhead): (ns, bytes)."""
    t0 = time.perf_counter_ns()
    with open(path, "rb") as f:
        data = f.read()
    return time.perf_counter_ns() - t0, data


# ------------------------------------------------------------ results

def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns < 10_000:
        return f"{ns:,.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:,.1f} us"
    if ns < 10_000_000_000:
        return f"{ns / 1e6:,.1f} ms"
    return f"{ns / 1e9:,.2f} s"


def fmt_bytes(n):
    if n < 10 * 1024:
        return f"{n:,.0f} B"
    if n < 10 * 1024 * 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / (1024 * 1024):,.1f} MiB"


def fmt_ratio(a, b):
    if a is None or not b:
        return "-"
    return f"{a / b:,.2f}x"


def target(text, ok):
    """The target column: what it is and whether this run met it."""
    if ok is None:
        return text
    return f"{text} ({'met' if ok else 'MISSED'})"


HEADER = ("what", "secretfs", "baseline", "ratio", "target")


def table(title, rows, notes=()):
    """Print rows of (what, secretfs, baseline, ratio, target)."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(5)]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         if i < 4 else c for i, (c, w) in
                         enumerate(zip(r, widths))).rstrip()
    print(f"\n== {title}")
    print(line(HEADER))
    print(line(tuple("-" * w for w in widths)))
    for r in rows:
        print(line(r))
    for n in notes:
        print(f"  note: {n}")
    sys.stdout.flush()


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
