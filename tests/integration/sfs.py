"""sfs.py - helpers for the secretfs integration tests.

A Store is a directory of dotenv entry files (the `file` provider); a
config is INI text built by config_text(); a Mount is one secretfs
daemon running in the foreground on a fresh mountpoint. Fixtures that tie
them together live in conftest.py; the checks a Mount makes when it stops
(unexpected warnings or errors, sanitizer reports, leaked secrets) are in
Mount.problems().
"""

import errno
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SECRETFS_BIN", REPO / "build" / "secretfs"))
# Debian's interpreter, for code run as another user (python3 on PATH may
# be a private build the test users cannot read).
PYTHON = "/usr/bin/python3"

MOUNT_WAIT_S = 10.0
EXIT_WAIT_S = 5.0

# Every daemon still running, so a timed-out test can kill them all and
# unblock a syscall stuck on a hung mount.
LIVE_DAEMONS = set()

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
LOG_LINE = re.compile(r"^secretfs: (error|warn|info|debug): ", re.M)
BAD_LEVEL = re.compile(r"^secretfs: (error|warn): .*$", re.M)
SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|"
                       r"runtime error:|SUMMARY: \w+Sanitizer|"
                       r"Sanitizer has encountered a fatal error")


# ---------------------------------------------------------------- dotenv

def quote(value):
    """One dotenv value as docs/dotenv.md renders it."""
    if "'" not in value and not value.endswith("\\"):
        return "'" + value + "'"
    if not any(c in value for c in '"\\$`\n'):
        return '"' + value + '"'
    return '"' + escape(value) + '"'


def escape(value):
    return (value.replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n").replace("$", "\\$"))


def needs_escape(value):
    """Values only the escaped, non-portable form can carry (rule 4): a
    value ending in a backslash cannot be single-quoted (rule 2)."""
    return value.endswith("\\") or \
        ("'" in value and any(c in value for c in '"\\$`\n'))


def warns(value):
    """Whether rendering value into .env logs a warning naming its key
    (rule 4's escaped form, or rule 5's ${)."""
    return needs_escape(value) or "${" in value


def render(mapping):
    """The exact .env text secretfs serves for mapping."""
    return "".join(f"{k}={quote(v)}\n" for k, v in sorted(mapping.items()))


def parse(text):
    """Parse the dialect of dotenv.md (what the daemon writes to the store).

    Used to read store files back: python-dotenv cannot (it keeps `\\$`).
    Raises ValueError on what the dialect rejects.
    """
    out = {}
    i, n, line = 0, len(text), 1
    while i < n:
        # one logical line
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "\n":
            i += 1
            line += 1
            continue
        if i < n and text[i] == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("export ", i):
            i += 7
            while i < n and text[i] in " \t":
                i += 1
        m = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*").match(text, i)
        if not m:
            raise ValueError(f"line {line}: bad key")
        key = m.group(1)
        i = m.end()
        if i < n and text[i] == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise ValueError(f"line {line}: unterminated quote")
            value = text[i + 1:j]
            i = j + 1
        elif i < n and text[i] == '"':
            buf = []
            i += 1
            while True:
                if i >= n:
                    raise ValueError(f"line {line}: unterminated quote")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] in '\\"n$':
                    buf.append("\n" if text[i + 1] == "n" else text[i + 1])
                    i += 2
                    continue
                buf.append(c)
                i += 1
            value = "".join(buf)
        else:
            j = text.find("\n", i)
            j = n if j < 0 else j
            raw = text[i:j]
            k = raw.find(" #")
            value = (raw if k < 0 else raw[:k]).rstrip()
            i = j
        line += value.count("\n") if value else 0
        # rest of the line: blanks or a comment
        j = text.find("\n", i)
        rest = text[i:n if j < 0 else j]
        if rest.strip() and not rest.strip().startswith("#"):
            raise ValueError(f"line {line}: junk after value")
        i = n if j < 0 else j
        if "\0" in value:
            raise ValueError(f"line {line}: NUL")
        if key in out:
            raise ValueError(f"line {line}: duplicate key")
        out[key] = value
    return out


# ---------------------------------------------------------------- secrets

class Secrets:
    """Every value the tests put in a store or read back from a generated
    key; no daemon may ever print one (README.md, "Secrets stay secret").
    Values shorter than MIN_LEN are too likely to occur by chance."""

    MIN_LEN = 6

    def __init__(self):
        self.values = set()

    def add(self, value):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        for v in [value] + value.split("\n"):
            if len(v) >= self.MIN_LEN:
                self.values.add(v)
        return value

    def found_in(self, text):
        return sorted(v for v in self.values if v in text)


