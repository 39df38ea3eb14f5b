"""Ownership and modes from the config; the kernel enforces them."""

import os
import stat
import subprocess

import pytest

import sfs


@pytest.mark.parametrize("mode,folder_mode", [
    (0o400, 0o500), (0o440, 0o550), (0o600, 0o700), (0o444, 0o555),
    (0o640, 0o750), (0o660, 0o770),
], ids=lambda m: f"{m:04o}")
def test_mode_from_config(mount, store, mode, folder_mode):
    store.put("team/billing", {"DB_PASSWORD": "access-db-pw"})
    m = mount({"billing": {"store": "local://team/billing",
                           "mode": f"0{mode:o}"}})
    app = m.app("billing")
    assert stat.S_IMODE(os.stat(app).st_mode) == folder_mode
    for name in (".env", "DB_PASSWORD"):
        st = os.stat(app / name)
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == mode, name


def test_default_owner_and_mode(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "access-db-pw"})
    m = mount({"billing": {"store": "local://team/billing"}})
    app = m.app("billing")
    st = os.stat(app)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o500)
    st = os.stat(app / "DB_PASSWORD")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o400)


def test_numeric_owner(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "access-db-pw"})
    store.put("team/web", {"TOKEN": "access-web-token"})
    m = mount({"billing": {"store": "local://team/billing",
                           "owner": "4321:8765"},
               "web": {"store": "local://team/web", "owner": "4321:0"}})
    for path in (m.app("billing"), m.app("billing") / ".env",
                 m.app("billing") / "DB_PASSWORD"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (4321, 8765), path
    st = os.stat(m.app("web") / "TOKEN")
    assert (st.st_uid, st.st_gid) == (4321, 0)


def test_named_owner(mount, store, users):
    a, b = users["a"], users["b"]
    store.put("team/billing", {"DB_PASSWORD": "access-db-pw"})
    store.put("team/web", {"TOKEN": "access-web-token"})
    m = mount({"billing": {"store": "local://team/billing",
                           "owner": f"{a.pw_name}:{b.pw_name}"},
               "web": {"store": "local://team/web", "owner": b.pw_name},
               "api": {"store": "local://team/web", "owner": str(a.pw_uid)}})
    st = os.stat(m.app("billing") / "DB_PASSWORD")
    assert (st.st_uid, st.st_gid) == (a.pw_uid, b.pw_gid)
    # a user alone, by name or uid: that user's primary group
    st = os.stat(m.app("web"))
    assert (st.st_uid, st.st_gid) == (b.pw_uid, b.pw_gid)
    st = os.stat(m.app("api") / "TOKEN")
    assert (st.st_uid, st.st_gid) == (a.pw_uid, a.pw_gid)


def test_users_read_only_their_own_app(mount, store, users):
    a, b = users["a"], users["b"]
    store.put("team/alpha", {"ALPHA_KEY": "access-alpha-secret"})
    store.put("team/beta", {"BETA_KEY": "access-beta-secret"})
    m = mount({"alpha": {"store": "local://team/alpha", "owner": a.pw_name},
               "beta": {"store": "local://team/beta", "owner": b.pw_name}})
    alpha, beta = m.app("alpha"), m.app("beta")

    got = sfs.probe_as(a.pw_name, ("list", m.path), ("list", alpha),
                       ("read", alpha / "ALPHA_KEY"), ("read", alpha / ".env"),
                       ("list", beta), ("read", beta / "BETA_KEY"),
                       ("read", beta / ".env"))
    assert got[f"list {m.path}"] == {"ok": ["alpha", "beta"]}
    assert got[f"list {alpha}"] == {"ok": [".env", "ALPHA_KEY"]}
    assert got[f"read {alpha / 'ALPHA_KEY'}"] == {"ok": "access-alpha-secret"}
    assert got[f"read {alpha / '.env'}"] == {"ok": "ALPHA_KEY='access-alpha-secret'\n"}
    assert got[f"list {beta}"] == {"errno": "EACCES"}
    assert got[f"read {beta / 'BETA_KEY'}"] == {"errno": "EACCES"}
    assert got[f"read {beta / '.env'}"] == {"errno": "EACCES"}

    got = sfs.probe_as(b.pw_name, ("read", beta / "BETA_KEY"),
                       ("read", alpha / "ALPHA_KEY"), ("list", alpha))
    assert got[f"read {beta / 'BETA_KEY'}"] == {"ok": "access-beta-secret"}
    assert got[f"read {alpha / 'ALPHA_KEY'}"] == {"errno": "EACCES"}
    assert got[f"list {alpha}"] == {"errno": "EACCES"}


def test_group_mode_lets_group_read(mount, store, users):
    a, b = users["a"], users["b"]
    store.put("team/alpha", {"ALPHA_KEY": "access-alpha-secret"})
    # owned by b, group a's group, mode 0440: a reads through the group
    m = mount({"alpha": {"store": "local://team/alpha",
                         "owner": f"{b.pw_name}:{a.pw_name}", "mode": "0440"}})
    got = sfs.probe_as(a.pw_name, ("read", m.app("alpha") / "ALPHA_KEY"))
    assert got[f"read {m.app('alpha') / 'ALPHA_KEY'}"] == {
        "ok": "access-alpha-secret"}


def test_other_user_cannot_write(mount, store, users):
    a = users["a"]
    store.put("team/alpha", {"ALPHA_KEY": "access-alpha-secret"})
    m = mount({"alpha": {"store": "local://team/alpha", "owner": a.pw_name,
                         "mode": "0400"}})
    before = store.raw("team/alpha")
    res = sfs.probe_as(a.pw_name, ("read", m.app("alpha") / "ALPHA_KEY"))
    assert res[f"read {m.app('alpha') / 'ALPHA_KEY'}"]["ok"]
    r = subprocess.run(["sh", "-c", 'printf x > "$1"', "sh",
                        str(m.app("alpha") / "ALPHA_KEY")],
                       user=a.pw_uid, group=a.pw_gid, extra_groups=[],
                       cwd="/", capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "Permission denied" in r.stderr
    assert store.raw("team/alpha") == before


RENAME_AS = r"""
import errno, os, sys
op, a, b = sys.argv[1:4]
try:
    if op == "write":
        with open(a, "w") as f:
            f.write(b)
    elif op == "rename":
        os.rename(a, b)
    else:
        with open(a) as f:
            print(f.read(), end="")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)), end="")
"""


def as_member(user, group, op, a, b=""):
    """Run op (write, rename, read) as user with group as an extra group;
    what it printed: a file's text, or the errno name of a failure."""
    res = subprocess.run([sfs.PYTHON, "-c", RENAME_AS, op, str(a), str(b)],
                         user=user.pw_uid, group=user.pw_gid,
                         extra_groups=[group], cwd="/", capture_output=True,
                         text=True, timeout=20, check=False,
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_group_member_cannot_rename_anothers_draft(mount, store, users,
                                                   secrets):
    """owner = root:GROUP, mode = 0660: members write the app, but a
    member's 0600 scratch file stays theirs; renaming it over a key (which
    the group may read) would reveal it, so only its owner may."""
    a, b = users["a"], users["b"]
    group = a.pw_gid
    old = secrets.add("S3cr3t-access-old-4f1c9e")
    draft = secrets.add("S3cr3t-access-draft-8b2d7a")
    store.put("team/shared", {"DB_PASSWORD": old})
    m = mount({"shared": {"store": "local://team/shared",
                          "owner": f"root:{a.pw_name}", "mode": "0660"}})
    m.expect_log(r"another user's file")
    app = m.app("shared")
    assert as_member(a, group, "write", app / ".draft", draft) == ""
    assert as_member(b, group, "read", app / ".draft") == "EACCES"
    for target in ("DB_PASSWORD", ".env", ".mine"):
        assert as_member(b, group, "rename", app / ".draft",
                         app / target) == "EPERM", target
    assert as_member(b, group, "read", app / "DB_PASSWORD") == old
    assert store.get("team/shared") == {"DB_PASSWORD": old}
    # its owner may
    assert as_member(a, group, "rename", app / ".draft",
                     app / "DB_PASSWORD") == ""
    assert store.get("team/shared") == {"DB_PASSWORD": draft}
    assert as_member(b, group, "read", app / "DB_PASSWORD") == draft
