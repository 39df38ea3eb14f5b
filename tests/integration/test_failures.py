"""Failures you can see (issue 14): a file whose value cannot be fetched
still lists, stats and answers getfattr (user.secretfs.error says why);
an app whose store is down still lists its declared files; every EIO a
reader gets is one log line naming app, reference and cause, rate-limited.
"""

import errno
import os
import re

import sfs


def broken_app(mount, store):
    """An app whose store cannot be read (its entry is a directory) and
    whose env.DB names an entry that does not exist."""
    os.makedirs(store.path("team/down"), exist_ok=True)
    m = mount({"billing": {"store": "local://team/down",
                           "env.DB": "local://team/gone#DB"}})
    m.expect_log(r"app billing")
    return m


def test_listing_with_store_down_shows_declared(mount, store):
    m = broken_app(mount, store)
    assert sorted(os.listdir(m.app("billing"))) == [".env", "DB"]
    assert re.search(r"^secretfs: warn: app billing: listing only its declared "
                     r"files: .*team/down", m.stderr_text(), re.M)


def test_stat_and_getfattr_on_unfetchable_file(mount, store):
    m = broken_app(mount, store)
    for name in ("DB", ".env"):
        path = m.app("billing") / name
        assert os.stat(path).st_size == 0
        assert "local://team/gone#DB" in \
            os.getxattr(path, "user.secretfs.source").decode()
        why = os.getxattr(path, "user.secretfs.error").decode()
        assert why, name
        assert os.getxattr(path, "user.secretfs.stale") == b"0"


def test_each_eio_is_logged_once_per_reason(mount, store):
    m = broken_app(mount, store)
    key = m.app("billing") / "DB"
    for _ in range(20):
        assert sfs.errno_of(sfs.read, key) == "EIO"
    lines = [line for line in m.stderr_text().splitlines()
             if line.startswith("secretfs: error:") and "local://team/gone#DB" in line]
    assert lines, m.stderr_text()
    assert all("app billing" in line for line in lines), lines
    # stat, open: a few reasons' lines, not one per attempt
    assert len(lines) <= 4, lines


def test_value_back_after_failure(mount, store):
    """A file shown as size 0 while failing is read in full once its store
    is back: the size 0 was never cached."""
    os.makedirs(store.path("team/flaky"))
    m = mount({"web": {"env.TOKEN": "local://team/flaky#TOKEN", "ttl": "1s"}})
    m.expect_log(r"app web")
    key = m.app("web") / "TOKEN"
    assert os.stat(key).st_size == 0
    assert sfs.errno_of(sfs.read, key) == "EIO"
    os.rmdir(store.path("team/flaky"))
    store.put("team/flaky", {"TOKEN": "failures-back-value"})
    # past the cache's failure backoff at once
    os.setxattr(key, "user.secretfs.refresh", b"1")
    assert sfs.read_text(key) == "failures-back-value"
    assert os.stat(key).st_size == len("failures-back-value")