# ---------------------------------------------------------------- store

class Store:
    """A directory of entry files: locator team/billing is
    DIR/team/billing.env."""

    def __init__(self, directory, secrets):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.secrets = secrets

    def path(self, locator):
        return self.dir / (locator + ".env")

    def put(self, locator, mapping):
        """Write an entry from a dict (values quoted as dotenv.md renders)."""
        for v in mapping.values():
            self.secrets.add(v)
        self.put_text(locator, "".join(f"{k}={quote(v)}\n"
                                       for k, v in mapping.items()))

    def put_text(self, locator, text):
        p = self.path(locator)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode() if isinstance(text, str) else text)

    def raw(self, locator):
        return self.path(locator).read_bytes()

    def get(self, locator):
        return parse(self.raw(locator).decode())

    def exists(self, locator):
        return self.path(locator).exists()


# ---------------------------------------------------------------- config

def config_text(store_dir, apps, settings=None, extra=""):
    """INI text: [secretfs] settings, one file provider `local` on
    store_dir, and apps = {name: {option: value}} in the given order."""
    lines = ["# written by tests/integration", "[secretfs]"]
    lines += [f"{k} = {v}" for k, v in (settings or {}).items()]
    lines += ["", "[provider local]", "type = file", f"directory = {store_dir}"]
    for name, opts in apps.items():
        lines += ["", f"[app {name}]"]
        lines += [f"{k} = {v}" for k, v in opts.items()]
    return "\n".join(lines) + "\n" + extra


# ---------------------------------------------------------------- mounts

def make_mountpoint():
    """A mountpoint under a fresh 0755 folder in /tmp: test users must be
    able to reach it (pytest's tmp_path is root-only)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="sfs-it-", dir="/tmp"))
    base.chmod(0o755)
    mnt = base / "mnt"
    mnt.mkdir()
    mnt.chmod(0o755)
    return mnt


def remove_mountpoint(mnt):
    try:
        if not os.path.ismount(mnt):
            shutil.rmtree(mnt.parent, ignore_errors=True)
    except OSError:
        pass


def fusermount_u(mnt):
    subprocess.run(["fusermount3", "-uz", str(mnt)], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=20, check=False)


def daemon_env(asan_extra=""):
    """The daemon's environment; asan_extra (":name=value...") is added
    to ASAN_OPTIONS (ignored by a build without ASan)."""
    env = dict(os.environ)
    # Sanitizer reports go to stderr, which every Mount checks.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    # A ThreadSanitizer build (scripts/test's build-tsan) stops at its
    # first report with status 66, which every Mount reports.
    env.setdefault("TSAN_OPTIONS", "halt_on_error=1:exitcode=66:"
                   f"suppressions={REPO / 'tests' / 'tsan.supp'}")
    env["ASAN_OPTIONS"] += asan_extra
    return env


class Mount:
    """One foreground daemon: .path, .pid, .store, .stderr_text()."""

    def __init__(self, workdir, store, config, args=(), secrets=None,
                 asan_extra=""):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.secrets = secrets if secrets is not None else store.secrets
        self.config_path = self.workdir / "secretfs.conf"
        self.config_path.write_text(config)
        self.stderr_path = self.workdir / "daemon.stderr"
        self.path = make_mountpoint()
        self.expected = []
        self.stopped = False
        self.killed = False
        self.returncode = None
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(BIN), "-f", "-o", f"config={self.config_path}",
                 "-o", "log=debug", *args, str(self.path)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env=daemon_env(asan_extra))
        self.pid = self.proc.pid
        LIVE_DAEMONS.add(self.proc)
        self._wait_mounted()

    def _wait_mounted(self):
        deadline = time.monotonic() + MOUNT_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                LIVE_DAEMONS.discard(self.proc)
                remove_mountpoint(self.path)
                self.stopped = True
                raise AssertionError(
                    f"secretfs exited with {self.proc.returncode} before "
                    f"mounting; stderr:\n{self.stderr_text()}")
            if os.path.ismount(self.path):
                return
            time.sleep(0.02)
        self.stop()
        raise AssertionError(f"secretfs did not mount within {MOUNT_WAIT_S} s;"
                             f" stderr:\n{self.stderr_text()}")

    def stderr_text(self):
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def expect_log(self, regex):
        """Declare that error:/warn: (or other stderr) lines matching regex
        are expected."""
        self.expected.append(re.compile(regex))

    def app(self, name):
        return self.path / name

    def stop(self):
        """Unmount (lazily), then make sure the daemon is gone."""
        if self.stopped:
            return
        self.stopped = True
        try:
            fusermount_u(self.path)
            try:
                self.returncode = self.proc.wait(EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.terminate()
                try:
                    self.proc.wait(EXIT_WAIT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            LIVE_DAEMONS.discard(self.proc)
            remove_mountpoint(self.path)

    def problems(self):
        """What is wrong in the daemon's stderr and exit, as messages."""
        text = self.stderr_text()
        out = []
        for m in BAD_LEVEL.finditer(text):
            if not any(r.search(m.group(0)) for r in self.expected):
                out.append(f"unexpected log line: {m.group(0)}")
        # anything else on stderr (library noise, stray prints) is a bug too
        for line in text.splitlines():
            if line and not LOG_LINE.match(line) and \
                    not any(r.search(line) for r in self.expected):
                out.append(f"unexpected stderr line: {line[:200]}")
        if SANITIZER.search(text):
            out.append("sanitizer report in the daemon's stderr")
        leaked = self.secrets.found_in(text)
        if leaked:
            # name how many, not which: the report itself must not leak
            out.append(f"{len(leaked)} test secret(s) appear in the daemon's "
                       "stderr (first chars: "
                       + ", ".join(repr(v[:3] + "...") for v in leaked) + ")")
        if self.killed:
            out.append("daemon did not exit within "
                       f"{EXIT_WAIT_S} s of its unmount")
        elif self.returncode not in (0, None):
            out.append(f"daemon exited with status {self.returncode} "
                       "after its unmount")
        if out:
            out.append("daemon stderr (last 4000 chars):\n" + text[-4000:])
        return out

    def unmount(self):
        """Stop now and fail on any problem (for unmount/remount tests)."""
        self.stop()
        probs = self.problems()
        if probs:
            raise AssertionError("\n".join(probs))


