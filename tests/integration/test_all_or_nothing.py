"""All or nothing: a .env is never served partially; key files fail alone."""

import time

import sfs


def test_missing_entry_fails_env_not_other_keys(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "aon-db-pw",
                               "STRIPE_KEY": "aon-stripe"})
    m = mount({"billing": {
        "store": "local://team/billing",
        "env.DATABASE_URL": "local://team/missing#DATABASE_URL",
    }})
    m.expect_log(r"^secretfs: (error|warn): .*local://team/missing")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "DATABASE_URL") == "EIO"
    assert sfs.read(app / "DB_PASSWORD") == b"aon-db-pw"
    assert sfs.read(app / "STRIPE_KEY") == b"aon-stripe"
    errors = [l for l in m.stderr_text().splitlines()
              if l.startswith("secretfs: error: ")]
    assert any("local://team/missing" in l for l in errors), \
        "no error line names the failing reference"
    assert sfs.repeated_locator(m.stderr_text(),
                                "local://team/missing#DATABASE_URL",
                                "team/missing") == []
    # still failing on a second try, never a partial file
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"


def test_missing_field_fails_env_and_key(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "aon-db-pw"})
    store.put("team/shared", {"DATABASE_URL": "postgres://aon/shared"})
    m = mount({"billing": {
        "store": "local://team/billing",
        "env.REDIS_URL": "local://team/shared#REDIS_URL",
    }})
    m.expect_log(r"^secretfs: (error|warn): .*local://team/shared")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "REDIS_URL") == "EIO"
    assert sfs.read(app / "DB_PASSWORD") == b"aon-db-pw"


def test_unparseable_entry_fails_env(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "aon-db-pw"})
    store.put_text("team/broken", "OK='aon-fine-value'\nthis is not dotenv\n")
    m = mount({"billing": {
        "store": "local://team/billing",
        "env.OK": "local://team/broken#OK",
    }})
    m.expect_log(r"^secretfs: (error|warn): .*local://team/broken")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "OK") == "EIO"
    assert sfs.read(app / "DB_PASSWORD") == b"aon-db-pw"


def test_missing_store_entry_is_empty(mount, store, secrets):
    # The primary store entry of a new app need not exist yet: it reads as
    # empty and the first write creates it (fs/app.c). Other sources are
    # still all or nothing.
    store.put("team/shared", {"DATABASE_URL": "postgres://aon/shared"})
    m = mount({"billing": {
        "store": "local://team/nothere",
        "env.DATABASE_URL": "local://team/shared#DATABASE_URL",
        "mode": "0600",
    }})
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == "DATABASE_URL='postgres://aon/shared'\n"
    assert not store.exists("team/nothere")
    new = secrets.add("aon-created-value")
    assert sfs.write_file(app / ".env", f"NEW_KEY='{new}'\n") == (None, None)
    assert store.get("team/nothere") == {"NEW_KEY": new}
    assert sfs.read(app / "NEW_KEY") == new.encode()


def test_recovers_when_source_appears(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "aon-db-pw"})
    m = mount({"billing": {
        "store": "local://team/billing",
        "env.DATABASE_URL": "local://team/late#DATABASE_URL",
    }}, settings={"ttl": "1s"})
    m.expect_log(r"^secretfs: (error|warn): .*local://team/late")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    store.put("team/late", {"DATABASE_URL": "postgres://aon/late"})
    deadline = time.monotonic() + 15
    while True:
        try:
            text = sfs.read_text(app / ".env")
            break
        except OSError:
            assert time.monotonic() < deadline, ".env never recovered"
            time.sleep(0.25)
    assert sfs.parse(text) == {"DATABASE_URL": "postgres://aon/late",
                               "DB_PASSWORD": "aon-db-pw"}
