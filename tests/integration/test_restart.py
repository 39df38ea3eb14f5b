"""Surviving restarts (issue 14): the mount table names the config; a live
secretfs at the mountpoint is refused (mount -a twice stacks nothing); a
dead one (its daemon killed: ENOTCONN) is detached and mounted over; a
missing config file is an error; -o log= picks where lines go.
"""

import os
import signal
import subprocess
import time

import pytest

import sfs
from test_daemon import alive, find_daemon_by_mount


def mountinfo(mnt):
    """(fstype, source) of every mount at mnt, bottom first."""
    with open("/proc/self/mountinfo") as f:
        rows = [ln.split() for ln in f]
    out = []
    for r in rows:
        if r[4] == str(mnt):
            dash = r.index("-")
            out.append((r[dash + 1], r[dash + 2]))
    return out


def run(*argv, env=None, timeout=20):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          env=env or sfs.daemon_env())


@pytest.fixture
def setup(fuse_ready, tmp_path, store):
    """(config path, mountpoint); kills what it started."""
    store.put("team/billing", {"DB_PASSWORD": "restart-db-pw"})
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing"}}))
    mnt = sfs.make_mountpoint()
    yield cfg, mnt
    for _ in range(3):
        pid = find_daemon_by_mount(mnt)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
        sfs.fusermount_u(mnt)
    sfs.remove_mountpoint(mnt)


def test_source_is_the_config(setup):
    cfg, mnt = setup
    res = run(sfs.BIN, cfg, mnt)
    assert res.returncode == 0, res.stderr
    assert mountinfo(mnt) == [("fuse.secretfs", str(cfg))]


def test_live_mount_refused(setup):
    cfg, mnt = setup
    assert run(sfs.BIN, cfg, mnt).returncode == 0
    pid = find_daemon_by_mount(mnt)
    res = run(sfs.BIN, cfg, mnt)
    assert res.returncode == 1
    assert f"{mnt} is already mounted by a running secretfs (of {cfg})" in res.stderr
    assert len(mountinfo(mnt)) == 1
    assert find_daemon_by_mount(mnt) == pid and alive(pid)
    assert sfs.read(mnt / "billing" / "DB_PASSWORD") == b"restart-db-pw"


def test_dead_mount_detached_and_mounted_over(setup, tmp_path):
    cfg, mnt = setup
    assert run(sfs.BIN, cfg, mnt).returncode == 0
    pid = find_daemon_by_mount(mnt)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    # ENOTCONN, or ECONNABORTED for a request caught as the daemon died
    assert sfs.errno_of(os.stat, mnt / "billing") in ("ENOTCONN", "ECONNABORTED")
    log = tmp_path / "log"
    res = run(sfs.BIN, "-o", f"log={log}", cfg, mnt)
    assert res.returncode == 0, res.stderr
    # said before daemonizing: on stderr, where whoever restarts sees it
    assert "detached a dead secretfs mount" in res.stderr
    assert mountinfo(mnt) == [("fuse.secretfs", str(cfg))]
    assert sfs.read(mnt / "billing" / "DB_PASSWORD") == b"restart-db-pw"


def test_mount_a_twice_stacks_nothing(setup, tmp_path):
    cfg, mnt = setup
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{cfg} {mnt} fuse.secretfs defaults,nofail 0 0\n")
    # mount(8) runs mount.fuse3 with a PATH of its own: secretfs must be
    # on it, as an installed one is
    link = "/usr/local/sbin/secretfs"
    if os.path.lexists(link) and os.path.realpath(link) != str(sfs.BIN):
        pytest.skip(f"{link} is another secretfs")
    os.makedirs("/usr/local/sbin", exist_ok=True)
    if not os.path.lexists(link):
        os.symlink(sfs.BIN, link)
    try:
        for _ in range(2):
            res = run("mount", "-a", "-T", fstab, "-t", "fuse.secretfs")
            assert res.returncode == 0, res.stderr
    finally:
        os.unlink(link)
    assert mountinfo(mnt) == [("fuse.secretfs", str(cfg))]
    assert sfs.read(mnt / "billing" / "DB_PASSWORD") == b"restart-db-pw"


def test_missing_config_is_an_error(fuse_ready, tmp_path):
    mnt = sfs.make_mountpoint()
    try:
        res = run(sfs.BIN, "-f", tmp_path / "missing.conf", mnt)
        assert res.returncode == 1
        assert f"configuration {tmp_path}/missing.conf: No such file" in res.stderr
        assert not os.path.ismount(mnt)
    finally:
        sfs.remove_mountpoint(mnt)


def test_log_to_a_file(setup, tmp_path):
    cfg, mnt = setup
    log = tmp_path / "secretfs.log"
    res = run(sfs.BIN, "-o", f"log={log}", "-o", "log=debug", cfg, mnt)
    assert res.returncode == 0, res.stderr
    assert sfs.read(mnt / "billing" / "DB_PASSWORD") == b"restart-db-pw"
    text = log.read_text()
    assert f"secretfs: info: mounted 1 apps of {cfg} at {mnt}" in text
    assert "secretfs: debug: " in text
    assert "restart-db-pw" not in text
    assert log.stat().st_mode & 0o777 == 0o600


def test_log_to_stderr_under_journald(setup, tmp_path):
    """JOURNAL_STREAM set and stderr no terminal: lines stay on stderr after
    daemonizing (journald keeps them where no syslog daemon runs)."""
    cfg, mnt = setup
    err = tmp_path / "err"
    env = dict(sfs.daemon_env(), JOURNAL_STREAM="8:12345")
    with open(err, "w") as e:
        res = subprocess.run([str(sfs.BIN), str(cfg), str(mnt)],
                             stdin=subprocess.DEVNULL, stdout=e, stderr=e,
                             env=env, timeout=20)
    assert res.returncode == 0
    pid = find_daemon_by_mount(mnt)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reloaded" not in err.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "secretfs: info: reloaded " in err.read_text()
