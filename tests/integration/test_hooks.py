"""Change hooks through a real mount: a rotation in the store reaches a
running service through on_change within refresh + on_change_delay,
whether or not anyone reads the files; so does a write through the mount.
The service is a small shell script that writes its pid and counts its
starts and SIGHUPs, re-reading its secret each time."""

import os
import signal
import subprocess
import time

import pytest

import sfs

REFRESH_S = 1.0
DELAY_S = 0.5
SLACK_S = 2.5   # a loaded machine: fetch, fork, the service's own loop

SERVICE = r'''#!/bin/sh
# a test service: pid file, start count, SIGHUP count, the secret it read
d="$1"; secret="$2"
echo $$ > "$d/pid"
echo $(( $(cat "$d/starts" 2>/dev/null || echo 0) + 1 )) > "$d/starts"
cat "$secret" > "$d/seen"
trap 'echo $(( $(cat "$d/hups" 2>/dev/null || echo 0) + 1 )) > "$d/hups"; cat "$secret" > "$d/seen"' HUP
trap 'exit 0' TERM
while :; do sleep 0.05; done
'''

RESTART = r'''#!/bin/sh
# what systemctl try-reload-or-restart does for a unit, for the test service
d="$1"
kill "$(cat "$d/pid")" 2>/dev/null
while kill -0 "$(cat "$d/pid")" 2>/dev/null; do sleep 0.05; done
setsid "$d/service.sh" "$d" "$(cat "$d/secret_path")" </dev/null >/dev/null 2>&1 &
'''


def wait_for(pred, limit_s):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def read_or(path, default=""):
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return default


@pytest.fixture
def service_dir(tmp_path):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "service.sh").write_text(SERVICE)
    (d / "service.sh").chmod(0o755)
    (d / "restart.sh").write_text(RESTART)
    (d / "restart.sh").chmod(0o755)
    yield d
    pid = read_or(d / "pid")
    if pid:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_service(d, secret):
    # detached, as a service manager starts it (not our child: no zombie)
    subprocess.run(["sh", "-c", 'setsid "$0" "$1" "$2" </dev/null >/dev/null 2>&1 &',
                    str(d / "service.sh"), str(d), str(secret)], check=True, timeout=10)
    assert wait_for(lambda: read_or(d / "seen") != "", 10)


@pytest.mark.timeout_s(60)
def test_rotation_sends_sighup_via_sh_c(mount, store, service_dir):
    d = service_dir
    store.put("team/billing", {"DB_PASSWORD": "first-hook-pw", "OTHER": "o"})
    m = mount({"billing": {
        "store": "local://team/billing", "refresh": f"{int(REFRESH_S * 1000)}ms",
        "on_change": f"sh -c 'kill -HUP \"$(cat {d}/pid)\"'",
        "on_change_delay": f"{int(DELAY_S * 1000)}ms"}})
    start_service(d, m.app("billing") / "DB_PASSWORD")
    assert read_or(d / "seen") == "first-hook-pw"
    time.sleep(REFRESH_S * 1.5)   # the hook's first sight
    assert read_or(d / "hups") == ""
    t0 = time.monotonic()
    store.put("team/billing", {"DB_PASSWORD": "second-hook-pw", "OTHER": "o"})
    # nobody reads the mount: the hook's own revalidation finds the change
    assert wait_for(lambda: read_or(d / "hups") == "1", REFRESH_S + DELAY_S + SLACK_S)
    assert time.monotonic() - t0 >= DELAY_S
    assert wait_for(lambda: read_or(d / "seen") == "second-hook-pw", 5)
    # one run per change, never a value in the log
    time.sleep(REFRESH_S * 2)
    assert read_or(d / "hups") == "1"
    log = m.stderr_text()
    assert "on_change exited 0" in log and "for DB_PASSWORD" in log
    assert "second-hook-pw" not in log


@pytest.mark.timeout_s(60)
def test_rotation_restarts_a_service(mount, store, service_dir):
    d = service_dir
    store.put("team/web", {"API_KEY": "key-one"})
    m = mount({"web": {
        "store": "local://team/web", "refresh": f"{int(REFRESH_S * 1000)}ms",
        "on_change": f"{d}/restart.sh {d}",
        "on_change_delay": f"{int(DELAY_S * 1000)}ms"}})
    (d / "secret_path").write_text(str(m.app("web") / "API_KEY"))
    start_service(d, m.app("web") / "API_KEY")
    assert read_or(d / "starts") == "1"
    time.sleep(REFRESH_S * 1.5)
    store.put("team/web", {"API_KEY": "key-two"})
    assert wait_for(lambda: read_or(d / "starts") == "2", REFRESH_S + DELAY_S + SLACK_S), \
        m.stderr_text()[-3000:]
    assert wait_for(lambda: read_or(d / "seen") == "key-two", 5)


@pytest.mark.timeout_s(60)
def test_write_through_the_mount_runs_the_hook(mount, store, tmp_path):
    out = tmp_path / "hook.out"
    store.put("team/w", {"A": "1"})
    m = mount({"w": {
        "store": "local://team/w", "mode": "0600", "refresh": "1h",
        "on_change": f"sh -c 'echo \"$SECRETFS_APP $SECRETFS_CHANGED\" >> {out}'",
        "on_change_delay": "200ms"}})
    time.sleep(0.5)
    sfs.write_file(m.app("w") / "B", b"new-value-b")
    assert wait_for(lambda: read_or(out) == "w B", 5)


@pytest.mark.timeout_s(60)
def test_reload_replaces_the_hooks(mount, store, tmp_path):
    """SIGHUP: the hooks of the new configuration run, not the old ones."""
    import re
    out = tmp_path / "hook.out"
    store.put("team/r", {"A": "1"})
    apps = {"r": {"store": "local://team/r", "mode": "0600", "refresh": "1h",
                  "on_change": f"sh -c 'echo old >> {out}'",
                  "on_change_delay": "200ms"}}
    m = mount(apps)
    time.sleep(0.5)
    sfs.write_file(m.app("r") / "B", b"reload-hook-b1")
    assert wait_for(lambda: read_or(out) == "old", 5)
    apps["r"]["on_change"] = f"sh -c 'echo new >> {out}'"
    m.config_path.write_text(sfs.config_text(store.dir, apps))
    before = len(m.stderr_text())
    os.kill(m.pid, signal.SIGHUP)
    assert wait_for(lambda: re.search(r"^secretfs: info: reloaded ",
                                      m.stderr_text()[before:], re.M), 10)
    sfs.write_file(m.app("r") / "B", b"reload-hook-b2")
    assert wait_for(lambda: read_or(out).split() == ["old", "new"], 5), read_or(out)
