"""The local stores' own files (issue 10), through real mounts: a FIFO or a
symbolic link in a store's folder is refused (promptly, never waited on,
never followed), a locator outside the folder is a configuration error,
temporaries a killed daemon left are removed at start (file and dir
stores), and kill -9 in the middle of writes leaves each entry old or
new, whole, and no temporary after the next start. A full disk
(ENOSPC) is in test_concurrent_writes.py.

Run: SECRETFS_BIN=build/secretfs python3 -m pytest tests/integration/test_local_store.py
"""

import os
import random
import secrets as pysecrets
import signal
import stat
import subprocess
import sys
import time

import pytest

import sfs

# Every read reaches the store: changes show at once.
FRESH = {"ttl": "0", "max_stale": "0"}
# A reader that waits longer than this on one file is stuck.
READ_WAIT_S = 10
HEX16 = "0123456789abcdef"


def distinct(tag):
    return f"S3cr3t-{tag}-{pysecrets.token_hex(6)}"


def dx_section(tmp_path, monkeypatch, directory):
    """A dotenvx store on directory, its key in the daemon's environment."""
    monkeypatch.setenv("SFS_IT_DX_KEY", pysecrets.token_hex(32))
    return ("\n[provider environ]\ntype = env\n"
            f"\n[provider repo]\ntype = dotenvx\ndirectory = {directory}\n"
            "private_key = environ://SFS_IT_DX_KEY\n")


def dir_section(directory):
    return f"\n[provider folder]\ntype = dir\ndirectory = {directory}\n"


READER = r"""
import errno, sys
try:
    with open(sys.argv[1], "rb") as f:
        f.read()
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"""


