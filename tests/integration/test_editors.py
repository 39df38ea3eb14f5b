"""Editors and shell tools on a real mount: what each one's save leaves in
the store entry, and the scratch files (swap, backup, temporary) they make
on the way, which live only in the daemon's memory."""

import io
import os
import shutil
import stat
import subprocess
import time

import dotenv
import pytest

import sfs

IN_CI = os.environ.get("CI") == "true"

OLD_DB = "ed-old-db-pw"
OLD_STRIPE = "ed-stripe-key"
SHARED_URL = "postgres://ed/shared"

# Names vim, nano, sed -i and Python's tempfile use, one of each kind.
SCRATCH_NAMES = [".env.swp", ".DB_PASSWORD.swp", "DB_PASSWORD~", ".env~",
                 "4913", "#DB_PASSWORD#", "sedAb12Cd", "tmpab12cd_3"]


def need(tool):
    """The editor must be installed (scripts/deps does it): CI fails
    without it, a developer's machine skips."""
    if shutil.which(tool) is None:
        reason = f"{tool} is not installed (scripts/deps installs it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


def entry(store, locator="team/billing"):
    """The store entry as a dict, read by the dialect's parser and checked
    against python-dotenv, as a program loading the file would see it."""
    text = store.raw(locator).decode()
    got = sfs.parse(text)
    assert dict(dotenv.dotenv_values(stream=io.StringIO(text))) == got
    return got


def store_files(store):
    """Every file under the store folder, relative: temporary files of a
    failed or stray write would show here."""
    return sorted(str(p.relative_to(store.dir)) for p in store.dir.rglob("*")
                  if p.is_file())


def run(argv, cwd=None, **kw):
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL, **kw)
    assert res.returncode == 0, \
        f"{argv} exited {res.returncode}: {res.stderr.strip()}"
    return res


def sh(script, cwd, *args):
    """Run a shell command line in the app folder."""
    return run(["sh", "-c", script, "sh", *args], cwd=cwd)


