"""No plaintext secret stays in the daemon's memory after reads.

The cache holds values encrypted; plaintext is meant to exist only in
short-lived buffers that are wiped after use. So once the reads are done,
the daemon's own memory - every writable mapping: heap, anonymous mmaps,
thread stacks, and the private copies of its data segments - must not
contain any test value. The kernel's page cache (the file contents the
kernel keeps for the mount) is not the daemon's memory and is not looked
at.

The daemon sets PR_SET_DUMPABLE 0, so /proc/PID/mem is root's only; the
tests run as root. Values are random, 40 characters, so a match is never
chance; a match reports the mapping, the offset and the bytes around it
with every secret masked - never the secret itself.
"""

import os
import secrets as pyrandom
import string
import struct
import subprocess
import time

import pytest

pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
CHUNK = 1 << 20
WINDOW = 16         # fragments: any 24 bytes of a value contain one of these
STEP = 8
CONTEXT = 48
PSEUDO = {"[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]"}
PAGEMAP_ABOVE = 16 << 20    # larger mappings: read only their resident pages


def distinctive(label):
    """A random 40-character value, never found by chance."""
    alphabet = string.ascii_letters + string.digits
    return "M3m" + label[:5] + "".join(pyrandom.choice(alphabet)
                                       for _ in range(32))


# ------------------------------------------------------------ the scanner

# ASan (scripts/test builds with it) maps its shadow memory as terabyte
# writable regions that only hold shadow bytes; even their pagemap takes
# minutes to read
SHADOW_ABOVE = 1 << 40


