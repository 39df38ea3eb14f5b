"""Writes: committed at close(), through to the app's store entry."""

import os
import subprocess

import pytest

import sfs


def billing_apps(**extra):
    return {"billing": {"store": "local://team/billing", "mode": "0600",
                        **extra}}


@pytest.fixture
def billing(mount, store):
    store.put("team/billing", {"DB_PASSWORD": "write-old-db-pw",
                               "STRIPE_KEY": "write-stripe-key"})
    store.put("team/shared", {"DATABASE_URL": "postgres://write/shared"})
    return mount(billing_apps(
        **{"env.DATABASE_URL": "local://team/shared#DATABASE_URL"}))


def test_key_write_lands_in_store(billing, store, secrets):
    new = secrets.add("write-new-pa$$'\"word")
    assert sfs.write_file(billing.app("billing") / "DB_PASSWORD", new) == \
        (None, None)
    assert store.get("team/billing") == {"DB_PASSWORD": new,
                                         "STRIPE_KEY": "write-stripe-key"}
    assert sfs.read_text(billing.app("billing") / "DB_PASSWORD") == new
    assert os.stat(billing.app("billing") / "DB_PASSWORD").st_size == \
        len(new.encode())
    env = sfs.read_text(billing.app("billing") / ".env")
    assert sfs.parse(env)["DB_PASSWORD"] == new
    billing.expect_log(r"^secretfs: warn: .*\bDB_PASSWORD\b")


def test_key_write_from_shell(billing, store, secrets):
    new = secrets.add("write-shell-value with spaces")
    path = billing.app("billing") / "STRIPE_KEY"
    subprocess.run(["sh", "-c", 'printf %s "$1" > "$2"', "sh", new, str(path)],
                   check=True, timeout=20)
    assert store.get("team/billing")["STRIPE_KEY"] == new
    assert sfs.read_text(path) == new


def test_env_write_replaces_keys(billing, store, secrets):
    text = ("# edited by hand\n"
            "DB_PASSWORD='write-replaced-pw'\n"
            "export NEW_KEY=write-new-raw-value   # comment\n"
            'QUOTED="it\'s written"\n')
    for v in ("write-replaced-pw", "write-new-raw-value", "it's written"):
        secrets.add(v)
    assert sfs.write_file(billing.app("billing") / ".env", text) == (None, None)
    assert store.get("team/billing") == {
        "DB_PASSWORD": "write-replaced-pw",
        "NEW_KEY": "write-new-raw-value",
        "QUOTED": "it's written",
    }
    app = billing.app("billing")
    assert sorted(os.listdir(app)) == [".env", "DATABASE_URL", "DB_PASSWORD",
                                       "NEW_KEY", "QUOTED"]
    assert sfs.errno_of(sfs.read, app / "STRIPE_KEY") == "ENOENT"
    assert sfs.read(app / "NEW_KEY") == b"write-new-raw-value"
    # the mapped key is untouched and still served
    assert sfs.read(app / "DATABASE_URL") == b"postgres://write/shared"
    assert store.get("team/shared") == {"DATABASE_URL": "postgres://write/shared"}


def test_env_write_with_mapped_key_unchanged(billing, store):
    app = billing.app("billing")
    current = sfs.read_text(app / ".env")
    edited = current.replace("write-stripe-key", "write-stripe-key-2")
    assert "DATABASE_URL='postgres://write/shared'" in edited
    billing.secrets.add("write-stripe-key-2")
    assert sfs.write_file(app / ".env", edited) == (None, None)
    assert store.get("team/billing") == {"DB_PASSWORD": "write-old-db-pw",
                                         "STRIPE_KEY": "write-stripe-key-2"}
    assert store.get("team/shared") == {"DATABASE_URL": "postgres://write/shared"}


def test_env_write_keeps_generated_key_when_omitted(mount, store, secrets):
    store.put("team/billing", {"DB_PASSWORD": "write-old-db-pw"})
    m = mount(billing_apps(**{"env.SECRET_KEY": "generate:hex:16"}))
    app = m.app("billing")
    gen = secrets.add(sfs.read_text(app / "SECRET_KEY"))
    assert sfs.write_file(app / ".env", "DB_PASSWORD='write-new-db-pw'\n") == \
        (None, None)
    secrets.add("write-new-db-pw")
    assert sfs.read_text(app / "SECRET_KEY") == gen
    assert store.get("team/billing") == {"DB_PASSWORD": "write-new-db-pw",
                                         "SECRET_KEY": gen}


