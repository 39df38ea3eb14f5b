"""SIGHUP reloads the configuration, mounted as it is (issue 14).

Apps are added, removed and changed (owner, mode, references, ttl);
providers whose section changed are re-created; readers keep reading
through the reload, open files keep their snapshot, and files of apps that
did not change keep their inode numbers. A configuration with an error is
refused with file:line in the log and the running one stays.
"""

import os
import signal
import threading
import time

import sfs

RELOADED = r"^secretfs: info: reloaded "


def reload(m, expect=RELOADED, timeout=10.0):
    """SIGHUP m's daemon; wait for a log line matching expect after it."""
    import re
    before = len(m.stderr_text())
    os.kill(m.pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(expect, m.stderr_text()[before:], re.M):
            return
        time.sleep(0.02)
    raise AssertionError(f"no {expect!r} after SIGHUP:\n{m.stderr_text()[before:]}")


def wait_for(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return fn()


def test_apps_added_removed_changed_inodes_kept(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "reload-billing-pw"})
    store.put("team/web", {"TOKEN": "reload-web-token"})
    store.put("team/new", {"NEW_KEY": "reload-new-value"})
    store.put("team/web2", {"TOKEN": "reload-web2-token"})
    m = mount({"billing": {"store": "local://team/billing"},
               "web": {"store": "local://team/web", "mode": "0400"},
               "old": {"store": "local://team/web"}})
    billing = m.app("billing")
    ino_dir = os.stat(billing).st_ino
    ino_env = os.stat(billing / ".env").st_ino
    ino_key = os.stat(billing / "DB_PASSWORD").st_ino
    assert sfs.read_text(billing / "DB_PASSWORD") == "reload-billing-pw"
    assert os.stat(m.app("web") / "TOKEN").st_mode & 0o777 == 0o400

    m.config_path.write_text(sfs.config_text(store.dir, {
        # "aaa" sorts first: every app's index in the config shifts
        "aaa": {"store": "local://team/new"},
        "billing": {"store": "local://team/billing"},
        "web": {"store": "local://team/web2", "mode": "0440", "ttl": "1s"}}))
    reload(m)

    assert sorted(os.listdir(m.path)) == ["aaa", "billing", "web"]
    assert sfs.read_text(m.app("aaa") / "NEW_KEY") == "reload-new-value"
    assert not os.path.exists(m.app("old"))
    # unchanged: same inodes, same values
    assert os.stat(billing).st_ino == ino_dir
    assert os.stat(billing / ".env").st_ino == ino_env
    assert os.stat(billing / "DB_PASSWORD").st_ino == ino_key
    assert sfs.read_text(billing / "DB_PASSWORD") == "reload-billing-pw"
    # changed: new reference and mode, seen at once
    assert sfs.read_text(m.app("web") / "TOKEN") == "reload-web2-token"
    assert os.stat(m.app("web") / "TOKEN").st_mode & 0o777 == 0o440
    assert os.stat(m.app("web")).st_mode & 0o777 == 0o550

    # removed, then added back: the same folder inode as before
    m.config_path.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing"},
        "old": {"store": "local://team/web"}}))
    reload(m)
    assert sorted(os.listdir(m.path)) == ["billing", "old"]
    assert sfs.read_text(m.app("old") / "TOKEN") == "reload-web-token"
    assert os.stat(billing / "DB_PASSWORD").st_ino == ino_key


def test_owner_change(mount, store, users):
    store.put("team/billing", {"DB_PASSWORD": "reload-owner-pw"})
    m = mount({"billing": {"store": "local://team/billing"}})
    assert os.stat(m.app("billing") / "DB_PASSWORD").st_uid == 0
    user, uid = users["a"].pw_name, users["a"].pw_uid
    m.config_path.write_text(sfs.config_text(store.dir, {
        "billing": {"store": "local://team/billing", "owner": user}}))
    reload(m)
    assert os.stat(m.app("billing") / "DB_PASSWORD").st_uid == uid
    assert os.stat(m.app("billing")).st_uid == uid


