"""Installing secretfs: the systemd unit (systemd-analyze verify), meson
install (never over an existing configuration), and the Debian package
built from packaging/debian, installed, run (including mount -t
fuse.secretfs through mount.fuse3) and purged."""

import fcntl
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

import sfs

UNIT_IN = sfs.REPO / "packaging" / "secretfs.service.in"
IN_CI = os.environ.get("CI") == "true"

# Each gives the service its own mount namespace, in which systemd makes /
# a slave: the FUSE mount would never reach the host (see the unit).
NAMESPACING = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
               "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
               "ProtectKernelTunables", "ProtectKernelModules",
               "ProtectKernelLogs", "ProtectControlGroups", "ProtectHostname",
               "ProtectProc", "PrivateMounts", "TemporaryFileSystem",
               "BindPaths", "RootDirectory", "MountFlags")


def need(tool):
    if shutil.which(tool) is None:
        if IN_CI:
            pytest.fail(f"{tool} is missing (scripts/deps installs it)")
        pytest.skip(f"{tool} is missing (scripts/deps installs it)")


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def service_lines(text):
    """[Service] lines: (comment block right above or None, key, value)."""
    out, section, comment = [], None, None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            section, comment = s, None
        elif s.startswith("#"):
            comment = (comment or "") + s
        elif not s:
            comment = None
        elif section == "[Service]":
            key, _, value = s.partition("=")
            out.append((comment, key, value))
    return out