def regions(pid):
    """(start, end, perms, path) of each writable mapping."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            perms = parts[1]
            path = parts[5].strip() if len(parts) > 5 else ""
            if "w" not in perms or path in PSEUDO:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, perms, path))
    return out


def thread_stacks(pid):
    """{tid: stack pointer} of the threads blocked in a system call (all
    of an idle daemon's), from /proc/PID/task/TID/syscall."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
            out[int(tid)] = int(fields[-2], 16)
        except (OSError, ValueError, IndexError):
            pass
    return out


def describe(pid, start, end, path, stacks):
    """What a mapping is, as far as can be told from outside."""
    if path:
        return path
    tids = [t for t, sp in stacks.items() if start <= sp < end]
    if tids:
        return f"[stack of thread {tids[0]}]"
    if start % (64 << 20) == 0:
        return "[anon: a glibc malloc arena of a thread]"
    if (end - start) % 0x102000 == 0:
        return "[anon: the size of libfuse request buffers (1 MiB + 8 KiB)]"
    return "[anon]"


def resident_runs(pid, start, end):
    """[(start, end)] of the pages of [start, end) present in RAM or swap,
    from /proc/PID/pagemap (bit 63 present, bit 62 swapped)."""
    runs = []
    first = start // PAGE
    n = (end - start) // PAGE
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pm:
        done = 0
        run = None
        while done < n:
            batch = min(n - done, 1 << 16)
            raw = os.pread(pm.fileno(), batch * 8, (first + done) * 8)
            for i, (entry,) in enumerate(struct.iter_unpack("<Q", raw)):
                addr = (first + done + i) * PAGE
                if entry >> 62:
                    if run and run[1] == addr:
                        run[1] = addr + PAGE
                    else:
                        run = [addr, addr + PAGE]
                        runs.append(run)
            done += batch
    return [tuple(r) for r in runs]


def read_range(fd, start, end):
    """The bytes of [start, end) that can be read, as (addr, bytes)
    pieces: a page that cannot be read (a guard page) is skipped."""
    pieces = []
    addr = start
    while addr < end:
        n = min(CHUNK, end - addr)
        try:
            pieces.append((addr, os.pread(fd, n, addr)))
            addr += n
            continue
        except OSError:
            pass
        for page in range(addr, addr + n, PAGE):
            try:
                pieces.append((page, os.pread(fd, PAGE, page)))
            except OSError:
                pass
        addr += n
    return pieces


def needles(values):
    """[(bytes, name, offset in the value)]: each whole value, and its
    16-byte fragments every 8 bytes, so that a copy whose head was
    overwritten (a freed block's list pointers, a reused buffer) still
    shows: any 24 bytes of a value in a row contain one fragment."""
    out = []
    for name, value in values.items():
        b = value.encode()
        out.append((b, name, 0))
        for i in range(0, len(b) - WINDOW + 1, STEP):
            out.append((b[i:i + WINDOW], name, i))
    return out


def masked(data, values):
    """data with every secret (and fragment) replaced, printable."""
    text = data
    for v in sorted((v.encode() for v in values.values()), key=len,
                    reverse=True):
        text = text.replace(v, b"<SECRET>")
    for n, _, _ in needles(values):
        text = text.replace(n, b"<SECRET-PART>")
    return repr(text)


def runs_of(data, pats, lengths):
    """[(start, end, name, value bytes covered)] in data: the places
    where pieces of one value lie, overlapping pieces merged."""
    hits = {}
    for pat, name, off in pats:
        i = data.find(pat)
        while i >= 0:
            hits.setdefault(name, []).append((i, i + len(pat), off))
            i = data.find(pat, i + 1)
    out = []
    for name, spans in hits.items():
        spans.sort()
        cur = None
        for lo, hi, off in spans:
            if cur and lo <= cur[1]:
                cur[1] = max(cur[1], hi)
                cur[3] = min(cur[3], off)
                cur[4] = max(cur[4], off + hi - lo)
            else:
                cur = [lo, hi, name, off, off + hi - lo]
                out.append(cur)
    return [(lo, hi, name,
             "whole" if (a, b) == (0, lengths[name]) else f"bytes {a}-{b}")
            for lo, hi, name, a, b in out]


def scan(pid, values):
    """Every place a value (or a piece of one) sits in pid's writable
    memory: [{"mapping", "addr", "what", "context"}]; and how many bytes
    were read."""
    found = []
    total = 0
    pats = needles(values)
    lengths = {k: len(v.encode()) for k, v in values.items()}
    stacks = thread_stacks(pid)
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for start, end, perms, path in regions(pid):
            if end - start > SHADOW_ABOVE:
                continue    # a sanitizer's shadow: terabytes, no data
            if end - start > PAGEMAP_ABOVE:
                runs = resident_runs(pid, start, end)
            else:
                runs = [(start, end)]
            where = (f"{start:x}-{end:x} {perms} "
                     f"{describe(pid, start, end, path, stacks)}")
            for rs, re_ in runs:
                for addr, data in read_range(fd, rs, re_):
                    total += len(data)
                    for lo, hi, name, part in runs_of(data, pats, lengths):
                        found.append({
                            "mapping": where,
                            "addr": f"{addr + lo:x}",
                            "what": f"{name} ({part})",
                            "context": masked(
                                data[max(0, lo - CONTEXT):hi + CONTEXT],
                                values)})
    finally:
        os.close(fd)
    return found, total


def report(found):
    lines = [f"{len(found)} plaintext secret(s) in the daemon's memory:"]
    for f in sorted(found, key=lambda f: int(f["addr"], 16))[:40]:
        lines.append(f"  {f['what']} at {f['addr']} in {f['mapping']}\n"
                     f"    context: {f['context']}")
    return "\n".join(lines)


def exercise(app, names, rounds=5):
    """Read every file several times, the way users do."""
    for _ in range(rounds):
        for name in names:
            sfs.read(app / name)
            os.stat(app / name)
        os.listdir(app)
        subprocess.run(["getfattr", "-d", str(app / ".env")],
                       capture_output=True, timeout=20, check=True)


def check_memory(m, values, settle=0.5):
    time.sleep(settle)
    assert m.proc.poll() is None, "the daemon died"
    found, total = scan(m.pid, values)
    assert total > 0, "nothing of the daemon's memory could be read"
    assert not found, report(found)


# ----------------------------------------------------------------- tests

def test_self_check_finds_a_planted_value():
    """The scanner finds a value in a live process's heap (so a clean
    result below means something)."""
    value = distinctive("plant")
    code = ("import sys, time\n"
            "v = bytearray(sys.stdin.readline().strip().encode())\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")
    proc = subprocess.Popen([sfs.PYTHON, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        proc.stdin.write(value + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"
        found, total = scan(proc.pid, {"PLANTED": value})
        assert total > 0
        assert any(f["what"] == "PLANTED (whole)" for f in found)
        assert all(value not in f["context"] for f in found)
    finally:
        proc.kill()
        proc.wait()


def file_store_setup(store):
    values = {k: distinctive(k) for k in
              ("API_KEY", "DB_PASSWORD", "STRIPE", "MULTI", "SHARED", "PRIV")}
    store.put("mem/billing", {k: values[k]
                              for k in ("API_KEY", "DB_PASSWORD", "STRIPE")})
    multi = values["MULTI"] + "\n" + values["MULTI"]
    store.put("mem/shared", {"password": values["SHARED"], "multi": multi})
    store.put("mem/dotenvx", {"private_key": values["PRIV"]})
    app = {"store": "local://mem/billing",
           "env.SHARED": "local://mem/shared#password",
           "env.MULTI": "local://mem/shared#multi",
           "env.GENERATED": "generate:password:40",
           "keys.default": "local://mem/dotenvx#private_key"}
    return values, app


@pytest.mark.timeout_s(120)
def test_no_plaintext_after_reads_file_store(mount, store, secrets):
    values, app_conf = file_store_setup(store)
    # a short ttl and refresh: the refresher and revalidating opens run
    # too while the files are read
    m = mount({"billing": app_conf},
              settings={"ttl": "1s", "refresh": "300ms"})
    app = m.app("billing")
    env = sfs.parse(sfs.read_text(app / ".env"))
    values["GENERATED"] = secrets.add(env["GENERATED"])
    assert env["API_KEY"] == values["API_KEY"]
    names = [".env", ".env.keys", "API_KEY", "DB_PASSWORD", "STRIPE",
             "SHARED", "MULTI", "GENERATED"]
    exercise(app, names)
    time.sleep(1.2)     # past ttl: revalidating reads, refresher rounds
    exercise(app, names)
    check_memory(m, values)


@pytest.mark.timeout_s(120)
def test_no_plaintext_after_reads_vault(vault, vault_mount, secrets):
    values = {k: distinctive(k) for k in
              ("API_KEY", "DB_PASSWORD", "STRIPE", "SHARED", "PRIV")}
    for k, v in values.items():
        secrets.add(v)
    vault.put("secret/", "mem/billing", {k: values[k] for k in
                                         ("API_KEY", "DB_PASSWORD", "STRIPE")})
    vault.put("secret/", "mem/shared", {"password": values["SHARED"]})
    vault.put("kv1/", "mem/dotenvx", {"private_key": values["PRIV"]})
    m = vault_mount({"billing": {
        "store": "vault://secret/mem/billing",
        "env.SHARED": "vault://secret/mem/shared#password",
        "env.GENERATED": "generate:password:40",
        "keys.default": "vault://kv1/mem/dotenvx#private_key"}},
        settings={"ttl": "1s", "refresh": "300ms", "max_stale": "1h"})
    app = m.app("billing")
    env = sfs.parse(sfs.read_text(app / ".env"))
    values["GENERATED"] = secrets.add(env["GENERATED"])
    assert vault.get("secret/", "mem/billing")["GENERATED"] == \
        values["GENERATED"]
    names = [".env", ".env.keys", "API_KEY", "DB_PASSWORD", "STRIPE",
             "SHARED", "GENERATED"]
    exercise(app, names)
    time.sleep(1.2)
    exercise(app, names)
    check_memory(m, values)


@pytest.mark.timeout_s(120)
def test_no_plaintext_after_key_file_reads_only(mount, store, secrets):
    """Per-key files only (no .env read by anyone): the narrowest path."""
    values = {k: distinctive(k) for k in ("ONE", "TWO")}
    store.put("mem/keys", values)
    m = mount({"keys": {"store": "local://mem/keys"}},
              settings={"ttl": "5m", "refresh": "5m"})
    app = m.app("keys")
    for _ in range(5):
        for k, v in values.items():
            assert sfs.read(app / k) == v.encode()
    check_memory(m, values)


@pytest.mark.timeout_s(120)
def test_no_plaintext_after_writes(mount, store, secrets):
    """What a writer sent is stored, then gone from the daemon's memory:
    a key file written, and .env edited."""
    values = {k: distinctive(k) for k in ("OLD", "NEW", "ENVNEW", "KEEP")}
    for v in values.values():
        secrets.add(v)
    store.put("mem/w", {"KEY": values["OLD"], "KEEP": values["KEEP"]})
    m = mount({"w": {"store": "local://mem/w", "mode": "0600"}},
              settings={"ttl": "5m", "refresh": "5m"})
    app = m.app("w")
    assert sfs.write_file(app / "KEY", values["NEW"]) == (None, None)
    env = {"KEY": values["NEW"], "KEEP": values["KEEP"],
           "OTHER": values["ENVNEW"]}
    assert sfs.write_file(app / ".env", sfs.render(env)) == (None, None)
    assert store.get("mem/w") == {"KEY": values["NEW"], "KEEP": values["KEEP"],
                                  "OTHER": values["ENVNEW"]}
    check_memory(m, values)


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("args", [(), ("-o", "kernel_cache=no")],
                         ids=["kernel_cache", "kernel_cache_no"])
def test_no_plaintext_while_env_held_open(mount, store, secrets, args):
    """An open .env is the version it opened, kept sealed: while readers
    hold it open (and read through it: with kernel_cache=no every read
    reaches the daemon) no open file keeps a value in the daemon's memory,
    and no thread's stack holds a piece of one either."""
    values = {k: distinctive(k) for k in ("HELD", "OPEN")}
    store.put("mem/held", values)
    m = mount({"held": {"store": "local://mem/held"}},
              settings={"ttl": "5m", "refresh": "5m"}, args=args)
    env = m.app("held") / ".env"
    # the first read builds .env; the second, finding nothing changed,
    # keeps it sealed for the opens that follow
    assert sfs.parse(sfs.read_text(env)) == values
    fds = [os.open(env, os.O_RDONLY) for _ in range(3)]
    try:
        for fd in fds:
            assert sfs.parse(os.read(fd, 4096).decode()) == values
        check_memory(m, values)
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.timeout_s(300)
def test_no_plaintext_on_stacks_after_a_mounts_first_read(mount, store):
    """Right after a mount's first read of .env, no thread's stack holds a
    piece of it. A call a process makes to a function of another object
    for the first time went through ld.so's lazy binding, whose trampoline
    saves every vector register on the stack; a worker's registers still
    held pieces of the .env it had parsed, and its first release (which
    wipes nothing: it touches no value) put them about 1.8 KiB below where
    it waits for the next request - in 6 of 10 mounts. One mount alone
    would pass by luck: ten fresh ones, each read once."""
    for i in range(10):
        values = {k: distinctive(k) for k in ("FIRST", "TAIL")}
        store.put(f"mem/first{i}", values)
        m = mount({"first": {"store": f"local://mem/first{i}"}},
                  settings={"ttl": "5m", "refresh": "5m"})
        assert sfs.parse(sfs.read_text(m.app("first") / ".env")) == values
        check_memory(m, values)
        m.stop()


def test_daemon_binds_every_symbol_at_start(secretfs_bin):
    """The cause of the above, checked where it is decided: the daemon is
    linked with -z now, so no function is bound lazily while values sit in
    registers (meson.build)."""
    out = subprocess.run(["readelf", "--dynamic", str(secretfs_bin)],
                         capture_output=True, text=True, timeout=20,
                         check=True).stdout
    flags = [line for line in out.splitlines() if "FLAGS" in line]
    assert any("NOW" in f for f in flags), \
        f"{secretfs_bin} binds lazily (no BIND_NOW):\n" + "\n".join(flags)
