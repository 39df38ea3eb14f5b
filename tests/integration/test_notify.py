"""systemd's notify protocol (Type=notify): READY=1 once the mount is
live, STOPPING=1 at shutdown, sent to the datagram socket $NOTIFY_SOCKET
names (a path, or an abstract name written @name), as systemd would
receive them."""

import os
import signal
import socket
import subprocess
import time

import pytest

import sfs


@pytest.fixture
def daemon(fuse_ready, tmp_path, store):
    """start(notify_name) -> (proc, mountpoint); cleans up always."""
    store.put("team/billing", {"DB_PASSWORD": "notify-db-password"})
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing"}}))
    started = []

    def start(notify_name):
        mnt = sfs.make_mountpoint()
        err = open(tmp_path / f"daemon{len(started)}.stderr", "wb")
        env = {**sfs.daemon_env(), "NOTIFY_SOCKET": notify_name}
        proc = subprocess.Popen([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                                 str(mnt)], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, env=env)
        sfs.LIVE_DAEMONS.add(proc)
        started.append((proc, mnt, err))
        return proc, mnt

    yield start
    for proc, mnt, err in started:
        sfs.fusermount_u(mnt)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sfs.LIVE_DAEMONS.discard(proc)
        sfs.remove_mountpoint(mnt)
        err.close()
        text = open(err.name, "rb").read().decode("utf-8", "replace")
        assert not sfs.BAD_LEVEL.search(text), text
        assert not sfs.SANITIZER.search(text), text


def receiver(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name[1:] if name.startswith("@") else name)
    s.settimeout(sfs.MOUNT_WAIT_S)
    return s


def messages(sock):
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_when_live_stopping_at_stop(daemon, tmp_path, kind):
    name = (str(tmp_path / "notify.sock") if kind == "path"
            else f"@secretfs-test-notify-{os.getpid()}")
    sock = receiver(name)
    proc, mnt = daemon(name)
    msg = messages(sock)
    # READY comes once the mount answers, not before
    assert msg["READY"] == "1"
    assert msg["STATUS"] == f"1 apps mounted at {mnt}"
    assert os.path.ismount(mnt)
    assert sfs.read_text(mnt / "billing" / "DB_PASSWORD") == "notify-db-password"
    proc.send_signal(signal.SIGTERM)
    assert messages(sock) == {"STOPPING": "1"}
    assert proc.wait(5) == 0
    sock.close()


def test_stopping_on_unmount(daemon, tmp_path):
    sock = receiver(str(tmp_path / "n.sock"))
    proc, mnt = daemon(str(tmp_path / "n.sock"))
    assert messages(sock)["READY"] == "1"
    sfs.fusermount_u(mnt)
    assert messages(sock) == {"STOPPING": "1"}
    assert proc.wait(5) == 0


def test_no_ready_for_a_failed_start(fuse_ready, tmp_path):
    sock = receiver(str(tmp_path / "n.sock"))
    sock.settimeout(0.5)
    bad = tmp_path / "bad.conf"
    bad.write_text("[app x]\nstore = nowhere://a\n")
    mnt = sfs.make_mountpoint()
    try:
        res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={bad}",
                              str(mnt)], capture_output=True, timeout=20,
                             env={**sfs.daemon_env(),
                                  "NOTIFY_SOCKET": str(tmp_path / "n.sock")})
        assert res.returncode == 1
        with pytest.raises(socket.timeout):
            sock.recv(4096)
    finally:
        sfs.remove_mountpoint(mnt)
