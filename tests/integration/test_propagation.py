"""Containers keep seeing the folder across a restart (issue 14).

The recipe README.md's "Running it" gives: secretfs mounted on a folder
(P/fs) under a parent that is a shared mount of its own (mount --bind P P;
mount --make-rshared P), and containers binding the parent P with rslave
propagation. (A container that binds the secretfs mount itself, or an app
folder in it, holds that one mount: it stays dead after a restart.) A restart -
even after a crash, which leaves a dead mount that the new daemon detaches -
then reaches the containers: the old mount's removal and the new mount
both propagate into their mount namespaces. A container that binds the
folder privately keeps the dead mount ("Transport endpoint is not
connected") until it is recreated: the problem this avoids.

test_namespace_* use bare mount namespaces (unshare, nsenter), always
available; test_docker_* run real containers when a Docker daemon can be
started here (an image made by `docker import` of a busybox-static root).
"""

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import sfs
from test_daemon import alive, find_daemon_by_mount

SECRET = "propagation-db-pw"


def sh(*argv, check=True, timeout=60, **kw):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          check=check, **kw)


@pytest.fixture
def shared(fuse_ready, tmp_path, store):
    """(config, folder): folder (P/fs) is under P, an rshared mount of its
    own; not yet served. Everything is unmounted and killed afterwards."""
    store.put("team/billing", {"DB_PASSWORD": SECRET})
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing", "mode": "0444"}}))
    base = pathlib.Path(tempfile.mkdtemp(prefix="sfs-prop-", dir="/tmp"))
    base.chmod(0o755)
    parent = base / "secrets"
    parent.mkdir()
    sh("mount", "--bind", parent, parent)
    sh("mount", "--make-rshared", parent)
    folder = parent / "fs"
    folder.mkdir()
    yield cfg, folder
    for _ in range(3):
        pid = find_daemon_by_mount(folder)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
        sh("umount", "-l", folder, check=False)
    sh("umount", "-l", parent, check=False)
    shutil.rmtree(base, ignore_errors=True)


def start(cfg, folder):
    res = sh(sfs.BIN, cfg, folder, env=sfs.daemon_env(), check=False)
    assert res.returncode == 0, res.stderr
    return res


def crash(folder):
    pid = find_daemon_by_mount(folder)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    # the kernel answers from its caches until their 1 s timeouts end
    deadline = time.monotonic() + 5
    while sfs.errno_of(os.listdir, folder / "billing") not in ("ENOTCONN", "ECONNABORTED"):
        assert time.monotonic() < deadline, "the mount did not die"
        time.sleep(0.1)


class Namespace:
    """A process in a mount namespace of its own whose mounts are slaves
    (rslave) or private copies of the host's; read() runs cat inside."""

    def __init__(self, propagation):
        self.proc = subprocess.Popen(
            ["unshare", "--mount", f"--propagation={propagation}",
             "sleep", "120"], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.proc.pid}/ns/mnt") == \
                os.readlink("/proc/self/ns/mnt"):
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.01)

    def read(self, path):
        return sh("nsenter", "-t", self.proc.pid, "-m", "cat", path,
                  check=False)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def test_namespace_rslave_sees_restart_after_crash(shared):
    cfg, folder = shared
    start(cfg, folder)
    slave, private = Namespace("slave"), Namespace("private")
    try:
        key = folder / "billing" / "DB_PASSWORD"
        assert slave.read(key).stdout == SECRET
        assert private.read(key).stdout == SECRET
        crash(folder)
        res = start(cfg, folder)
        assert "detached a dead secretfs mount" in res.stderr
        assert slave.read(key).stdout == SECRET
        # a private copy keeps the dead mount: why the recipe says rslave
        assert "Transport endpoint is not connected" in private.read(key).stderr
        # a clean restart too
        os.kill(find_daemon_by_mount(folder), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while os.path.ismount(folder / "billing") or \
                find_daemon_by_mount(folder):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        start(cfg, folder)
        assert slave.read(key).stdout == SECRET
    finally:
        slave.close()
        private.close()


# ---------------------------------------------------------------- docker

DOCKERD_WAIT_S = 30


def start_dockerd(d):
    """A dockerd of our own on d (no network set-up, vfs storage); None
    when it cannot run here."""
    log = open(d / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [shutil.which("dockerd"), "--iptables=false", "--ip6tables=false",
         "--bridge=none", "--storage-driver=vfs", f"--data-root={d}/root",
         f"--exec-root={d}/exec", f"--pidfile={d}/pid"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + DOCKERD_WAIT_S
    while sh("docker", "info", check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.5)
    return proc


def busybox_image(d):
    """docker import of a root holding busybox-static alone."""
    root = d / "bbroot"
    (root / "bin").mkdir(parents=True)
    shutil.copy(shutil.which("busybox"), root / "bin" / "busybox")
    for tool in ("sh", "cat", "sleep"):
        (root / "bin" / tool).symlink_to("busybox")
    sh("tar", "-C", root, "-cf", d / "bb.tar", ".")
    sh("docker", "import", d / "bb.tar", "sfs-busybox:test")
    return "sfs-busybox:test"


@pytest.fixture(scope="module")
def docker():
    """A working docker CLI and daemon (started here if none runs), and a
    busybox image; skips when Docker cannot run here."""
    if not shutil.which("docker") or not shutil.which("busybox"):
        pytest.skip("no docker client, or no busybox-static for an image")
    d = pathlib.Path(tempfile.mkdtemp(prefix="sfs-dockerd-", dir="/var/tmp"))
    started = None
    try:
        if sh("docker", "info", check=False).returncode != 0:
            if not shutil.which("dockerd"):
                pytest.skip("no Docker daemon and no dockerd to start")
            started = start_dockerd(d)
            if not started:
                pytest.skip("dockerd cannot run here: "
                            + (d / "dockerd.log").read_text()[-400:])
        yield busybox_image(d)
    finally:
        if started:
            started.terminate()
            started.wait(30)
        subprocess.run(["umount", "-R", "-l", str(d)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_docker_rslave_container_survives_restart(shared, docker):
    cfg, folder = shared
    start(cfg, folder)
    name = f"sfs-prop-{os.getpid()}"
    sh("docker", "run", "-d", "--rm", "--name", name, "--network", "none",
       "--mount", f"type=bind,src={folder.parent},dst=/run/secretfs,readonly,"
                  "bind-propagation=rslave",
       docker, "sleep", "300")
    try:
        def cat():
            return sh("docker", "exec", name, "cat",
                      "/run/secretfs/fs/billing/DB_PASSWORD", check=False)
        assert cat().stdout == SECRET
        crash(folder)
        start(cfg, folder)
        res = cat()
        assert res.stdout == SECRET, res.stderr
        # why the parent: a container binding the mount itself keeps the
        # dead one
        pinned = f"{name}-pinned"
        sh("docker", "run", "-d", "--rm", "--name", pinned, "--network",
           "none", "--mount", f"type=bind,src={folder},dst=/run/secrets,"
           "readonly,bind-propagation=rslave", docker, "sleep", "300")
        try:
            crash(folder)
            start(cfg, folder)
            assert cat().stdout == SECRET
            res = sh("docker", "exec", pinned, "cat",
                     "/run/secrets/billing/DB_PASSWORD", check=False)
            assert "Transport endpoint is not connected" in res.stderr
        finally:
            sh("docker", "rm", "-f", pinned, check=False)
    finally:
        sh("docker", "rm", "-f", name, check=False)