def test_unit_verifies_and_says_why(tmp_path, secretfs_bin):
    need("systemd-analyze")
    unit = tmp_path / "secretfs.service"
    unit.write_text(UNIT_IN.read_text().replace(
        "@sbindir@", str(pathlib.Path(secretfs_bin).parent)))
    res = run(["systemd-analyze", "verify", "--man=no", str(unit)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout + res.stderr == "", "systemd-analyze warned"
    lines = service_lines(unit.read_text())
    keys = {k: v for _, k, v in lines}
    assert keys["Type"] == "notify"
    assert keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert " -f " in keys["ExecStart"]
    assert keys["CapabilityBoundingSet"] == "CAP_SYS_ADMIN"
    assert keys["LimitCORE"] == "0"
    for key in ("NoNewPrivileges", "MemoryDenyWriteExecute"):
        assert keys[key] == "yes"
    # every setting is justified by a comment block it belongs to
    for comment, key, _ in lines:
        assert comment, f"{key}= has no comment saying why"
    for key in NAMESPACING:
        assert key not in keys, f"{key}= would hide the mount from the host"


def test_meson_install_keeps_an_existing_config(tmp_path, secretfs_bin):
    build = pathlib.Path(secretfs_bin).parent
    if not (build / "meson-private").is_dir():
        pytest.skip(f"{build} is not a meson build directory")
    dest = tmp_path / "root"

    def install():
        res = run(["meson", "install", "-C", str(build), "--no-rebuild",
                   "--destdir", str(dest)], timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout + res.stderr

    install()
    prefix = run(["meson", "introspect", "--buildoptions", str(build)])
    prefix = re.search(r'"name": "prefix", "value": "([^"]+)"', prefix.stdout)
    root = dest / prefix.group(1).lstrip("/")
    assert os.access(root / "sbin" / "secretfs", os.X_OK)
    assert (root / "share/man/man8/secretfs.8").is_file()
    assert (root / "share/man/man5/secretfs.conf.5").is_file()
    unit = (root / "lib/systemd/system/secretfs.service").read_text()
    assert f"ExecStart={prefix.group(1)}/sbin/secretfs -f " in unit
    conf = dest / "etc/secretfs/secretfs.conf"
    # the example passes check as it is
    res = run([str(secretfs_bin), "check", str(conf)])
    assert res.returncode == 0, res.stderr
    conf.write_text("# the administrator's\n")
    install()
    assert conf.read_text() == "# the administrator's\n"


def dpkg_status(pkg):
    res = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg])
    return res.stdout.strip() if res.returncode == 0 else ""


def copy_tree(dst):
    """The source tree without build output, with packaging/debian as
    debian/, the way a source package would have it."""
    shutil.copytree(sfs.REPO, dst, ignore=shutil.ignore_patterns(
        "build*", "obj-*", ".git", "node_modules", "__pycache__", "debian"))
    shutil.copytree(sfs.REPO / "packaging" / "debian", dst / "debian")


def daemon_of(conf):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(conf).encode() in argv:
            return int(pid)
    return None


def mount_through_helper(tmp_path, store):
    """mount -t fuse.secretfs CONFIG DIR: mount(8) runs mount.fuse ->
    mount.fuse3, which runs the installed secretfs from a standard PATH."""
    store.put("team/pkg", {"K": "package-mount-value"})
    conf = tmp_path / "pkg.conf"
    conf.write_text(sfs.config_text(store.dir, {"pkg": {"store": "local://team/pkg"}}))
    mnt = sfs.make_mountpoint()
    try:
        res = run(["mount", "-t", "fuse.secretfs", str(conf), str(mnt)],
                  env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert res.returncode == 0, res.stdout + res.stderr
        assert sfs.read_text(mnt / "pkg" / "K") == "package-mount-value"
        pid = daemon_of(conf)
        assert pid and os.readlink(f"/proc/{pid}/exe") == "/usr/sbin/secretfs"
    finally:
        sfs.fusermount_u(mnt)
        deadline = time.monotonic() + 5
        while daemon_of(conf) and time.monotonic() < deadline:
            time.sleep(0.05)
        sfs.remove_mountpoint(mnt)
    assert daemon_of(conf) is None


PACKAGE_FILES = ["/usr/sbin/secretfs", "/lib/systemd/system/secretfs.service",
                 "/etc/secretfs/secretfs.conf",
                 "/usr/share/man/man8/secretfs.8.gz",
                 "/usr/share/man/man5/secretfs.conf.5.gz"]


@pytest.fixture
def machine_lock():
    """One package test per machine at a time: it installs system-wide,
    and test runs of other worktrees may share the machine."""
    with open("/tmp/secretfs-package-test.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@pytest.mark.timeout_s(600)
def test_debian_package_builds_installs_and_purges(fuse_ready, machine_lock,
                                                   tmp_path, store):
    for tool in ("dpkg-buildpackage", "dh", "systemd-analyze"):
        need(tool)
    if dpkg_status("secretfs") or os.path.exists("/etc/secretfs"):
        pytest.skip("secretfs is installed or /etc/secretfs exists here: "
                    "not touching an administrator's setup")
    src = tmp_path / "src"
    copy_tree(src)
    res = run(["dpkg-buildpackage", "-us", "-uc", "-b"], timeout=420, cwd=src,
              env={**os.environ, "DEB_BUILD_OPTIONS": "parallel=2"})
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    deb = tmp_path / "secretfs_0.1.0_amd64.deb"
    if not deb.exists():
        deb = next(tmp_path.glob("secretfs_*.deb"))
    try:
        res = run(["dpkg", "-i", str(deb)], timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert dpkg_status("secretfs") == "ii"
        res = run(["/usr/sbin/secretfs", "--version"])
        assert res.returncode == 0 and "secretfs 0.1.0" in res.stdout
        for path in PACKAGE_FILES:
            assert os.path.exists(path), path
        # installed disabled: nothing to mount until apps are configured
        assert not os.path.exists(
            "/etc/systemd/system/multi-user.target.wants/secretfs.service")
        res = run(["systemd-analyze", "verify",
                   "/lib/systemd/system/secretfs.service"])
        assert res.returncode == 0, res.stdout + res.stderr
        res = run(["/usr/sbin/secretfs", "check", "/etc/secretfs/secretfs.conf"])
        assert res.returncode == 0, res.stderr
        mount_through_helper(tmp_path, store)
    finally:
        res = run(["dpkg", "--purge", "secretfs"], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert dpkg_status("secretfs") in ("", "un", "pn")
    for path in PACKAGE_FILES + ["/etc/secretfs"]:
        assert not os.path.exists(path), f"{path} left after purge"
