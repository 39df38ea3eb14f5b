"""A docker daemon for the tests that prove what docker itself reads.

    docker_cli  -> callable(*args, **kw) running the docker CLI against a
                   daemon: the one DOCKER_HOST (or /var/run/docker.sock)
                   names, else a private dockerd started here (data in a
                   temp folder, no bridge, no iptables) and stopped at the
                   end of the session
    docker_image -> "sfs-busybox:test", made without a registry by
                   `docker import` of a busybox-static root

Skips (fails in CI) when docker cannot run here.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

IN_CI = os.environ.get("CI") == "true"
IMAGE = "sfs-busybox:test"


def _unavailable(reason):
    if IN_CI:
        pytest.fail(f"docker cannot run: {reason}")
    pytest.skip(f"docker cannot run here: {reason}")


def _cli(host):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent",
           "DOCKER_HOST": host, "DOCKER_CONFIG": tempfile.gettempdir()}

    def run(*args, timeout=120, check=True, input=None):
        return subprocess.run(["docker", *args], env=env, capture_output=True,
                              timeout=timeout, check=check, input=input)
    return run


def _ready(run):
    try:
        return run("version", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def docker_cli():
    if shutil.which("docker") is None:
        _unavailable("no docker CLI")
    for host in (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock"):
        if host and _ready(_cli(host)):
            yield _cli(host)
            return
    if shutil.which("dockerd") is None:
        _unavailable("no dockerd (apt-get install docker.io)")
    base = pathlib.Path(tempfile.mkdtemp(prefix="sfs-dockerd-"))
    host = f"unix://{base}/docker.sock"
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
         "-H", host, "--pidfile", str(base / "pid"), "--bridge=none",
         "--iptables=false", "--ip6tables=false",
         "--containerd-namespace", f"sfs{os.getpid()}",
         "--containerd-plugins-namespace", f"sfs{os.getpid()}p"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    run = _cli(host)
    deadline = time.monotonic() + 60
    while not _ready(run) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        if not _ready(run):
            _unavailable("dockerd did not start: "
                         + (base / "dockerd.log").read_text(errors="replace")[-2000:])
        yield run
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", str(base / "root")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_image(docker_cli, tmp_path_factory):
    busybox = shutil.which("busybox")
    if busybox is None:
        _unavailable("no busybox to build an image from (apt-get install busybox-static)")
    if docker_cli("image", "inspect", IMAGE, check=False).returncode == 0:
        return IMAGE
    root = tmp_path_factory.mktemp("busybox-root")
    (root / "bin").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in ("sh", "env", "cat", "sleep", "kill"):
        (root / "bin" / applet).symlink_to("busybox")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                         check=True).stdout
    docker_cli("import", "-", IMAGE, input=tar)
    return IMAGE


def env0(data):
    """`env -0` output -> dict."""
    out = {}
    for item in data.split(b"\0"):
        if item:
            k, _, v = item.decode().partition("=")
            out[k] = v
    return out