def kill_all_daemons():
    for proc in list(LIVE_DAEMONS):
        try:
            proc.send_signal(signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------- I/O

def read(path):
    with open(path, "rb") as f:
        return f.read()


def read_text(path):
    return read(path).decode()


def repeated_locator(text, ref, locator):
    """Log lines naming the reference ref that name its locator again
    after it ("aws://prod/db: prod/db: ..."): each line must name it once.
    A path that merely contains the locator (".../store/team/x.env") does
    not count."""
    again = re.compile(rf"(?<![\w/.-]){re.escape(locator)}(?![\w/.-])")
    out = []
    for line in text.splitlines():
        at = line.find(ref)
        if at >= 0 and again.search(line, at + len(ref)):
            out.append(line)
    assert any(ref in line for line in text.splitlines()), \
        f"no log line names {ref}"
    return out


def errno_of(fn, *args):
    """Run fn(*args); return the errno name of the OSError it raised, or
    None on success."""
    try:
        fn(*args)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return None


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """Write like `printf data > path`; report where it failed.

    Returns (stage, errno name): (None, None) on success, else the stage
    ("open", "write", "close") and the errno name of the first failure.
    """
    if isinstance(data, str):
        data = data.encode()
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        return "open", errno.errorcode.get(e.errno, str(e.errno))
    stage = "write"
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as e:
        failed = ("write", errno.errorcode.get(e.errno, str(e.errno)))
        try:
            os.close(fd)
        except OSError:
            pass
        return failed
    stage = "close"
    try:
        os.close(fd)
    except OSError as e:
        return stage, errno.errorcode.get(e.errno, str(e.errno))
    return None, None


PROBE = r"""
import errno, json, os, sys
out = {}
for op, path in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        if op == "read":
            with open(path, "rb") as f:
                out[op + " " + path] = {"ok": f.read().decode("utf-8", "replace")}
        else:
            out[op + " " + path] = {"ok": sorted(os.listdir(path))}
    except OSError as e:
        out[op + " " + path] = {"errno": errno.errorcode.get(e.errno, str(e.errno))}
print(json.dumps(out))
"""


def probe_as(user, *ops):
    """Run reads/listings as another user: ops are ("read"|"list", path).
    Returns {"read PATH": {"ok": text} | {"errno": "EACCES"}, ...}."""
    import pwd
    pw = pwd.getpwnam(user)
    argv = [PYTHON, "-c", PROBE]
    for op, path in ops:
        argv += [op, str(path)]
    res = subprocess.run(argv, user=pw.pw_uid, group=pw.pw_gid,
                         extra_groups=[], cwd="/", capture_output=True,
                         text=True, timeout=20, check=False,
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert res.returncode == 0, f"probe as {user} failed: {res.stderr}"
    return json.loads(res.stdout)
