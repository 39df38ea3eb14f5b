"""Writes while the store fails (issue 10), through real mounts on the
Vault emulator (tests/emulators/vault.py):

- a write that fails during an outage leaves the cached values servable
  as stale within max_stale, and the store untouched;
- a write Vault applied whose answer was lost (the connection dropped
  after the request was handled) is verified by reading the entry back,
  so close() succeeds; one that was not applied still fails with EIO;
- a long outage: reads keep serving stale values, writes fail cleanly,
  nothing is lost when the store comes back.
"""

import os
import secrets as rnd

import pytest

pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402
from vault_fixtures import data_writes  # noqa: E402

XATTR = "user.secretfs."
DATA = r"^/v1/secret/data/billing$"


def value(tag):
    """A distinctive test secret: the leak checker looks for it."""
    return f"S3cr3t-{tag}-{rnd.token_hex(6)}"


@pytest.fixture
def billing(vault, vault_mount, secrets):
    """An app on secret/billing with stale-if-error for an hour: every
    read past ttl (0) revalidates, and a failing Vault is papered over."""
    old = {"API_KEY": secrets.add(value("api")),
           "DB_PASSWORD": secrets.add(value("db"))}
    vault.put("secret/", "billing", old)
    m = vault_mount({"billing": {"store": "vault://secret/billing",
                                 "mode": "0600"}},
                    settings={"ttl": "0", "refresh": "1h",
                              "max_stale": "1h"})
    m.expect_log(r"secret/billing")
    return m, old


def xattr(path, name):
    return os.getxattr(path, XATTR + name).decode()


def assert_serves(app, values, stale):
    assert sfs.read_text(app / ".env") == sfs.render(values)
    for k, v in values.items():
        assert sfs.read_text(app / k) == v, k
    assert xattr(app / ".env", "stale") == ("1" if stale else "0")


# ------------------------------------------------- a failed write, stale

def test_failed_write_keeps_stale_values(vault, billing, secrets):
    m, old = billing
    app = m.app("billing")
    assert_serves(app, old, stale=False)
    outage = vault.faults.fail_next(None, 500, path=DATA)
    try:
        assert_serves(app, old, stale=True)
        new = secrets.add(value("new"))
        assert sfs.write_file(app / "API_KEY", new) == ("close", "EIO")
        # the failed write evicted nothing a read may serve
        assert_serves(app, old, stale=True)
        assert sfs.write_file(app / ".env", sfs.render({**old, "API_KEY": new})) \
            == ("close", "EIO")
        assert_serves(app, old, stale=True)
    finally:
        vault.faults.remove(outage)
    assert outage.fired >= 4
    assert vault.get("secret/", "billing") == old
    assert_serves(app, old, stale=False)


# ------------------------------------------------ lost answers to writes

def test_applied_write_with_lost_answer_succeeds(vault, billing, secrets):
    m, old = billing
    app = m.app("billing")
    assert_serves(app, old, stale=False)
    new = secrets.add(value("lost"))
    # every POST is carried out, then its connection dropped unanswered
    lost = vault.faults.drop_next(None, after_handling=True, path=DATA,
                                  method="POST")
    try:
        assert sfs.write_file(app / "API_KEY", new) == (None, None)
    finally:
        vault.faults.remove(lost)
    assert lost.fired >= 1
    assert "answer to a write was lost; read back, it holds the write" in \
        m.stderr_text()
    assert vault.get("secret/", "billing") == {**old, "API_KEY": new}
    assert sfs.read_text(app / "API_KEY") == new
    assert_serves(app, {**old, "API_KEY": new}, stale=False)


def test_env_write_with_lost_answer_succeeds(vault, billing, secrets):
    m, old = billing
    app = m.app("billing")
    want = {"API_KEY": old["API_KEY"], "NEW_KEY": secrets.add(value("added"))}
    lost = vault.faults.drop_next(None, after_handling=True, path=DATA,
                                  method="POST")
    try:
        assert sfs.write_file(app / ".env", sfs.render(want)) == (None, None)
    finally:
        vault.faults.remove(lost)
    assert lost.fired >= 1
    assert vault.get("secret/", "billing") == want
    assert_serves(app, want, stale=False)


def test_unapplied_write_with_dropped_connection_fails(vault, billing,
                                                       secrets):
    m, old = billing
    app = m.app("billing")
    assert_serves(app, old, stale=False)
    new = secrets.add(value("unapplied"))
    dropped = vault.faults.drop_next(None, path=DATA, method="POST")
    try:
        assert sfs.write_file(app / "API_KEY", new) == ("close", "EIO")
    finally:
        vault.faults.remove(dropped)
    assert dropped.fired >= 1
    assert "read back, the store does not hold the write" in m.stderr_text()
    assert data_writes(vault, "secret/", "billing") == []
    assert vault.get("secret/", "billing") == old
    assert vault.version("secret/", "billing") == 1
    assert_serves(app, old, stale=False)


def test_lost_answer_while_another_writer_wins_fails(vault, billing, secrets):
    """The write was lost, and what the store holds when it is read back is
    someone else's: that is no success."""
    m, old = billing
    app = m.app("billing")
    assert_serves(app, old, stale=False)
    theirs = secrets.add(value("theirs"))
    dropped = vault.faults.drop_next(None, after_handling=True, path=DATA,
                                     method="POST")
    real_handle = vault.handle

    def handle(req):
        # another client's write lands just as ours is lost
        if req.method == "POST" and req.path == "/v1/secret/data/billing" \
                and vault.version("secret/", "billing") == 1:
            vault.put("secret/", "billing", {**old, "API_KEY": theirs})
        return real_handle(req)

    vault.handle = handle
    try:
        mine = secrets.add(value("mine"))
        assert sfs.write_file(app / "API_KEY", mine) == ("close", "EIO")
    finally:
        vault.handle = real_handle
        vault.faults.remove(dropped)
    assert "read back, the store does not hold the write" in m.stderr_text()
    assert vault.get("secret/", "billing") == {**old, "API_KEY": theirs}
    assert sfs.read_text(app / "API_KEY") == theirs


# ------------------------------------------------------ a long outage

@pytest.mark.timeout_s(120)
def test_long_outage_reads_stale_writes_fail_nothing_lost(vault, billing,
                                                          secrets):
    m, old = billing
    app = m.app("billing")
    assert_serves(app, old, stale=False)
    vault.seal()
    try:
        for round_ in range(4):
            assert_serves(app, old, stale=True)
            assert xattr(app / "API_KEY", "error")
            new = secrets.add(value(f"outage{round_}"))
            assert sfs.write_file(app / "API_KEY", new) == ("close", "EIO")
            assert sfs.errno_of(os.unlink, app / "DB_PASSWORD") == "EIO"
    finally:
        vault.unseal()
    assert vault.get("secret/", "billing") == old
    assert vault.version("secret/", "billing") == 1
    assert_serves(app, old, stale=False)
    assert xattr(app / "API_KEY", "error") == ""
    # and writes work again
    new = secrets.add(value("after"))
    assert sfs.write_file(app / "API_KEY", new) == (None, None)
    assert vault.get("secret/", "billing") == {**old, "API_KEY": new}
    assert sfs.read_text(app / "API_KEY") == new