def test_bad_config_refused_running_one_kept(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "reload-kept-pw"})
    m = mount({"billing": {"store": "local://team/billing"}})
    m.expect_log(r"reload refused")
    good = m.config_path.read_text()
    m.config_path.write_text(good + "\n[app broken]\nstore = nosuch://x\n")
    reload(m, expect=r"^secretfs: error: reload refused, still serving the "
                     r"configuration loaded before: .*secretfs\.conf:\d+: ")
    assert os.listdir(m.path) == ["billing"]
    assert sfs.read_text(m.app("billing") / "DB_PASSWORD") == "reload-kept-pw"
    # and a good one after it is taken
    m.config_path.write_text(good.replace("[app billing]", "[app billing2]"))
    reload(m)
    assert os.listdir(m.path) == ["billing2"]


def test_untrusted_config_refused_running_one_kept(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "S3cr3t-trust-5be1"})
    m = mount({"billing": {"store": "local://team/billing"}})
    m.expect_log(r"reload refused")
    good = m.config_path.read_text()
    # someone who may write it grants themselves an app
    m.config_path.write_text(good + "\n[app mine]\nstore = local://team/billing\n"
                             "owner = nobody\n")
    m.config_path.chmod(0o666)
    reload(m, expect=r"^secretfs: error: reload refused, still serving the "
                     r"configuration loaded before: .*secretfs\.conf: writable "
                     r"by group or others \(mode 0666\).*chmod go-w ")
    assert os.listdir(m.path) == ["billing"]
    # a drop-in in a conf.d anyone may write to: refused as well
    m.config_path.chmod(0o644)
    confd = m.config_path.parent / "conf.d"
    confd.mkdir(mode=0o755)
    confd.chmod(0o777)
    (confd / "mine.conf").write_text("[app mine2]\nstore = local://team/billing\n")
    reload(m, expect=r"^secretfs: error: reload refused, still serving the "
                     r"configuration loaded before: .*/conf\.d: writable ")
    assert os.listdir(m.path) == ["billing"]
    assert sfs.read_text(m.app("billing") / "DB_PASSWORD") == "S3cr3t-trust-5be1"
    # made safe, it is taken
    confd.chmod(0o755)
    reload(m)
    assert sorted(os.listdir(m.path)) == ["billing", "mine", "mine2"]


def test_untrusted_template_refused_running_one_kept(mount, store, tmp_path):
    # templates are read when the configuration is: a reload rereads and
    # rechecks them
    store.put("team/billing", {"DB_PASSWORD": "S3cr3t-tpl-7c3e"})
    tpl = tmp_path / "db.tpl"
    tpl.write_text("pw: {{ DB_PASSWORD }}\n")
    m = mount({"billing": {"store": "local://team/billing",
                           "file.db.yaml": str(tpl)}})
    m.expect_log(r"reload refused")
    tpl.write_text("pw: {{ local://team/billing#DB_PASSWORD }} (moved)\n")
    tpl.chmod(0o666)
    reload(m, expect=r"^secretfs: error: reload refused, still serving the "
                     r"configuration loaded before: .*secretfs\.conf:\d+: "
                     r"file\.db\.yaml: template .*db\.tpl: writable by group "
                     r"or others \(mode 0666\).*chmod go-w .*db\.tpl$")
    assert sfs.read_text(m.app("billing") / "db.yaml") == "pw: S3cr3t-tpl-7c3e\n"
    tpl.chmod(0o644)
    reload(m)
    assert sfs.read_text(m.app("billing") / "db.yaml") == \
        "pw: S3cr3t-tpl-7c3e (moved)\n"


def test_untrusted_hook_refused_running_one_kept(mount, store, tmp_path):
    store.put("team/billing", {"DB_PASSWORD": "S3cr3t-hook-2e8a"})
    hook = tmp_path / "reload.sh"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    m = mount({"billing": {"store": "local://team/billing"}})
    m.expect_log(r"reload refused")
    good = m.config_path.read_text()
    m.config_path.write_text(good + f"on_change = {hook}\n")
    hook.chmod(0o777)
    reload(m, expect=r"^secretfs: error: reload refused, still serving the "
                     r"configuration loaded before: .*secretfs\.conf:\d+: "
                     r"on_change: program .*reload\.sh: .*writable by group "
                     r"or others \(mode 0777\), so they could run any command "
                     r"as root: chmod go-w .*reload\.sh$")
    assert sfs.read_text(m.app("billing") / "DB_PASSWORD") == "S3cr3t-hook-2e8a"
    hook.chmod(0o755)
    reload(m)


