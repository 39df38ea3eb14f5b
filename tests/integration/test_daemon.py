"""The command line: daemon mode, signals, --version, --help."""

import os
import signal
import subprocess
import time

import pytest

import sfs


def find_daemon(config_path):
    """Pid of the process whose argv holds config=<config_path>."""
    want = f"config={config_path}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if want in argv:
            return int(pid)
    return None


def in_mountinfo(mnt):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(mnt) for line in f)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def daemonized(fuse_ready, tmp_path, store):
    """Start secretfs without -f; yields (mountpoint, completed process,
    daemon pid); always unmounts and kills afterwards."""
    store.put("team/billing", {"DB_PASSWORD": "daemon-db-pw"})
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing"}}))
    mnt = sfs.make_mountpoint()
    started = {}

    def start():
        # files, not pipes: a daemon holding a pipe open would hang run()
        out, err = tmp_path / "out", tmp_path / "err"
        with open(out, "wb") as o, open(err, "wb") as e:
            res = subprocess.run([str(sfs.BIN), "-o", f"config={cfg}",
                                  "-o", "log=debug", str(mnt)],
                                 stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                 timeout=20, env=sfs.daemon_env())
        started["pid"] = find_daemon(cfg)
        return res, out.read_text(), err.read_text(), started["pid"]

    yield mnt, start
    sfs.fusermount_u(mnt)
    pid = started.get("pid") or find_daemon(cfg)
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)
    sfs.remove_mountpoint(mnt)


def test_returns_once_mounted(daemonized):
    mnt, start = daemonized
    res, out, err, pid = start()
    assert res.returncode == 0, err
    # live the moment the command returns: no polling
    assert os.path.ismount(mnt)
    assert sfs.read_text(mnt / "billing" / ".env") == "DB_PASSWORD='daemon-db-pw'\n"
    assert pid is not None and pid != os.getpid()
    assert "daemon-db-pw" not in out + err


def test_shell_and_then_cat(daemonized, tmp_path):
    mnt, _ = daemonized
    cfg = tmp_path / "secretfs.conf"
    res = subprocess.run(
        ["sh", "-c", '"$1" -o config="$2" "$3" && cat "$3/billing/DB_PASSWORD"',
         "sh", str(sfs.BIN), str(cfg), str(mnt)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, timeout=20)
    assert res.returncode == 0
    assert res.stdout == b"daemon-db-pw"


def test_sigterm_unmounts_cleanly(daemonized):
    mnt, start = daemonized
    res, _, err, pid = start()
    assert res.returncode == 0, err
    assert pid is not None
    assert sfs.read(mnt / "billing" / "DB_PASSWORD") == b"daemon-db-pw"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while (in_mountinfo(mnt) or alive(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not in_mountinfo(mnt), "still mounted 10 s after SIGTERM"
    assert not alive(pid), "daemon still running 10 s after SIGTERM"
    # a clean unmount leaves a usable directory, not ENOTCONN
    assert os.listdir(mnt) == []


def test_sigterm_in_foreground(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "daemon-db-pw"})
    m = mount({"billing": {"store": "local://team/billing"}})
    assert sfs.read(m.app("billing") / "DB_PASSWORD") == b"daemon-db-pw"
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(10) == 0
    assert not in_mountinfo(m.path)


def test_version(secretfs_bin):
    res = subprocess.run([str(secretfs_bin), "--version"], capture_output=True,
                         text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert res.returncode == 0
    assert res.stdout.strip().splitlines()[0] == "secretfs 0.1.0"


def test_help(secretfs_bin):
    res = subprocess.run([str(secretfs_bin), "--help"], capture_output=True,
                         text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert res.returncode == 0
    text = res.stdout + res.stderr
    assert "usage" in text.lower()
    assert "config=" in text
    assert "MOUNTPOINT" in text.upper()


def test_bad_option(secretfs_bin, tmp_path):
    res = subprocess.run([str(secretfs_bin), "--no-such-option", str(tmp_path)],
                         capture_output=True, text=True, timeout=20,
                         stdin=subprocess.DEVNULL)
    assert res.returncode != 0
    assert res.stderr.strip()


def test_bad_log_level(fuse_ready, tmp_path, store):
    store.put("team/billing", {"DB_PASSWORD": "daemon-db-pw"})
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing"}}))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          "-o", "log=loud", str(mnt)], capture_output=True,
                         text=True, timeout=20, stdin=subprocess.DEVNULL)
    if os.path.ismount(mnt):
        sfs.fusermount_u(mnt)
    assert res.returncode == 1
    assert "loud" in res.stderr


def test_mount_helper_with_config_as_source(fuse_ready, tmp_path, store):
    # an fstab line "CONF DIR fuse.secretfs ro 0 0" runs mount.fuse3, which
    # runs "secretfs CONF DIR -o ro,...": the source names the config file
    store.put("team/billing", {"DB_PASSWORD": "helper-db-pw"})
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing"}}))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "secretfs").symlink_to(sfs.BIN)
    mnt = sfs.make_mountpoint()
    env = dict(sfs.daemon_env(), PATH=f"{bindir}:{os.environ['PATH']}")
    try:
        res = subprocess.run(["mount.fuse3", str(cfg), str(mnt),
                              "-t", "fuse.secretfs", "-o", "ro"],
                             stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=20, env=env)
        assert res.returncode == 0, res.stderr.decode()
        assert sfs.read(mnt / "billing" / "DB_PASSWORD") == b"helper-db-pw"
        with open("/proc/self/mountinfo") as f:
            line = next(ln for ln in f if ln.split()[4] == str(mnt))
        assert "fuse.secretfs" in line and " ro," in line
    finally:
        sfs.fusermount_u(mnt)
        pid = find_daemon_by_mount(mnt)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
        sfs.remove_mountpoint(mnt)


def find_daemon_by_mount(mnt):
    """Pid of a secretfs whose argv ends with mnt."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if str(mnt).encode() in argv and any(b"secretfs" in a for a in argv[:1]):
            return int(pid)
    return None


def test_too_many_words_refused(secretfs_bin, tmp_path):
    res = subprocess.run([str(secretfs_bin), "a", "b", "c"],
                         capture_output=True, timeout=10)
    assert res.returncode == 1
    assert b"too many arguments" in res.stderr
