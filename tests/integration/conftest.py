"""Fixtures for the secretfs integration tests: real FUSE mounts.

    mount(apps, store=None, settings=None, args=())  -> sfs.Mount
    store_factory(name="store")                      -> sfs.Store
    secrets                                          the leak-check registry
    users                                            sfs-test-a, sfs-test-b

Each Mount runs `secretfs -f -o config=... -o log=debug MNT`; teardown
always lazy-unmounts and kills, then fails the test on unexpected
error:/warn: lines (declare them with m.expect_log(regex)), sanitizer
reports, or any registered secret in the daemon's stderr.

Outside CI (CI != "true") the tests skip when FUSE cannot be used here;
in CI they fail instead. SECRETFS_BIN overrides the binary.
"""

import os
import pwd
import shutil
import signal
import subprocess
import threading

import pytest

import sfs

DEFAULT_TIMEOUT_S = 60
IN_CI = os.environ.get("CI") == "true"


def pytest_configure(config):
    # the daemon refuses configs writable by group or others: whatever the
    # caller's umask, the files tests write are 0644
    os.umask(0o022)
    config.addinivalue_line(
        "markers", "timeout_s(n): per-test time limit in seconds "
        f"(default {DEFAULT_TIMEOUT_S})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a test never skips itself: what it needs is installed by
    scripts/deps, so a skip there is a failure (an expected failure, xfail,
    stays what it is)."""
    outcome = yield
    rep = outcome.get_result()
    if IN_CI and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped in CI: {rep.longrepr}"


def not_runnable(reason):
    if IN_CI:
        pytest.fail(f"cannot run integration tests in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def secretfs_bin():
    if not os.access(sfs.BIN, os.X_OK):
        not_runnable(f"{sfs.BIN} is not built")
    return sfs.BIN


@pytest.fixture(scope="session")
def fuse_ready(secretfs_bin):
    if os.geteuid() != 0:
        not_runnable("integration tests need root (mounts, test users)")
    if not os.path.exists("/dev/fuse"):
        not_runnable("/dev/fuse is missing")
    if shutil.which("fusermount3") is None:
        not_runnable("fusermount3 is missing (apt-get install fuse3)")
    return secretfs_bin


@pytest.fixture(autouse=True)
def time_limit(request):
    """No test hangs forever: SIGALRM fails it, and a watchdog kills the
    daemons first so a syscall blocked on a hung mount returns."""
    marker = request.node.get_closest_marker("timeout_s")
    limit = int(marker.args[0]) if marker else DEFAULT_TIMEOUT_S

    def on_alarm(signum, frame):
        sfs.kill_all_daemons()
        pytest.fail(f"test timed out after {limit} s", pytrace=False)

    watchdog = threading.Timer(limit + 1, sfs.kill_all_daemons)
    watchdog.daemon = True
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    watchdog.start()
    try:
        yield
    finally:
        signal.alarm(0)
        watchdog.cancel()
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def secrets():
    return sfs.Secrets()


@pytest.fixture
def store_factory(tmp_path, secrets):
    def make(name="store"):
        return sfs.Store(tmp_path / name, secrets)
    return make


@pytest.fixture
def store(store_factory):
    return store_factory()


@pytest.fixture
def mount(fuse_ready, tmp_path, store, secrets):
    """Factory: mount(apps, store=None, settings=None, args=(), config=None,
    asan_extra="").

    apps = {name: {option: value}}; config (full INI text) overrides the
    generated one; asan_extra is added to the daemon's ASAN_OPTIONS.
    Several mounts per test are allowed."""
    mounts = []

    def start(apps=None, store=store, settings=None, args=(), config=None,
              asan_extra=""):
        if config is None:
            config = sfs.config_text(store.dir, apps or {}, settings)
        m = sfs.Mount(tmp_path / f"mount{len(mounts)}", store, config,
                      args=args, secrets=secrets, asan_extra=asan_extra)
        mounts.append(m)
        return m

    yield start

    problems = []
    for m in mounts:
        try:
            m.stop()
        except Exception as e:  # keep stopping the others
            problems.append(f"{m.path}: teardown failed: {e!r}")
    for m in mounts:
        probs = m.problems()
        if probs:
            problems.append(f"daemon on {m.path} (pid {m.pid}):\n"
                            + "\n".join(probs))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def ensure_user(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--user-group", "--shell", "/usr/sbin/nologin",
                        name], check=True, timeout=30,
                       stdin=subprocess.DEVNULL)
        return pwd.getpwnam(name)


@pytest.fixture(scope="session")
def users(fuse_ready):
    """Two unprivileged test users: {"a": pwent, "b": pwent}."""
    if shutil.which("useradd") is None:
        not_runnable("useradd is missing (apt-get install passwd)")
    return {"a": ensure_user("sfs-test-a"), "b": ensure_user("sfs-test-b")}