@pytest.mark.parametrize("bad", [
    "GOOD='write-good-value'\nnot a valid line\n",
    "GOOD='write-good-value'\n1BAD='x'\n",
    "GOOD='write-good-value'\nOPEN='unterminated\n",
    "GOOD='write-good-value'\nNUL='a\0b'\n",
    "GOOD='write-good-value'\nGOOD='again'\n",
], ids=["syntax", "bad-name", "unterminated", "nul", "duplicate"])
def test_invalid_env_write_fails_at_close(billing, store, bad):
    before = store.raw("team/billing")
    shared = store.raw("team/shared")
    billing.expect_log(r"\bline 2\b")
    assert sfs.write_file(billing.app("billing") / ".env", bad) == \
        ("close", "EINVAL")
    assert store.raw("team/billing") == before
    assert store.raw("team/shared") == shared
    assert any("line 2" in line for line in billing.stderr_text().splitlines()
               if line.startswith("secretfs: ")), "no log line names line 2"
    # and nothing changed in what is served
    assert sfs.read(billing.app("billing") / "DB_PASSWORD") == b"write-old-db-pw"


def test_changing_mapped_key_in_env_is_erofs(billing, store):
    app = billing.app("billing")
    before, shared = store.raw("team/billing"), store.raw("team/shared")
    edited = sfs.read_text(app / ".env").replace("postgres://write/shared",
                                                 "postgres://write/changed")
    billing.secrets.add("postgres://write/changed")
    billing.expect_log(r"\bDATABASE_URL\b")
    assert sfs.write_file(app / ".env", edited) == ("close", "EROFS")
    assert store.raw("team/billing") == before
    assert store.raw("team/shared") == shared
    assert sfs.read(app / "DATABASE_URL") == b"postgres://write/shared"


def test_writing_mapped_key_file_is_erofs(billing, store):
    before, shared = store.raw("team/billing"), store.raw("team/shared")
    billing.expect_log(r"\bDATABASE_URL\b")
    stage, err = sfs.write_file(billing.app("billing") / "DATABASE_URL",
                                "postgres://write/other")
    assert err == "EROFS", (stage, err)
    assert store.raw("team/billing") == before
    assert store.raw("team/shared") == shared


def test_app_without_store_is_read_only(mount, store):
    store.put("team/shared", {"DATABASE_URL": "postgres://write/shared"})
    m = mount({"ro": {"env.DATABASE_URL": "local://team/shared#DATABASE_URL",
                      "mode": "0600"}})
    m.expect_log(r".")
    shared = store.raw("team/shared")
    stage, err = sfs.write_file(m.app("ro") / ".env",
                                "DATABASE_URL='postgres://write/shared'\n"
                                "EXTRA='write-extra-value'\n")
    assert err == "EROFS", (stage, err)
    stage, err = sfs.write_file(m.app("ro") / "DATABASE_URL", "x")
    assert err == "EROFS", (stage, err)
    assert store.raw("team/shared") == shared


def test_value_over_64k_is_efbig(billing, store):
    before = store.raw("team/billing")
    billing.expect_log(r".")
    stage, err = sfs.write_file(billing.app("billing") / "DB_PASSWORD",
                                b"v" * (64 * 1024 + 1))
    assert err == "EFBIG", (stage, err)
    assert store.raw("team/billing") == before
    stage, err = sfs.write_file(billing.app("billing") / ".env",
                                "BIG='" + "v" * (64 * 1024 + 1) + "'\n")
    assert err == "EFBIG", (stage, err)
    assert store.raw("team/billing") == before


def test_env_over_1m_is_efbig(billing, store):
    before = store.raw("team/billing")
    billing.expect_log(r".")
    lines = "".join(f"K{i}='{'w' * 1000}'\n" for i in range(1100))
    assert len(lines) > 1024 * 1024
    stage, err = sfs.write_file(billing.app("billing") / ".env", lines)
    assert err == "EFBIG", (stage, err)
    assert store.raw("team/billing") == before


def test_env_over_1m_in_two_writes_is_not_committed(billing, store):
    # The first write() is a valid .env just under 1 MiB; the second takes
    # the file over the limit. Nothing may be committed at close(): not
    # the first part either.
    before = store.raw("team/billing")
    billing.expect_log(r".")
    line = "K{:05d}='{}'\n"
    pad = 1024 - len(line.format(0, ""))
    first = "".join(line.format(i, "x" * pad) for i in range(1023)).encode()
    second = "".join(line.format(i, "y" * pad) for i in range(1023, 1030))
    fd = os.open(billing.app("billing") / ".env", os.O_WRONLY | os.O_TRUNC)
    wrote = sfs.errno_of(os.write, fd, first)
    over = sfs.errno_of(os.write, fd, second.encode())
    closed = sfs.errno_of(os.close, fd)
    assert (wrote, over) == (None, "EFBIG")
    assert closed == "EFBIG", "close() after a failed write must fail"
    assert store.raw("team/billing") == before
    assert sfs.read(billing.app("billing") / "DB_PASSWORD") == b"write-old-db-pw"