def sh_fails(script, cwd, *args):
    res = subprocess.run(["sh", "-c", script, "sh", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert res.returncode != 0, f"{script!r} succeeded"
    return res.stderr


def vim(path, *commands, user=None):
    """vim in silent Ex mode, as `vim FILE`, an edit and :wq; as root, or
    as user (a pwd entry).

    'backupskip' is emptied because it skips /tmp/*, where the test mounts
    live: on /run/secrets vim backs files up, so the tests must too.
    -i NONE keeps root's viminfo out of it."""
    need("vim")
    argv = ["vim", "-Es", "-u", "NONE", "-i", "NONE", "-c", "set backupskip="]
    for c in commands:
        argv += ["-c", c]
    as_user = {} if user is None else {
        "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    run(argv + ["-c", "wq", str(path)], cwd=path.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent",
             "LANG": "C.UTF-8"}, **as_user)


class Billing:
    """An app with store keys, a mapped key (another entry) and a generated
    one, mode 0600 so editors may write."""

    def __init__(self, m, store, gen):
        self.m = m
        self.store = store
        self.dir = m.app("billing")
        self.gen = gen

    def path(self, name):
        return self.dir / name

    def names(self):
        return sorted(os.listdir(self.dir))

    def stored(self, **changes):
        """The store entry as set up, with changes (None removes a key)."""
        out = {"DB_PASSWORD": OLD_DB, "STRIPE_KEY": OLD_STRIPE,
               "SECRET_KEY": self.gen}
        for k, v in changes.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
        return out

    def served_env(self, **changes):
        return sfs.render({**self.stored(**changes), "DATABASE_URL": SHARED_URL})


BILLING_APPS = {"billing": {
    "store": "local://team/billing", "mode": "0600",
    "env.DATABASE_URL": "local://team/shared#DATABASE_URL",
    "env.SECRET_KEY": "generate:hex:16",
}}
BASE_NAMES = [".env", "DATABASE_URL", "DB_PASSWORD", "SECRET_KEY", "STRIPE_KEY"]


@pytest.fixture
def billing(mount, store, secrets):
    store.put("team/billing", {"DB_PASSWORD": OLD_DB, "STRIPE_KEY": OLD_STRIPE})
    store.put("team/shared", {"DATABASE_URL": SHARED_URL})
    m = mount(BILLING_APPS)
    # the generated key is made (and stored) on first read
    gen = secrets.add(sfs.read_text(m.app("billing") / "SECRET_KEY"))
    b = Billing(m, store, gen)
    assert entry(store) == b.stored()
    assert b.names() == BASE_NAMES
    return b


def assert_shared_untouched(b):
    assert b.store.raw("team/shared") == f"DATABASE_URL='{SHARED_URL}'\n".encode()


# ---------------------------------------------------------------- shell

def test_echo_to_key_keeps_the_newline(billing, secrets):
    secrets.add("ed-echo-db-pw")
    sh("echo ed-echo-db-pw > DB_PASSWORD", billing.dir)
    assert entry(billing.store) == billing.stored(DB_PASSWORD="ed-echo-db-pw\n")
    assert sfs.read(billing.path("DB_PASSWORD")) == b"ed-echo-db-pw\n"
    assert os.stat(billing.path("DB_PASSWORD")).st_size == 14


def test_printf_to_key_is_byte_exact(billing, secrets):
    secrets.add("ed-printf-db-pw")
    sh("printf %s ed-printf-db-pw > DB_PASSWORD", billing.dir)
    assert entry(billing.store) == billing.stored(DB_PASSWORD="ed-printf-db-pw")
    assert sfs.read(billing.path("DB_PASSWORD")) == b"ed-printf-db-pw"


@pytest.mark.parametrize("script", [
    "printf 'DB_PASSWORD=ed-shell-db-pw\\nNEW_KEY=ed-shell-new\\n' > .env",
    "echo 'DB_PASSWORD=ed-shell-db-pw\nNEW_KEY=ed-shell-new' > .env",
], ids=["printf", "echo"])
def test_shell_redirect_to_env(billing, secrets, script):
    secrets.add("ed-shell-db-pw")
    secrets.add("ed-shell-new")
    sh(script, billing.dir)
    # STRIPE_KEY is left out, so removed; SECRET_KEY is declared, so kept
    assert entry(billing.store) == billing.stored(
        DB_PASSWORD="ed-shell-db-pw", STRIPE_KEY=None, NEW_KEY="ed-shell-new")
    assert billing.names() == [".env", "DATABASE_URL", "DB_PASSWORD",
                               "NEW_KEY", "SECRET_KEY"]
    assert sfs.read(billing.path("NEW_KEY")) == b"ed-shell-new"
    assert sfs.errno_of(sfs.read, billing.path("STRIPE_KEY")) == "ENOENT"
    assert_shared_untouched(billing)


@pytest.mark.parametrize("script,tail", [
    ("printf %s -ed-more >> STRIPE_KEY", "-ed-more"),
    ("echo -ed-more >> STRIPE_KEY", "-ed-more\n"),
], ids=["printf", "echo"])
def test_append_to_key(billing, script, tail):
    sh(script, billing.dir)
    assert entry(billing.store) == billing.stored(STRIPE_KEY=OLD_STRIPE + tail)
    assert sfs.read_text(billing.path("STRIPE_KEY")) == OLD_STRIPE + tail


def test_append_line_to_env_adds_a_key(billing, secrets):
    secrets.add("ed-appended-value")
    sh("echo 'APPENDED=ed-appended-value' >> .env", billing.dir)
    assert entry(billing.store) == billing.stored(APPENDED="ed-appended-value")
    assert sfs.read_text(billing.path(".env")) == \
        billing.served_env(APPENDED="ed-appended-value")
    assert sfs.read(billing.path("APPENDED")) == b"ed-appended-value"
    assert_shared_untouched(billing)


def test_truncate_key_to_empty(billing):
    sh("truncate -s 0 STRIPE_KEY", billing.dir)
    assert entry(billing.store) == billing.stored(STRIPE_KEY="")
    assert sfs.read(billing.path("STRIPE_KEY")) == b""
    assert os.stat(billing.path("STRIPE_KEY")).st_size == 0
    assert billing.names() == BASE_NAMES


def test_truncate_env_keeps_declared_keys(billing):
    sh("truncate -s 0 .env", billing.dir)
    # the app's own keys go; generated and mapped ones are declared in the
    # config and stay
    assert entry(billing.store) == {"SECRET_KEY": billing.gen}
    assert billing.names() == [".env", "DATABASE_URL", "SECRET_KEY"]
    assert sfs.read_text(billing.path(".env")) == sfs.render(
        {"DATABASE_URL": SHARED_URL, "SECRET_KEY": billing.gen})
    assert_shared_untouched(billing)


def test_python_write(billing, secrets):
    secrets.add("ed-python-stripe")
    secrets.add("ed-python-db-pw")
    with open(billing.path("STRIPE_KEY"), "w") as f:
        f.write("ed-python-stripe")
    assert entry(billing.store) == billing.stored(STRIPE_KEY="ed-python-stripe")
    text = sfs.read_text(billing.path(".env")).replace(OLD_DB, "ed-python-db-pw")
    with open(billing.path(".env"), "w") as f:
        f.write(text)
    assert entry(billing.store) == billing.stored(STRIPE_KEY="ed-python-stripe",
                                                  DB_PASSWORD="ed-python-db-pw")
    assert sfs.read_text(billing.path(".env")) == text


def test_cp_over_env(billing, tmp_path, secrets):
    secrets.add("ed-copied-db-pw")
    secrets.add("ed-copied-token")
    other = tmp_path / "other.env"
    other.write_text("# from elsewhere\nexport DB_PASSWORD=ed-copied-db-pw\n"
                     "TOKEN='ed-copied-token'\n"
                     f"DATABASE_URL='{SHARED_URL}'\n")
    run(["cp", str(other), ".env"], cwd=billing.dir)
    assert entry(billing.store) == billing.stored(
        DB_PASSWORD="ed-copied-db-pw", STRIPE_KEY=None, TOKEN="ed-copied-token")
    assert billing.names() == [".env", "DATABASE_URL", "DB_PASSWORD",
                               "SECRET_KEY", "TOKEN"]
    assert_shared_untouched(billing)


def test_sed_in_place_on_env(billing, secrets):
    secrets.add("ed-sed-db-pw")
    run(["sed", "-i", f"s/{OLD_DB}/ed-sed-db-pw/", ".env"], cwd=billing.dir)
    assert entry(billing.store) == billing.stored(DB_PASSWORD="ed-sed-db-pw")
    assert sfs.read_text(billing.path(".env")) == \
        billing.served_env(DB_PASSWORD="ed-sed-db-pw")
    # sed's temporary file went with the rename
    assert billing.names() == BASE_NAMES
    assert_shared_untouched(billing)


def test_sed_in_place_on_key(billing):
    run(["sed", "-i", "s/stripe/sed/", "STRIPE_KEY"], cwd=billing.dir)
    # sed keeps a missing final newline missing
    assert entry(billing.store) == billing.stored(STRIPE_KEY="ed-sed-key")
    assert sfs.read(billing.path("STRIPE_KEY")) == b"ed-sed-key"
    assert billing.names() == BASE_NAMES


def test_printf_to_temp_then_mv_over_env(billing, secrets):
    # "tmp" is a key name: the printf creates key tmp, and mv applies its
    # value as the new .env and drops tmp in the same store update
    secrets.add("ed-mv-db-pw")
    sh("printf 'DB_PASSWORD=ed-mv-db-pw\\n' > tmp && mv tmp .env", billing.dir)
    assert entry(billing.store) == billing.stored(DB_PASSWORD="ed-mv-db-pw",
                                                  STRIPE_KEY=None)
    assert billing.names() == [".env", "DATABASE_URL", "DB_PASSWORD",
                               "SECRET_KEY"]
    assert sfs.read_text(billing.path(".env")) == \
        billing.served_env(DB_PASSWORD="ed-mv-db-pw", STRIPE_KEY=None)
    assert_shared_untouched(billing)


def test_mv_key_to_new_name_copies_and_removes(billing):
    # the rename is EXDEV; mv copies to the new key and removes the old
    run(["mv", "STRIPE_KEY", "PAYMENT_KEY"], cwd=billing.dir)
    assert entry(billing.store) == billing.stored(STRIPE_KEY=None,
                                                  PAYMENT_KEY=OLD_STRIPE)
    assert billing.names() == [".env", "DATABASE_URL", "DB_PASSWORD",
                               "PAYMENT_KEY", "SECRET_KEY"]
    assert sfs.read(billing.path("PAYMENT_KEY")) == OLD_STRIPE.encode()


def test_rename_key_over_key_is_exdev(billing):
    before = billing.store.raw("team/billing")
    assert sfs.errno_of(os.rename, billing.path("STRIPE_KEY"),
                        billing.path("DB_PASSWORD")) == "EXDEV"
    assert billing.store.raw("team/billing") == before
    assert billing.names() == BASE_NAMES


# ---------------------------------------------------------------- vim

# How vim saves, by settings (all write a swap file first):
#   -u NONE (Vi-compatible): backupcopy=yes - copy to .env~, overwrite
#   nocompatible (vim's own default, backupcopy=auto): probe with 4913,
#     rename .env to .env~, write a new .env
#   backupcopy=no plus backup: rename, and keep .env~ after the save
VIM_SAVES = {
    "u-none": [],
    "nocompatible": ["set nocompatible"],
    "backupcopy-yes": ["set backupcopy=yes"],
    "backupcopy-no": ["set backupcopy=no"],
}


@pytest.mark.parametrize("settings", VIM_SAVES.values(), ids=VIM_SAVES.keys())
def test_vim_on_env(billing, secrets, settings):
    secrets.add("ed-vim-db-pw")
    vim(billing.path(".env"), *settings, f"%s/{OLD_DB}/ed-vim-db-pw/")
    assert entry(billing.store) == billing.stored(DB_PASSWORD="ed-vim-db-pw")
    assert sfs.read_text(billing.path(".env")) == \
        billing.served_env(DB_PASSWORD="ed-vim-db-pw")
    # swap file, 4913 probe and backup are gone after the save
    assert billing.names() == BASE_NAMES
    assert store_files(billing.store) == ["team/billing.env", "team/shared.env"]
    assert_shared_untouched(billing)


def test_vim_rename_backup_is_kept_in_memory(billing, secrets):
    secrets.add("ed-vim-bak-db-pw")
    before = sfs.read(billing.path(".env"))
    vim(billing.path(".env"), "set backupcopy=no", "set backup",
        f"%s/{OLD_DB}/ed-vim-bak-db-pw/")
    assert entry(billing.store) == billing.stored(DB_PASSWORD="ed-vim-bak-db-pw")
    # the backup holds the old text, as a scratch file only root reads
    assert billing.names() == sorted(BASE_NAMES + [".env~"])
    assert sfs.read(billing.path(".env~")) == before
    st = os.stat(billing.path(".env~"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode) & ~0o600) == (0, 0)
    assert store_files(billing.store) == ["team/billing.env", "team/shared.env"]


@pytest.mark.parametrize("settings", [["set nocompatible"],
                                      ["set backupcopy=yes"]],
                         ids=["rename", "copy"])
def test_vim_save_keeps_a_change_made_while_it_was_open(billing, secrets,
                                                        settings):
    # vim reads .env, someone sets STRIPE_KEY while vim is open, then vim
    # saves its change to DB_PASSWORD: the .env merge promises that a
    # concurrent change to a different key survives
    secrets.add("ed-vim-while-db")
    secrets.add("ed-set-meanwhile")
    vim(billing.path(".env"), *settings, f"%s/{OLD_DB}/ed-vim-while-db/",
        f"silent !printf ed-set-meanwhile > {billing.path('STRIPE_KEY')}")
    assert entry(billing.store) == billing.stored(
        DB_PASSWORD="ed-vim-while-db", STRIPE_KEY="ed-set-meanwhile")


def test_editors_on_an_app_owned_by_a_user(mount, store, users, secrets):
    # The app belongs to a service user. Root's sed -i and vim cannot give
    # their temporary files to that user (EPERM on chown): they must still
    # save. The user's own vim takes the rename path (its 4913 probe is
    # owned right).
    a = users["a"]
    store.put("team/svc", {"TOKEN": "ed-svc-token-0"})
    m = mount({"svc": {"store": "local://team/svc", "mode": "0600",
                       "owner": "sfs-test-a"}})
    path = m.app("svc") / ".env"
    for i in (1, 2, 3):
        secrets.add(f"ed-svc-token-{i}")
    run(["sed", "-i", "s/token-0/token-1/", str(path)])
    assert entry(store, "team/svc") == {"TOKEN": "ed-svc-token-1"}
    vim(path, "set nocompatible", "s/token-1/token-2/")
    assert entry(store, "team/svc") == {"TOKEN": "ed-svc-token-2"}
    vim(path, "set nocompatible", "s/token-2/token-3/", user=a)
    assert entry(store, "team/svc") == {"TOKEN": "ed-svc-token-3"}
    assert sorted(os.listdir(m.app("svc"))) == [".env", "TOKEN"]
    st = os.stat(path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (a.pw_uid, 0o600)


@pytest.mark.parametrize("fixeol,value", [
    (True, "ed-vim-key\n"), (False, "ed-vim-key"),
], ids=["fixeol", "nofixeol"])
def test_vim_on_key_file(billing, fixeol, value):
    # nocompatible: the rename save, as vim does by default
    cmds = ["set nocompatible"] + ([] if fixeol else ["set nofixeol"])
    vim(billing.path("STRIPE_KEY"), *cmds, "s/stripe/vim/")
    assert entry(billing.store) == billing.stored(STRIPE_KEY=value)
    assert sfs.read_text(billing.path("STRIPE_KEY")) == value
    assert billing.names() == BASE_NAMES


# ---------------------------------------------------------------- nano

class Tmux:
    """A tmux server of our own (own socket), so nothing else is touched."""

    def __init__(self, sock):
        self.sock = sock

    def cmd(self, *args, check=True):
        env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        env.setdefault("TERM", "xterm")
        return subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null",
                               *args], capture_output=True, text=True,
                              timeout=20, check=check, env=env,
                              stdin=subprocess.DEVNULL)

    def screen(self, target):
        return self.cmd("capture-pane", "-p", "-t", target, check=False).stdout

    def wait_for(self, target, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen(target)
            if text in shown:
                return shown
            time.sleep(0.05)
        raise AssertionError(f"tmux never showed {text!r}; screen:\n"
                             f"{self.screen(target)}")

    def alive(self, target):
        return self.cmd("has-session", "-t", target, check=False).returncode == 0

    def kill(self):
        self.cmd("kill-server", check=False)


@pytest.fixture
def tmux():
    need("tmux")
    t = Tmux(f"sfs-it-{os.getpid()}")
    yield t
    t.kill()


def test_nano_appends_a_line_to_env(billing, tmux, secrets):
    need("nano")
    secrets.add("ed-nano-value")
    tmux.cmd("new-session", "-d", "-s", "ed", "-x", "120", "-y", "40",
             f"nano --ignorercfiles {billing.path('.env')}")
    tmux.wait_for("ed", "DB_PASSWORD=")
    tmux.cmd("send-keys", "-t", "ed", "M-/")       # to the last line
    tmux.cmd("send-keys", "-t", "ed", "-l", "NANO_KEY=ed-nano-value")
    tmux.cmd("send-keys", "-t", "ed", "C-o")       # write out...
    tmux.wait_for("ed", "File Name to Write")
    tmux.cmd("send-keys", "-t", "ed", "Enter")     # ...to the same name
    tmux.wait_for("ed", "Wrote")
    tmux.cmd("send-keys", "-t", "ed", "C-x")
    deadline = time.monotonic() + 10
    while tmux.alive("ed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not tmux.alive("ed"), "nano did not exit"
    assert entry(billing.store) == billing.stored(NANO_KEY="ed-nano-value")
    assert sfs.read(billing.path("NANO_KEY")) == b"ed-nano-value"
    assert billing.names() == sorted(BASE_NAMES + ["NANO_KEY"])


# ---------------------------------------------------------------- scratch

def test_scratch_files_never_reach_the_store(billing, secrets):
    before = billing.store.raw("team/billing")
    for i, name in enumerate(SCRATCH_NAMES):
        # dotenv text, so it would parse if it were ever applied
        text = secrets.add(f"LEAKED_{i}='ed-scratch-marker-{i}'\n")
        with open(billing.path(name), "w") as f:
            f.write(text)
        assert sfs.read_text(billing.path(name)) == text
    assert billing.names() == sorted(BASE_NAMES + SCRATCH_NAMES)
    assert billing.store.raw("team/billing") == before
    assert store_files(billing.store) == ["team/billing.env", "team/shared.env"]
    assert sfs.read_text(billing.path(".env")) == billing.served_env()
    for name in SCRATCH_NAMES:
        st = os.stat(billing.path(name))
        assert (st.st_uid, stat.S_IMODE(st.st_mode) & ~0o600) == (0, 0), name
        os.unlink(billing.path(name))
    assert billing.names() == BASE_NAMES
    assert billing.store.raw("team/billing") == before
    for p in billing.store.dir.rglob("*"):
        if p.is_file():
            assert b"ed-scratch-marker" not in p.read_bytes(), p


def test_scratch_files_are_gone_after_unmount(mount, billing, secrets):
    for name in SCRATCH_NAMES:
        with open(billing.path(name), "w") as f:
            f.write(secrets.add(f"ed-unmount-marker {name}"))
    assert billing.names() == sorted(BASE_NAMES + SCRATCH_NAMES)
    before = billing.store.raw("team/billing")
    billing.m.unmount()
    assert billing.store.raw("team/billing") == before
    for p in billing.store.dir.rglob("*"):
        assert not p.is_file() or b"ed-unmount-marker" not in p.read_bytes(), p
    again = mount(BILLING_APPS)
    assert sorted(os.listdir(again.app("billing"))) == BASE_NAMES
    for name in SCRATCH_NAMES:
        assert sfs.errno_of(os.stat, again.app("billing") / name) == "ENOENT"


CREATE_AS = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, sys.argv[2].encode())
os.close(fd)
with open(sys.argv[1], "rb") as f:
    print(f.read().decode())
"""


def test_scratch_file_is_private_to_its_creator(mount, store, users, secrets):
    store.put("team/billing", {"DB_PASSWORD": OLD_DB})
    # 0666 files: both users may enter the folder and create files in it
    m = mount({"billing": {"store": "local://team/billing", "mode": "0666"}})
    m.expect_log(r"app billing: mode 0666 lets every user write its secrets")
    path = m.app("billing") / ".DB_PASSWORD.swp"
    text = secrets.add("ed-user-a-swap-text")
    a = users["a"]
    res = subprocess.run([sfs.PYTHON, "-c", CREATE_AS, str(path), text],
                         user=a.pw_uid, group=a.pw_gid, extra_groups=[],
                         cwd="/", capture_output=True, text=True, timeout=20,
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == text
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
        (a.pw_uid, a.pw_gid, 0o600)
    got = sfs.probe_as("sfs-test-b", ("read", path), ("list", path.parent))
    assert got[f"read {path}"] == {"errno": "EACCES"}
    assert ".DB_PASSWORD.swp" in got[f"list {path.parent}"]["ok"]
    got = sfs.probe_as("sfs-test-a", ("read", path))
    assert got[f"read {path}"] == {"ok": text}
    assert store.get("team/billing") == {"DB_PASSWORD": OLD_DB}


# ---------------------------------------------------------------- names

def test_touch_new_key_adds_it_empty(billing):
    # the key is in the store when close() returns, created by a bare
    # open(O_CREAT) + close() as by touch
    os.close(os.open(billing.path("NEW_OPENED"), os.O_WRONLY | os.O_CREAT,
                     0o600))
    assert entry(billing.store) == billing.stored(NEW_OPENED="")
    sh("touch NEW_EMPTY", billing.dir)
    assert entry(billing.store) == billing.stored(NEW_OPENED="", NEW_EMPTY="")
    assert billing.names() == sorted(BASE_NAMES + ["NEW_EMPTY", "NEW_OPENED"])
    assert sfs.read(billing.path("NEW_EMPTY")) == b""
    st = os.stat(billing.path("NEW_EMPTY"))
    assert (st.st_size, st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)


def wait_for(predicate, seconds=3.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_truncating_open_empties_key(billing):
    # open(O_TRUNC) and close() without a write (`: > KEY`) commits the empty
    # value when the file is released, just after close() returns: a flush
    # must not commit a bare truncation, because `echo x > KEY` closes a
    # dup()ed descriptor before it writes (docs/secretfs.8, WRITES)
    # The release commits after close() returned: the store file changes
    # a moment before the daemon's cache learns it, so the read is waited
    # for too (it must come, and the store must hold exactly this)
    os.close(os.open(billing.path("DB_PASSWORD"), os.O_WRONLY | os.O_TRUNC))
    wait_for(lambda: entry(billing.store) == billing.stored(DB_PASSWORD=""))
    wait_for(lambda: sfs.read(billing.path("DB_PASSWORD")) == b"")
    sh(": > STRIPE_KEY", billing.dir)
    wait_for(lambda: entry(billing.store) ==
             billing.stored(DB_PASSWORD="", STRIPE_KEY=""))
    wait_for(lambda: sfs.read(billing.path("STRIPE_KEY")) == b"")


def test_rm_key_removes_it(billing):
    sh("rm STRIPE_KEY", billing.dir)
    assert entry(billing.store) == billing.stored(STRIPE_KEY=None)
    assert billing.names() == [".env", "DATABASE_URL", "DB_PASSWORD",
                               "SECRET_KEY"]
    assert sfs.errno_of(os.stat, billing.path("STRIPE_KEY")) == "ENOENT"


@pytest.mark.parametrize("key", ["DATABASE_URL", "SECRET_KEY"],
                         ids=["mapped", "generated"])
def test_rm_declared_key_is_eperm(billing, key):
    before = billing.store.raw("team/billing")
    billing.m.expect_log(rf"\b{key}\b.*declared in the config")
    assert sfs.errno_of(os.unlink, billing.path(key)) == "EPERM"
    assert "Operation not permitted" in sh_fails(f"rm -f {key}", billing.dir)
    assert billing.store.raw("team/billing") == before
    assert_shared_untouched(billing)
    assert billing.names() == BASE_NAMES


def test_touch_bad_name_is_einval(billing):
    before = billing.store.raw("team/billing")
    assert "Invalid argument" in sh_fails("touch bad-name", billing.dir)
    assert sfs.errno_of(os.open, billing.path("bad.name"),
                        os.O_WRONLY | os.O_CREAT, 0o600) == "EINVAL"
    assert billing.names() == BASE_NAMES
    assert billing.store.raw("team/billing") == before


def test_rm_env_is_eperm(billing):
    before = billing.store.raw("team/billing")
    assert "Operation not permitted" in sh_fails("rm -f .env", billing.dir)
    assert sfs.errno_of(os.unlink, billing.path(".env")) == "EPERM"
    assert billing.store.raw("team/billing") == before
    assert billing.names() == BASE_NAMES


def test_new_key_by_vim_from_nothing(billing, secrets):
    # vim on a file that does not exist yet: the save creates the key
    secrets.add("ed-vim-created")
    vim(billing.path("VIM_CREATED"), "set nocompatible noeol nofixeol",
        "call setline(1, 'ed-vim-created')")
    assert entry(billing.store) == billing.stored(VIM_CREATED="ed-vim-created")
    assert sfs.read(billing.path("VIM_CREATED")) == b"ed-vim-created"
    assert billing.names() == sorted(BASE_NAMES + ["VIM_CREATED"])


def test_store_entry_text_is_the_dialect(billing, secrets):
    # what lands in the store is the canonical rendering: a program that
    # reads the store file with python-dotenv gets the same values
    secrets.add("ed-multi line")
    sh("printf 'ed-multi\\nline' > STRIPE_KEY", billing.dir)
    text = billing.store.raw("team/billing").decode()
    assert sfs.parse(text) == billing.stored(STRIPE_KEY="ed-multi\nline")
    assert dotenv.dotenv_values(stream=io.StringIO(text))["STRIPE_KEY"] == \
        "ed-multi\nline"