def read_in_child(path):
    """Read path in a child process: its errno name ("ok" on success), or
    None when it did not finish within READ_WAIT_S."""
    child = subprocess.Popen([sys.executable, "-c", READER, str(path)],
                             stdout=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    try:
        out, _ = child.communicate(timeout=READ_WAIT_S)
        return out.strip()
    except subprocess.TimeoutExpired:
        return None
    finally:
        if child.poll() is None:
            child.kill()


def unblock(fifo):
    """Open fifo for writing once, so a reader stuck opening it (the
    unfixed daemon) goes on and the test can end."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# ------------------------------------------------------------ FIFOs

@pytest.mark.parametrize("kind", ["file", "dotenvx", "dir"])
def test_fifo_in_store_fails_promptly(mount, store, tmp_path, monkeypatch,
                                      kind):
    """A FIFO where an entry's file should be: the reader gets EIO at once
    and the log names the path, instead of hanging (unkillably, in the
    kernel) until something opens the FIFO for writing."""
    ok = distinct("fifo-ok")
    store.secrets.add(ok)
    if kind == "file":
        store.put("team/good", {"K": ok})
        fifo = store.path("team/fifo")
        fifo.parent.mkdir(parents=True, exist_ok=True)
        extra = ""
        apps = {"good": {"store": "local://team/good"},
                "bad": {"store": "local://team/fifo"}}
    elif kind == "dotenvx":
        repo = tmp_path / "repo"
        repo.mkdir()
        (repo / ".env.good").write_text(f"K={ok}\n")
        fifo = repo / ".env.fifo"
        extra = dx_section(tmp_path, monkeypatch, repo)
        apps = {"good": {"store": "repo://.env.good"},
                "bad": {"store": "repo://.env.fifo"}}
    else:
        folder = tmp_path / "secrets"
        folder.mkdir()
        (folder / "good").write_text(ok)
        fifo = folder / "fifo"
        extra = dir_section(folder)
        apps = {"good": {"env.K": "folder://good"},
                "bad": {"env.K": "folder://fifo"}}
    os.mkfifo(fifo, 0o600)
    m = mount(config=sfs.config_text(store.dir, apps, FRESH, extra=extra))
    m.expect_log(rf"{fifo}: not a regular file \(refused\)")
    try:
        got = read_in_child(m.app("bad") / ".env")
        assert got == "EIO", f"reading .env over a FIFO: {got or 'hung'}"
        got = read_in_child(m.app("bad") / "K")
        if kind == "dir":	# the key is declared: its file exists
            assert got == "EIO", f"reading K over a FIFO: {got or 'hung'}"
    finally:
        unblock(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sfs.parse(sfs.read_text(m.app("good") / ".env")) == {"K": ok}


# ------------------------------------------------------------ symbolic links

def test_symlinked_entry_file_refused(mount, store, tmp_path):
    """An entry file that is a symbolic link (to a file outside the store)
    is refused with EACCES, not read through."""
    outside = tmp_path / "outside.env"
    leaked = distinct("outside-entry")
    store.secrets.add(leaked)
    outside.write_text(f"K='{leaked}'\n")
    store.path("team/x").parent.mkdir(parents=True)
    os.symlink(outside, store.path("team/link"))
    m = mount({"app": {"store": "local://team/link", "mode": "0600"}}, settings=FRESH)
    m.expect_log(r"team/link\.env: a symbolic link in the store's folder \(refused\)")
    assert sfs.errno_of(sfs.read, m.app("app") / ".env") == "EACCES"
    # a write does not replace the link either
    assert sfs.write_file(m.app("app") / "K", "x")[1] == "EACCES"
    assert os.path.islink(store.path("team/link"))
    assert outside.read_text() == f"K='{leaked}'\n"


def test_symlinked_folder_refused_for_reads_and_writes(mount, store, tmp_path):
    """A folder of the store that is a symbolic link to one outside: reads
    are refused, and a write does not land outside the store."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    leaked = distinct("outside-folder")
    store.secrets.add(leaked)
    (outside / "app.env").write_text(f"K='{leaked}'\n")
    os.symlink(outside, store.dir / "team")
    m = mount({"app": {"store": "local://team/app", "mode": "0600"},
               "new": {"store": "local://team/new", "mode": "0600"}},
              settings=FRESH)
    m.expect_log(r"/team: a symbolic link in the store's folder \(refused\)")
    assert sfs.errno_of(sfs.read, m.app("app") / ".env") == "EACCES"
    stage, err = sfs.write_file(m.app("new") / "K", distinct("written"))
    assert err == "EACCES", (stage, err)
    assert sorted(p.name for p in outside.iterdir()) == ["app.env"]
    assert (outside / "app.env").read_text() == f"K='{leaked}'\n"


def test_symlinked_dotenvx_file_refused(mount, store, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    outside = tmp_path / "outside.env"
    leaked = distinct("outside-dx")
    store.secrets.add(leaked)
    outside.write_text(f"K={leaked}\n")
    os.symlink(outside, repo / ".env.link")
    m = mount(config=sfs.config_text(
        store.dir, {"app": {"store": "repo://.env.link"}}, FRESH,
        extra=dx_section(tmp_path, monkeypatch, repo)))
    m.expect_log(r"\.env\.link: a symbolic link in the store's folder \(refused\)")
    assert sfs.errno_of(sfs.read, m.app("app") / ".env") == "EACCES"


# ------------------------------------------------------------ locators

def start_refused(tmp_path, config):
    """Start the daemon (it returns once mounted) on config: its result;
    a mount it made is undone."""
    cfg = tmp_path / "refused.conf"
    cfg.write_text(config)
    mnt = sfs.make_mountpoint()
    try:
        return subprocess.run([str(sfs.BIN), "-o", f"config={cfg}", str(mnt)],
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=30, env=sfs.daemon_env()), cfg
    finally:
        if os.path.ismount(mnt):
            sfs.fusermount_u(mnt)
        sfs.remove_mountpoint(mnt)


@pytest.mark.parametrize("kind", ["file", "dir", "dotenvx"])
@pytest.mark.parametrize("locator", ["../../etc/shadow", "/etc/shadow",
                                     "team/../../../etc/shadow"])
def test_locator_outside_the_folder_refused_at_load(fuse_ready, store, tmp_path,
                                                    monkeypatch, kind, locator):
    extra = {"file": "", "dir": dir_section(tmp_path),
             "dotenvx": dx_section(tmp_path, monkeypatch, tmp_path)}[kind]
    scheme = {"file": "local", "dir": "folder", "dotenvx": "repo"}[kind]
    text = sfs.config_text(store.dir, {"billing": {
        "store": "local://team/billing",
        "env.X": f"{scheme}://{locator}#x"}}, extra=extra)
    line = text.splitlines().index(f"env.X = {scheme}://{locator}#x") + 1
    res, cfg = start_refused(tmp_path, text)
    assert res.returncode == 1, res.stderr
    assert f"{cfg}:{line}: reference '{scheme}://{locator}" in res.stderr


# ------------------------------------------------------------ temporaries

def test_stale_temporaries_removed_at_start(mount, store, tmp_path):
    """Temporaries of interrupted writes (".NAME.env.<16 hex>", each a
    whole entry in plaintext) are removed when the store starts; nothing
    else in the folder is touched."""
    value = distinct("kept")
    stale = distinct("stale")
    store.secrets.add(stale)
    store.put("team/billing", {"K": value})
    temps = [store.dir / "team" / f".billing.env.{HEX16}",
             store.dir / f".top.env.{HEX16[::-1]}",
             store.dir / "team" / "deep" / f".x.env.{'a' * 16}"]
    outside = tmp_path / "outside.env"
    outside.write_text("outside\n")
    keep = {
        store.dir / "team" / f".billing.env.{HEX16[:15]}": "short",
        store.dir / "team" / f".billing.env.{HEX16.upper()}": "upper",
        store.dir / "team" / f".notes.txt.{HEX16}": "not an entry's",
        store.dir / "team" / f"billing.env.{HEX16}": "no dot",
        store.dir / "team" / f".billing.env.{HEX16}.x": "suffix",
        store.dir / ".git" / f".x.env.{HEX16}": "in a dot folder",
        store.dir / "team" / "notes.txt": "notes",
    }
    for p in temps:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"K='{stale}'\n")
        p.chmod(0o600)
    for p, text in keep.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    link = store.dir / "team" / f".link.env.{HEX16}"
    os.symlink(outside, link)
    os.mkdir(store.dir / "team" / f".dir.env.{HEX16}")
    before = {p: os.stat(p).st_mtime_ns for p in keep}

    m = mount({"billing": {"store": "local://team/billing"}}, settings=FRESH)
    assert [p for p in temps if os.path.lexists(p)] == []
    assert {p: p.read_text() for p in keep} == keep
    assert {p: os.stat(p).st_mtime_ns for p in keep} == before
    assert os.readlink(link) == str(outside) and outside.read_text() == "outside\n"
    assert (store.dir / "team" / f".dir.env.{HEX16}").is_dir()
    assert sfs.read_text(m.app("billing") / "K") == value
    assert "removed 3 temporary file(s) of interrupted writes" in m.stderr_text()


def test_writes_make_temporaries_private_beside_the_entry(mount, store):
    """What a write leaves is the entry alone, 0600, in its own folder."""
    store.put("team/billing", {"K": distinct("old")})
    m = mount({"billing": {"store": "local://team/billing", "mode": "0600"}})
    assert sfs.write_file(m.app("billing") / "K", distinct("new")) == (None, None)
    assert sorted(os.listdir(store.dir / "team")) == ["billing.env"]
    assert stat.S_IMODE(os.stat(store.path("team/billing")).st_mode) == 0o600


def test_dir_store_stale_temporaries_removed_at_start(mount, store, tmp_path):
    """The dir store's temporaries (".KEY.<16 hex>", each a value in
    plaintext) are removed when the store starts; look-alikes, links,
    folders and a Kubernetes volume's ..data and ..TIMESTAMP entries are
    left as they are."""
    d = tmp_path / "secrets"
    value = distinct("dir-kept")
    stale = distinct("dir-stale")
    store.secrets.add(value)
    store.secrets.add(stale)
    (d / "team" / "deep").mkdir(parents=True)
    (d / "api_key").write_text(value)
    temps = [d / f".api_key.{HEX16}",
             d / "team" / f".db.txt.{HEX16[::-1]}",
             d / "team" / "deep" / f".x.{'a' * 16}"]
    kube = d / "kube"
    ts = "..2024_01_01_00_00_00.1"
    outside = tmp_path / "outside"
    outside.write_text("outside\n")
    keep = {
        d / "team" / f".db.txt.{HEX16[:15]}": "short",
        d / "team" / f".db.txt.{HEX16.upper()}": "upper",
        d / "team" / f"db.txt.{HEX16}": "no dot",
        d / "team" / f".db.txt.{HEX16}.x": "suffix",
        d / "team" / f"..{HEX16}": "no key",
        d / ".git" / f".x.{HEX16}": "in a dot folder",
        d / "team" / "notes": "a key",
        kube / ts / "TOKEN": "kube token",
        kube / ts / f".TOKEN.{HEX16}": "in a ..TIMESTAMP folder",
        kube / f"..data.{HEX16}": "..data's look-alike",
        kube / f"..2024_01_01_00_00_00.{HEX16}": "a ..TIMESTAMP look-alike",
    }
    for p in temps:
        p.write_text(stale)
        p.chmod(0o600)
    for p, text in keep.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    os.symlink(ts, kube / "..data")
    os.symlink("..data/TOKEN", kube / "TOKEN")
    os.symlink(outside, d / "team" / f".link.{HEX16}")
    os.mkdir(d / "team" / f".dir.{HEX16}")
    before = {p: os.stat(p).st_mtime_ns for p in keep}

    m = mount(config=sfs.config_text(
        store.dir, {"app": {"store": "folder://"},
                    "kube": {"store": "folder://kube"}}, FRESH,
        extra=dir_section(d)))
    assert [p for p in temps if os.path.lexists(p)] == []
    assert {p: p.read_text() for p in keep} == keep
    assert {p: os.stat(p).st_mtime_ns for p in keep} == before
    assert os.readlink(kube / "..data") == ts
    assert os.readlink(kube / "TOKEN") == "..data/TOKEN"
    assert os.readlink(d / "team" / f".link.{HEX16}") == str(outside)
    assert outside.read_text() == "outside\n"
    assert (d / "team" / f".dir.{HEX16}").is_dir()
    assert sfs.read_text(m.app("app") / "api_key") == value
    assert sfs.read_text(m.app("kube") / "TOKEN") == "kube token"
    assert (f"provider folder: removed 3 temporary file(s) of interrupted "
            f"writes under {d}") in m.stderr_text()


# ------------------------------------------------------------ kill -9

WRITER = r"""
import os, sys
app, token, keys, size, gen = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
while True:
    text = "".join(f"K{i}='{token}-g{gen}-k{i}-" + "x" * size + "'\n"
                   for i in range(keys))
    try:
        with open(os.path.join(app, ".env"), "w") as f:
            f.write(text)
    except OSError:
        sys.exit(0)	# the daemon is gone
    gen += 1
"""


def generation(entry, token, keys, size):
    """The one generation every key of entry holds, or an AssertionError."""
    assert sorted(entry) == [f"K{i}" for i in range(keys)], sorted(entry)
    gens = set()
    for k, v in entry.items():
        head, _, pad = v.rpartition("-")
        assert pad == "x" * size, f"{k}: torn value"
        tok, g, kk = head.rsplit("-", 2)
        assert tok == token and kk == f"k{k[1:]}", f"{k}: foreign value"
        gens.add(int(g[1:]))
    assert len(gens) == 1, f"keys from generations {sorted(gens)}"
    return gens.pop()


def temporaries(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


def wait_for_temporary(directory, limit_s):
    """Return as soon as a write's temporary is in directory (the daemon
    is between creating and renaming it), or after limit_s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if any(name.startswith(".") for name in os.listdir(directory)):
            return


@pytest.mark.timeout_s(120)
def test_kill_9_during_writes_leaves_old_or_new(fuse_ready, store, tmp_path):
    """kill -9 the daemon while a writer rewrites a large .env, ten times
    (every other kill the moment a temporary appears, the others at a
    random time): the entry is always one whole generation, and the next
    start leaves no temporary behind."""
    keys, size, cycles = 8, 40000, 10
    token = distinct("kill9")
    store.put_text("team/crash", "".join(
        f"K{i}='{token}-g0-k{i}-" + "x" * size + "'\n" for i in range(keys)))
    config = sfs.config_text(store.dir, {"crash": {
        "store": "local://team/crash", "mode": "0600"}}, FRESH)
    rng = random.Random(int(token[-12:], 16))
    last, stale_seen = 0, 0
    for cycle in range(cycles):
        m = sfs.Mount(tmp_path / f"m{cycle}", store, config)
        writer = None
        try:
            assert temporaries(store.dir / "team") == [], f"cycle {cycle}"
            assert generation(sfs.parse(sfs.read_text(m.app("crash") / ".env")),
                              token, keys, size) == last
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(m.app("crash")), token,
                 str(keys), str(size), str(1 + 1000 * cycle)],
                stdin=subprocess.DEVNULL)
            if cycle % 2:
                time.sleep(rng.uniform(0.2, 0.8))
            else:
                wait_for_temporary(store.dir / "team", 5)
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)
        finally:
            if writer:
                writer.kill()
                writer.wait(10)
            m.proc.kill()
            m.stop()
        assert token not in m.stderr_text()
        stale_seen += len(temporaries(store.dir / "team"))
        now = generation(store.get("team/crash"), token, keys, size)
        assert now >= last, f"cycle {cycle}: generation {now} after {last}"
        last = now
    print(f"kill -9: {cycles} cycles, last generation {last}, "
          f"{stale_seen} temporaries left by kills (removed at each start)")
    # half the kills land while a temporary exists: the sweep was needed
    assert stale_seen > 0
    m = sfs.Mount(tmp_path / "final", store, config)
    try:
        assert temporaries(store.dir / "team") == []
    finally:
        m.stop()


def pause_at_temporary(proc, directory, limit_s):
    """Stop proc (SIGSTOP) while a write's temporary is in directory, so
    a kill lands in the middle of that write; True when caught within
    limit_s (proc stopped), else False (proc running)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        wait_for_temporary(directory, deadline - time.monotonic())
        proc.send_signal(signal.SIGSTOP)
        if temporaries(directory):
            return True
        proc.send_signal(signal.SIGCONT)	# renamed meanwhile: again
    return False


def whole_values(entry, token, keys, size):
    """Each key of a dir store's folder holds one whole value of some
    generation (a write replaces the files one by one, so after a kill
    they may come from two)."""
    assert sorted(entry) == [f"K{i}" for i in range(keys)], sorted(entry)
    for k, v in entry.items():
        head, _, pad = v.rpartition("-")
        assert pad == "x" * size, f"{k}: torn value"
        tok, _, kk = head.rsplit("-", 2)
        assert tok == token and kk == f"k{k[1:]}", f"{k}: foreign value"


@pytest.mark.timeout_s(120)
def test_kill_9_during_writes_to_a_dir_store(fuse_ready, store, tmp_path):
    """kill -9 the daemon while a writer rewrites a dir store's folder
    through .env, four times (twice while a temporary is there, twice at
    a random time): each start leaves no temporary, and each value is
    whole."""
    keys, size, cycles = 8, 60000, 4
    token = distinct("dir-kill9")
    d = tmp_path / "secrets"
    folder = d / "crash"
    folder.mkdir(parents=True)
    for i in range(keys):
        (folder / f"K{i}").write_text(f"{token}-g0-k{i}-" + "x" * size)
    config = sfs.config_text(store.dir, {"crash": {
        "store": "folder://crash", "mode": "0600"}}, FRESH,
        extra=dir_section(d))
    rng = random.Random(int(token[-12:], 16))
    caught = 0
    for cycle in range(cycles):
        m = sfs.Mount(tmp_path / f"m{cycle}", store, config)
        writer = None
        try:
            assert temporaries(folder) == [], f"cycle {cycle}"
            whole_values(sfs.parse(sfs.read_text(m.app("crash") / ".env")),
                         token, keys, size)
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(m.app("crash")), token,
                 str(keys), str(size), str(1 + 1000 * cycle)],
                stdin=subprocess.DEVNULL)
            if cycle % 2:
                time.sleep(rng.uniform(0.2, 0.8))
            else:
                assert pause_at_temporary(m.proc, folder, 10), \
                    f"cycle {cycle}: no write caught with its temporary"
                caught += 1
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)
        finally:
            if writer:
                writer.kill()
                writer.wait(10)
            m.proc.kill()
            m.stop()
        assert token not in m.stderr_text()
        if cycle % 2 == 0:
            assert temporaries(folder), f"cycle {cycle}: the kill left none"
        whole_values({p.name: p.read_text() for p in folder.iterdir()
                      if not p.name.startswith(".")}, token, keys, size)
    print(f"kill -9 on a dir store: {cycles} cycles, {caught} caught "
          "with a temporary (removed at the next start)")
    m = sfs.Mount(tmp_path / "final", store, config)
    try:
        assert temporaries(folder) == []
    finally:
        m.stop()