def test_value_over_64k_in_two_writes_is_not_committed(billing, store):
    before = store.raw("team/billing")
    billing.expect_log(r".")
    fd = os.open(billing.app("billing") / "DB_PASSWORD", os.O_WRONLY | os.O_TRUNC)
    wrote = sfs.errno_of(os.write, fd, b"a" * (60 * 1024))
    over = sfs.errno_of(os.write, fd, b"b" * (10 * 1024))
    closed = sfs.errno_of(os.close, fd)
    # refusing at write() or only at close() are both fine; committing
    # the first 60 KiB is not
    assert "EFBIG" in (over, closed), (wrote, over, closed)
    assert closed is not None, "close() after a failed write must fail"
    assert store.raw("team/billing") == before


def test_value_of_exactly_64k_is_accepted(billing, store):
    value = "q" * (64 * 1024)
    assert sfs.write_file(billing.app("billing") / "DB_PASSWORD", value) == \
        (None, None)
    assert store.get("team/billing")["DB_PASSWORD"] == value
    assert sfs.read_text(billing.app("billing") / "DB_PASSWORD") == value


# ------------------------------------------------ names longer than a file's

LONG_OLD = "OLD_" + "K" * 296	# 300 bytes, put in the store by another tool


@pytest.fixture
def longs(mount, store):
    store.put("team/long", {"OK": "S3cr3t-long-ok-7c1e",
                            LONG_OLD: "S3cr3t-long-old-7c1e"})
    m = mount({"long": {"store": "local://team/long", "mode": "0600"}})
    m.expect_log(r"^secretfs: warn: app long: key OLD_K{36}\.\.\. \(300 bytes\): "
                 r"longer than a file name can be \(255 bytes\); only in \.env$")
    return m


def test_key_names_over_255_bytes_refused(longs, store):
    """FUSE lets names of up to 1024 bytes through: such keys reached the
    store, and then no file could be listed, read or removed under them."""
    app = longs.app("long")
    before = store.raw("team/long")
    longs.expect_log(r"app long: .*bytes\): a (key )?name is at most 255 bytes")
    for n in (256, 300, 1000, 1024):
        name = "N" * n
        assert sfs.errno_of(os.open, app / name, os.O_WRONLY | os.O_CREAT,
                            0o600) == "ENAMETOOLONG", n
        # mknod creates nothing here at all (ENOSYS), long name or not
        assert sfs.errno_of(os.mknod, app / name, 0o600) is not None, n
    # rename of an editor's scratch file onto a key name
    assert sfs.write_file(app / ".scratch", "S3cr3t-long-new-7c1e") == (None, None)
    assert sfs.errno_of(os.rename, app / ".scratch", app / ("R" * 300)) == \
        "ENAMETOOLONG"
    os.unlink(app / ".scratch")
    # a .env adding one: the commit fails, nothing of it lands
    text = sfs.read_text(app / ".env")
    assert sfs.write_file(app / ".env", text.replace(
        "S3cr3t-long-ok-7c1e", "S3cr3t-long-ok-changed") +
        "E" * 400 + "=S3cr3t-long-env-7c1e\n") == ("close", "ENAMETOOLONG")
    assert store.raw("team/long") == before
    assert any("EEEE" in line and "(400 bytes): a key name is at most 255 bytes"
               in line for line in longs.stderr_text().splitlines()), \
        longs.stderr_text()[-2000:]
    # 255 bytes is a file like any other
    name = "M" * 255
    assert sfs.write_file(app / name, "S3cr3t-long-255-7c1e") == (None, None)
    assert name in os.listdir(app)
    assert sfs.read_text(app / name) == "S3cr3t-long-255-7c1e"
    os.unlink(app / name)
    assert set(store.get("team/long")) == {"OK", LONG_OLD}


def test_key_names_over_255_bytes_in_store_reported(longs, store):
    """One already in the store: reported once, listed in .env only, the
    app's other keys list and read, and an edit of .env keeps it."""
    app = longs.app("long")
    for _ in range(3):
        assert sorted(os.listdir(app)) == [".env", "OK"]
    assert sfs.read_text(app / "OK") == "S3cr3t-long-ok-7c1e"
    assert sfs.parse(sfs.read_text(app / ".env")) == {
        "OK": "S3cr3t-long-ok-7c1e", LONG_OLD: "S3cr3t-long-old-7c1e"}
    warned = [l for l in longs.stderr_text().splitlines() if "warn:" in l]
    assert len(warned) == 1, warned
    text = sfs.read_text(app / ".env").replace("S3cr3t-long-ok-7c1e",
                                               "S3cr3t-long-ok-edited")
    assert sfs.write_file(app / ".env", text) == (None, None)
    assert store.get("team/long") == {"OK": "S3cr3t-long-ok-edited",
                                      LONG_OLD: "S3cr3t-long-old-7c1e"}
