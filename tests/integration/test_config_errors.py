"""A bad configuration refuses to start: exit 1, FILE:LINE: on stderr."""

import os
import shutil
import subprocess

import pytest

import sfs


def lines_of(store_dir, *app_lines):
    """A valid config whose [app billing] section ends with app_lines;
    returns (text, line number of the first app line)."""
    lines = [
        "# secretfs test config",         # 1
        "[secretfs]",                      # 2
        "ttl = 5m",                        # 3
        "",                                # 4
        "[provider local]",                # 5
        "type = file",                     # 6
        f"directory = {store_dir}",        # 7
        "",                                # 8
        "[app billing]",                   # 9
        "store = local://team/billing",    # 10
    ]
    first = len(lines) + 1
    return "\n".join(lines + list(app_lines)) + "\n", first


def run_daemon(config_path, mnt, foreground=True):
    argv = [str(sfs.BIN)] + (["-f"] if foreground else []) + \
        ["-o", f"config={config_path}", str(mnt)]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=20, env=sfs.daemon_env())


def mountpoint(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    return mnt


def refused(tmp_path, text, where, files=None, foreground=True):
    """Write text (and {relpath: text} files) and check the refusal names
    where = (path, line)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = etc / "secretfs.conf"
    cfg.write_text(text)
    for rel, body in (files or {}).items():
        (etc / rel).parent.mkdir(parents=True, exist_ok=True)
        (etc / rel).write_text(body)
    mnt = mountpoint(tmp_path)
    try:
        res = run_daemon(cfg, mnt, foreground)
    finally:
        if os.path.ismount(mnt):
            sfs.fusermount_u(mnt)
    path, line = where
    path = str(etc / path)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert f"{path}:{line}:" in res.stderr, res.stderr
    assert not sfs.SANITIZER.search(res.stderr), res.stderr
    return res


@pytest.fixture
def store_dir(store):
    store.put("team/billing", {"DB_PASSWORD": "config-db-pw"})
    return store.dir


def test_syntax_error(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "mode = 0400", "this line has no equals")
    refused(tmp_path, text, ("secretfs.conf", first + 1))


def test_unknown_key(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "colour = blue")
    refused(tmp_path, text, ("secretfs.conf", first))


def test_unknown_key_in_main_section(fuse_ready, tmp_path, store_dir):
    text, _ = lines_of(store_dir)
    text = text.replace("ttl = 5m\n", "ttl = 5m\nfrobnicate = yes\n")
    refused(tmp_path, text, ("secretfs.conf", 4))


def test_unknown_provider_in_reference(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "mode = 0400",
                           "env.X = nosuch://team/x#X")
    refused(tmp_path, text, ("secretfs.conf", first + 1))


def test_bad_reference(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "env.X = not a reference")
    refused(tmp_path, text, ("secretfs.conf", first))


def test_bad_generate_spec(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "env.X = generate:rainbows:12")
    refused(tmp_path, text, ("secretfs.conf", first))


def test_bad_owner(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "owner = no-such-user-sfs")
    refused(tmp_path, text, ("secretfs.conf", first))


def test_bad_mode(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "mode = 0999")
    refused(tmp_path, text, ("secretfs.conf", first))


def test_bad_duration(fuse_ready, tmp_path, store_dir):
    text, _ = lines_of(store_dir)
    text = text.replace("ttl = 5m", "ttl = soon")
    refused(tmp_path, text, ("secretfs.conf", 3))


def test_unknown_provider_type(fuse_ready, tmp_path, store_dir):
    text, _ = lines_of(store_dir)
    text = text.replace("type = file", "type = carrier-pigeon")
    refused(tmp_path, text, ("secretfs.conf", 6))


def test_unknown_section(fuse_ready, tmp_path, store_dir):
    text, first = lines_of(store_dir, "", "[bogus section]", "a = b")
    refused(tmp_path, text, ("secretfs.conf", first + 1))


def test_duplicate_app_across_dropin(fuse_ready, tmp_path, store_dir):
    text, _ = lines_of(store_dir)
    dropin = ("# a drop-in that clashes with the main file\n"
              "[app billing]\n"
              "store = local://team/billing\n")
    refused(tmp_path, text, ("conf.d/10-x.conf", 2),
            files={"conf.d/10-x.conf": dropin})


def test_error_in_dropin_names_dropin(fuse_ready, tmp_path, store_dir):
    text, _ = lines_of(store_dir)
    dropin = "[app web]\nstore = local://team/web\nowner = no-such-user-sfs\n"
    refused(tmp_path, text, ("conf.d/20-web.conf", 3),
            files={"conf.d/10-ok.conf": "# nothing\n",
                   "conf.d/20-web.conf": dropin})


def test_refused_without_foreground(fuse_ready, tmp_path, store_dir):
    # the daemonizing parent must still report the error and exit 1
    text, first = lines_of(store_dir, "colour = blue")
    refused(tmp_path, text, ("secretfs.conf", first), foreground=False)


def test_missing_config_file(fuse_ready, tmp_path):
    mnt = mountpoint(tmp_path)
    res = run_daemon(tmp_path / "nope.conf", mnt)
    assert res.returncode == 1
    assert str(tmp_path / "nope.conf") in res.stderr
    assert not os.path.ismount(mnt)


def test_missing_mountpoint(fuse_ready, tmp_path, store_dir):
    text, _ = lines_of(store_dir)
    cfg = tmp_path / "secretfs.conf"
    cfg.write_text(text)
    for fg in (True, False):
        res = run_daemon(cfg, tmp_path / "no-such-dir", foreground=fg)
        assert res.returncode == 1, (fg, res.returncode, res.stderr)
        assert res.stderr.strip(), "no reason on stderr"


# ------------------------------------------------ who may write the config

def untrusted(tmp_path, store_dir, change, named, fix, files=None,
              app_lines=()):
    """Write a valid config (its [app billing] ending with app_lines, and
    files), let change(etc) weaken it, and check the daemon refuses to
    start, naming the file `named` (relative to etc) and the command `fix`
    that makes it safe."""
    text, _ = lines_of(store_dir, *app_lines)
    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = etc / "secretfs.conf"
    cfg.write_text(text)
    for rel, body in (files or {}).items():
        (etc / rel).parent.mkdir(parents=True, exist_ok=True)
        (etc / rel).write_text(body)
    change(etc)
    mnt = mountpoint(tmp_path)
    try:
        # not in the foreground: a daemon that took it returns, mounted
        res = run_daemon(cfg, mnt, foreground=False)
    finally:
        if os.path.ismount(mnt):
            sfs.fusermount_u(mnt)
    path = str(etc / named)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert f"{path}: " in res.stderr, res.stderr
    assert f"{fix} {path}" in res.stderr, res.stderr
    assert not sfs.SANITIZER.search(res.stderr), res.stderr
    return res


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664])
def test_config_writable_by_others_refused(fuse_ready, tmp_path, store_dir,
                                           mode):
    res = untrusted(tmp_path, store_dir,
                    lambda etc: (etc / "secretfs.conf").chmod(mode),
                    "secretfs.conf", "chmod go-w")
    assert f"(mode {mode:04o})" in res.stderr


def test_config_owned_by_another_user_refused(fuse_ready, tmp_path, store_dir,
                                              users):
    uid = users["a"].pw_uid
    res = untrusted(tmp_path, store_dir,
                    lambda etc: os.chown(etc / "secretfs.conf", uid, -1),
                    "secretfs.conf", "chown root")
    assert f"owned by uid {uid}" in res.stderr


WEB = "[app web]\nstore = local://team/web\n"


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_confd_writable_by_others_refused(fuse_ready, tmp_path, store_dir,
                                          mode):
    # even sticky: anyone could add a drop-in of their own
    def weaken(etc):
        (etc / "conf.d").chmod(mode)
        (etc / "conf.d/10-web.conf").chmod(0o666)
    untrusted(tmp_path, store_dir, weaken, "conf.d", "chmod go-w",
              files={"conf.d/10-web.conf": WEB})


def test_dropin_writable_by_others_refused(fuse_ready, tmp_path, store_dir):
    untrusted(tmp_path, store_dir,
              lambda etc: (etc / "conf.d/20-web.conf").chmod(0o666),
              "conf.d/20-web.conf", "chmod go-w",
              files={"conf.d/10-ok.conf": "# nothing\n",
                     "conf.d/20-web.conf": WEB})


def test_dropin_owned_by_another_user_refused(fuse_ready, tmp_path, store_dir,
                                             users):
    uid = users["b"].pw_uid
    untrusted(tmp_path, store_dir,
              lambda etc: os.chown(etc / "conf.d/20-web.conf", uid, -1),
              "conf.d/20-web.conf", "chown root",
              files={"conf.d/20-web.conf": WEB})


TPL = {"db.tpl": "password: {{ DB_PASSWORD | yaml }}\n"}


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_template_writable_by_others_refused(fuse_ready, tmp_path, store_dir,
                                             mode):
    # whoever may write it could put any secret the daemon fetches into a
    # file the app's readers see: {{ local://team/anyone#KEY }}
    res = untrusted(tmp_path, store_dir,
                    lambda etc: (etc / "db.tpl").chmod(mode),
                    "db.tpl", "chmod go-w", files=TPL,
                    app_lines=["file.db.yaml = db.tpl"])
    tpl = tmp_path / "etc" / "db.tpl"
    assert (f"secretfs.conf:11: file.db.yaml: template {tpl}: writable by "
            f"group or others (mode {mode:04o})") in res.stderr, res.stderr


def test_template_owned_by_another_user_refused(fuse_ready, tmp_path,
                                                store_dir, users):
    uid = users["a"].pw_uid
    res = untrusted(tmp_path, store_dir,
                    lambda etc: os.chown(etc / "db.tpl", uid, -1),
                    "db.tpl", "chown root", files=TPL,
                    app_lines=["file.db.yaml = db.tpl"])
    assert f"owned by uid {uid}" in res.stderr, res.stderr


HOOK = {"bin/reload.sh": "#!/bin/sh\nexit 0\n"}


def hook_refused(tmp_path, store_dir, change, named, fix, command="{}",
                 user=None):
    """A config whose on_change runs etc/bin/reload.sh (command: the
    on_change text, {} standing for its path), weakened by change(etc)."""
    script = tmp_path / "etc" / "bin" / "reload.sh"
    lines = [f"on_change = {command.format(script)}"]
    lines += [f"on_change_user = {user}"] if user else []

    def weaken(etc):
        script.chmod(0o755)
        change(etc)
    return untrusted(tmp_path, store_dir, weaken, named, fix, files=HOOK,
                     app_lines=lines)


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_hook_program_writable_by_others_refused(fuse_ready, tmp_path,
                                                 store_dir, mode):
    # it runs as root: whoever may write it runs anything as root
    res = hook_refused(tmp_path, store_dir,
                       lambda etc: (etc / "bin/reload.sh").chmod(mode),
                       "bin/reload.sh", "chmod go-w")
    script = tmp_path / "etc" / "bin" / "reload.sh"
    assert (f"secretfs.conf:11: on_change: program {script}: {script}: "
            f"writable by group or others (mode {mode:04o}), so they could "
            f"run any command as root") in res.stderr, res.stderr


def test_hook_program_owned_by_another_user_refused(fuse_ready, tmp_path,
                                                    store_dir, users):
    uid = users["a"].pw_uid
    res = hook_refused(tmp_path, store_dir,
                       lambda etc: os.chown(etc / "bin/reload.sh", uid, -1),
                       "bin/reload.sh", "chown root")
    assert f"owned by uid {uid}" in res.stderr, res.stderr
    # nor when it runs as someone else than its owner
    shutil.rmtree(tmp_path / "etc")
    shutil.rmtree(tmp_path / "mnt")
    res = hook_refused(tmp_path, store_dir,
                       lambda etc: os.chown(etc / "bin/reload.sh", uid, -1),
                       "bin/reload.sh", "chown root", user=users["b"].pw_name)
    assert f"run any command as uid {users['b'].pw_uid}" in res.stderr


def test_hook_folder_writable_by_others_refused(fuse_ready, tmp_path,
                                                store_dir):
    # anyone may put another program in its place
    hook_refused(tmp_path, store_dir, lambda etc: (etc / "bin").chmod(0o777),
                 "bin", "chmod go-w")


def test_hook_run_by_sh_c_checked(fuse_ready, tmp_path, store_dir):
    # sh is trusted; what the script runs first, by an absolute path, too
    res = hook_refused(tmp_path, store_dir,
                       lambda etc: (etc / "bin/reload.sh").chmod(0o777),
                       "bin/reload.sh", "chmod go-w",
                       command="sh -c '{} \"$SECRETFS_APP\"'")
    assert "on_change: program " in res.stderr
    assert "(run by sh -c)" in res.stderr, res.stderr


def test_world_writable_app_mode_warns(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "S3cr3t-mode-9f2c"})
    m = mount({"billing": {"store": "local://team/billing", "mode": "0666"},
               "safe": {"store": "local://team/billing", "mode": "0640"}})
    m.expect_log(r"^secretfs: warn: .*secretfs\.conf:\d+: app billing: "
                 r"mode 0666 lets every user write its secrets$")
    assert sfs.read_text(m.app("billing") / "DB_PASSWORD") == "S3cr3t-mode-9f2c"
    warns = [l for l in m.stderr_text().splitlines() if "warn:" in l]
    assert len(warns) == 1 and "app billing" in warns[0], warns


def test_duration_above_a_year_refused(fuse_ready, tmp_path, store_dir):
    # used to be taken, and overflowed in the cache's arithmetic
    text, first = lines_of(store_dir, "refresh = 9223372036854775807ms")
    res = refused(tmp_path, text, ("secretfs.conf", first), foreground=False)
    assert "more than the maximum, 365d" in res.stderr
    text, _ = lines_of(store_dir)
    text = text.replace("ttl = 5m", "ttl = 366d")
    (tmp_path / "b").mkdir()
    res = refused(tmp_path / "b", text, ("secretfs.conf", 3), foreground=False)
    assert "ttl: bad duration '366d': more than the maximum, 365d" in res.stderr