def test_provider_recreated_when_its_section_changed(mount, store_factory, store):
    store.put("team/billing", {"DB_PASSWORD": "reload-store-a"})
    other = store_factory("other")
    other.put("team/billing", {"DB_PASSWORD": "reload-store-b"})
    m = mount({"billing": {"store": "local://team/billing", "ttl": "1h"}})
    key = m.app("billing") / "DB_PASSWORD"
    assert sfs.read_text(key) == "reload-store-a"
    # same app text, provider pointed elsewhere: a new provider, not the
    # old one's cached value
    m.config_path.write_text(sfs.config_text(other.dir, {
        "billing": {"store": "local://team/billing", "ttl": "1h"}}))
    reload(m)
    assert sfs.read_text(key) == "reload-store-b"


def test_readers_and_open_files_undisturbed(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "reload-busy-pw"})
    store.put("team/web", {"TOKEN": "reload-busy-token"})
    m = mount({"billing": {"store": "local://team/billing"},
               "web": {"store": "local://team/web"}})
    key = m.app("billing") / "DB_PASSWORD"
    held = open(m.app("web") / ".env")   # of an app the reload removes
    stop = threading.Event()
    failures, reads = [], [0]

    def reader():
        while not stop.is_set():
            try:
                assert sfs.read_text(key) == "reload-busy-pw"
                os.listdir(m.app("billing"))
                reads[0] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            apps = {"billing": {"store": "local://team/billing"}}
            if i % 2:
                apps["web"] = {"store": "local://team/web"}
            apps[f"extra{i}"] = {"store": "local://team/web"}
            m.config_path.write_text(sfs.config_text(store.dir, apps))
            reload(m)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, failures[:5]
    assert reads[0] > 20
    # the open file still reads its snapshot
    assert "reload-busy-token" in held.read()
    held.close()


def test_writes_after_a_reload_moved_the_apps(mount, store, tmp_path):
    """Apps are named by slot below the adapter, and a reload that adds
    an app before another moves the other's index in the configuration
    but not its slot. A write open asked whether the name is read-only of
    the app at the slot's number as an index: here "aaa", whose template
    is named like b's key, so b's key was refused (EROFS); an app past the
    end of the list read memory beyond it."""
    store.put("team/b", {"TOKEN": "reload-slot-S3cr3t-0"})
    m = mount({"b": {"store": "local://team/b", "mode": "0600"}})
    tpl = tmp_path / "token.tpl"
    tpl.write_text("a template, no value\n")
    m.config_path.write_text(sfs.config_text(store.dir, {
        "aaa": {"store": "local://team/b", "file.TOKEN": str(tpl)},
        "b": {"store": "local://team/b", "mode": "0600"}}))
    reload(m)

    assert sfs.write_file(m.app("b") / "TOKEN",
                          "reload-slot-S3cr3t-1") == (None, None)
    assert store.get("team/b")["TOKEN"] == "reload-slot-S3cr3t-1"
    # and the template stays read-only in its own app
    assert sfs.write_file(m.app("aaa") / "TOKEN", "x") == ("open", "EROFS")


def test_kept_env_follows_a_changed_reference(mount, store):
    """A .env read again and again is kept between changes; a reload that
    points the app elsewhere (same provider, both entries cached) is a
    change too, for the very next open."""
    store.put("team/first", {"KEY": "reload-kept-first"})
    store.put("team/second", {"KEY": "reload-kept-second"})
    m = mount({"kept": {"store": "local://team/first"},
               "other": {"store": "local://team/second"}},
              settings={"ttl": "1h", "refresh": "1h"})
    env = m.app("kept") / ".env"
    for _ in range(5):
        assert sfs.read_text(env) == "KEY='reload-kept-first'\n"
    assert sfs.read_text(m.app("other") / ".env") == \
        "KEY='reload-kept-second'\n"
    m.config_path.write_text(sfs.config_text(store.dir, {
        "kept": {"store": "local://team/second",
                 "env.EXTRA": "local://team/first#KEY"},
        "other": {"store": "local://team/second"}}))
    reload(m)
    assert wait_for(lambda: sfs.read_text(env) ==
                    "EXTRA='reload-kept-first'\nKEY='reload-kept-second'\n")
