"""secretfs on 1Password Connect: real mounts whose [provider op] talks to
the emulator (tests/emulators/opconnect.py) with native op:// references.
An item as an app's store (fields in sections, attachments, labels left
out), one field mapped into two apps and followed live, a field in a
section, an attachment's exact bytes, attributes, names with spaces and
IDs, generated values and .env edits written into the item (everything
else in it untouched), a new item created, ambiguous titles, a revoked
token, and the title cache after a rename.

The daemon runs with ttl = 0 and max_stale = 0: every read reaches the
emulator, and a failing source fails the read. The token comes from a
token_file (0600); OP_CONNECT_* variables of the test process are
removed.
"""

import contextlib
import json
import os
import threading
import time
import urllib.request
import re
import subprocess

import pytest

pytest.register_assert_rewrite("op_fixtures")
pytest_plugins = ["op_fixtures"]

import sfs  # noqa: E402

SETTINGS = {"ttl": "0", "max_stale": "0", "request_timeout": "10s"}
CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\x00\xff binary\r\n-----END\n"


# ------------------------------------------------------------ fixtures

def provider_section(emu, token_file, name="op", **opts):
    base = {"type": "1password-connect", "host": emu.url,
            "token_file": token_file}
    base.update(opts)
    return f"[provider {name}]\n" + "".join(
        f"{k} = {v}\n" for k, v in base.items() if v is not None)


def config_text(store_dir, section, apps, settings=None):
    lines = ["# written by tests/integration (1password)", "[secretfs]"]
    lines += [f"{k} = {v}" for k, v in {**SETTINGS, **(settings or {})}
              .items()]
    lines += ["", "[provider local]", "type = file",
              f"directory = {store_dir}", ""]
    text = "\n".join(lines) + "\n" + section
    for name, opts in apps.items():
        text += f"\n[app {name}]\n" + "".join(f"{k} = {v}\n"
                                              for k, v in opts.items())
    return text


@contextlib.contextmanager
def no_op_environment():
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.startswith("OP_"):
                del os.environ[k]
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def op_mount(op, mount, store, tmp_path):
    """Factory: op_mount(apps, emu=None, token=None, settings=None,
    **provider_opts) -> sfs.Mount. It takes op before mount so the
    emulator stops after every daemon has unmounted."""
    count = [0]

    def start(apps, emu=None, token=None, settings=None, **opts):
        emu = emu or op
        count[0] += 1
        tok = tmp_path / f"op-token-{count[0]}"
        tok.write_text((token or emu.token) + "\n")
        tok.chmod(0o600)
        with no_op_environment():
            return mount(config=config_text(
                store.dir, provider_section(emu, tok, **opts), apps,
                settings))

    return start


def billing_item(emu, vault="Team", title="billing"):
    """An item with plain fields, a section, a label that is no key name,
    a label two fields share, an attachment, tags and urls."""
    if vault not in emu.vaults().values():
        emu.add_vault(vault)
    return emu.add_item(
        vault, title, category="LOGIN", tags=["prod"],
        urls=["https://billing.example"], sections=["Prod DB", "Other"],
        fields=[{"label": "username", "value": "op-bill-user",
                 "purpose": "USERNAME"},
                {"label": "password", "value": "op-bill-pw 'q'",
                 "type": "CONCEALED", "purpose": "PASSWORD"},
                {"label": "DB_HOST", "value": "op-db.example",
                 "section": "Prod DB"},
                {"label": "API key", "value": "op-api-key-unnamed"},
                {"label": "port", "value": "5432", "section": "Prod DB"},
                {"label": "port", "value": "6432", "section": "Other"}],
        files=[("cert.pem", CERT)])


def other_client(emu, method, path, body):
    """Another Connect client's request; its HTTP status."""
    req = urllib.request.Request(
        emu.url + path, method=method, data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + emu.token,
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def app_of(store="op://Team/billing", **extra):
    return {"billing": {"store": store, "mode": "0600", **extra}}


# ----------------------------------------------------------------- reads

def test_store_is_an_item(op, op_mount, secrets):
    for v in ("op-bill-user", "op-bill-pw 'q'", "op-db.example",
              "op-api-key-unnamed", "5432", "6432"):
        secrets.add(v)
    billing_item(op)
    m = op_mount(app_of())
    m.expect_log(r"left out, labels that are not key names: 'API key', "
                 r"labels more than one field or file has: 'port'")
    m.expect_log(r"left out of \.env|not a valid environment name|cert\.pem")
    app = m.app("billing")
    keys = {"username": "op-bill-user", "password": "op-bill-pw 'q'",
            "DB_HOST": "op-db.example"}
    for k, v in keys.items():
        assert sfs.read(app / k) == v.encode(), k
    # the attachment: a per-key file with the exact bytes
    assert sfs.read(app / "cert.pem") == CERT
    assert os.stat(app / "cert.pem").st_size == len(CERT)
    assert sorted(os.listdir(app)) == sorted(
        [".env", "cert.pem", *keys])
    assert sfs.read_text(app / ".env") == sfs.render(keys)
    # reported once per item version, naming the labels, never values
    assert len(re.findall(r"left out", m.stderr_text())) == 1
    # names were resolved with the filter, once: the IDs are cached
    assert op.count_op("ListVaults") == 1
    assert op.count_op("ListItems") == 1
    lv = op.calls("ListVaults")[0]
    assert 'title eq "Team"' in lv.qs("filter")


def test_field_mapped_into_two_apps_live(op, op_mount, secrets):
    op.add_vault("Shared")
    iid = op.add_item("Shared", "postgres", fields=[
        {"label": "password", "value": secrets.add("op-shared-pw-1"),
         "type": "CONCEALED"}])
    m = op_mount({
        "billing": {"env.DB_PASSWORD": "op://Shared/postgres/password"},
        "shop": {"env.PG_PASS": "op://shared/POSTGRES/Password"}})
    assert sfs.read(m.app("billing") / "DB_PASSWORD") == b"op-shared-pw-1"
    assert sfs.read(m.app("shop") / "PG_PASS") == b"op-shared-pw-1"
    op.set_field("Shared", iid, "password", "op-shared-pw-2")
    assert sfs.read(m.app("billing") / "DB_PASSWORD") == b"op-shared-pw-2"
    assert sfs.read_text(m.app("shop") / ".env") == \
        "PG_PASS='op-shared-pw-2'\n"
    # one item read per app and read: no name lookups after the first
    assert op.count_op("ListItems") <= 2


def test_section_field_attachment_attributes_and_ids(op, op_mount, secrets):
    vid = op.add_vault("My Vault")
    iid = op.add_item("My Vault", "tls cert", sections=["prod env"], fields=[
        {"label": "host name", "value": secrets.add("op-sect-host"),
         "section": "prod env"},
        {"label": "host name", "value": secrets.add("op-other-host")}],
        files=[("cert.pem", CERT)])
    item = op.item(vid, iid)
    fid = next(f["id"] for f in item["fields"]
               if f.get("section"))
    m = op_mount({"billing": {
        "env.HOST": "op://My%20Vault/tls%20cert/prod%20env/host%20name",
        "env.BY_ID": f"op://{vid}/{iid}/{fid}",
        "env.CERT": "op://My%20Vault/tls%20cert/cert.pem",
        "env.CERT_SIZE": "op://My%20Vault/tls%20cert/cert.pem?attribute=size",
        "env.HOST_TYPE":
            "op://My%20Vault/tls%20cert/prod%20env/host%20name?attribute=type",
        "env.AMBIG": "op://My%20Vault/tls%20cert/host%20name"}})
    app = m.app("billing")
    assert sfs.read(app / "HOST") == b"op-sect-host"
    assert sfs.read(app / "BY_ID") == b"op-sect-host"
    assert sfs.read(app / "CERT") == CERT
    assert sfs.read(app / "CERT_SIZE") == str(len(CERT)).encode()
    assert sfs.read(app / "HOST_TYPE") == b"STRING"
    # two fields with that label, no section named: an error naming both
    m.expect_log(r"names two fields")
    assert sfs.errno_of(sfs.read, app / "AMBIG") == "EIO"
    ids = sorted(f["id"] for f in item["fields"])
    assert re.search(rf"names two fields, ({ids[0]}|{ids[1]}) and "
                     rf"({ids[0]}|{ids[1]})", m.stderr_text())
    # .env holds the NUL-free values; the binary certificate is escaped
    m.expect_log(r"CERT")


def test_bad_reference_is_a_config_error(op, tmp_path):
    cfg = tmp_path / "secretfs.conf"
    tok = tmp_path / "tok"
    tok.write_text(op.token)
    tok.chmod(0o600)
    text = config_text(tmp_path, provider_section(op, tok), {
        "billing": {"env.X": "op://Team/item/s/f/extra"}})
    cfg.write_text(text)
    line = text.splitlines().index("env.X = op://Team/item/s/f/extra") + 1
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run([str(sfs.BIN), "-f", "-o", f"config={cfg}",
                          str(mnt)], capture_output=True, text=True,
                         timeout=20, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert f"{cfg}:{line}: " in res.stderr
    assert "at most 4 segments" in res.stderr
    assert op.requests == []


# ---------------------------------------------------------------- writes

def test_generated_values_written_into_the_item(op, op_mount, secrets):
    iid = billing_item(op)
    before = op.item("Team", iid)
    m = op_mount(app_of(**{"env.SECRET_KEY": "generate:hex:16"}))
    m.expect_log(r"left out|cert\.pem")
    app = m.app("billing")
    val = sfs.read(app / "SECRET_KEY")
    secrets.add(val.decode())
    assert re.fullmatch(rb"[0-9a-f]{32}", val)
    after = op.item("Team", iid)
    new = [f for f in after["fields"] if f["label"] == "SECRET_KEY"]
    assert len(new) == 1 and new[0]["value"] == val.decode()
    assert new[0]["type"] == "CONCEALED" and "section" not in new[0]
    # everything else as it was
    assert after["fields"][:len(before["fields"])] == before["fields"]
    for k in ("title", "category", "tags", "urls", "sections", "files",
              "createdAt"):
        assert after[k] == before[k], k
    assert after["version"] == before["version"] + 1
    assert op.count_op("UpdateItem") == 0
    assert op.count_op("PatchItem") == 1
    patch = op.calls("PatchItem")[0]
    assert patch.path == f"/v1/vaults/{op.vault_id('Team')}/items/{iid}"
    ops = json.loads(patch.body)
    assert [(o["op"], o["path"]) for o in ops] == [("add", "/fields")]
    # served again from the item, not generated anew
    assert sfs.read(app / "SECRET_KEY") == val


def test_env_edit_updates_only_changed_fields(op, op_mount, secrets):
    iid = billing_item(op)
    before = op.item("Team", iid)
    m = op_mount(app_of())
    m.expect_log(r"left out|cert\.pem")
    app = m.app("billing")
    text = sfs.read_text(app / ".env")
    text = text.replace("op-bill-user", secrets.add("op-new-user"))
    text = text.replace("DB_HOST='op-db.example'\n", "")
    text += "ADDED='" + secrets.add("op-added-value") + "'\n"
    sfs.write_file(app / ".env", text.encode())
    after = op.item("Team", iid)
    byid = {f["id"]: f for f in after["fields"]}
    old = {f["id"]: f for f in before["fields"]}
    # changed: username; removed: DB_HOST; added: ADDED
    assert byid["username"]["value"] == "op-new-user"
    assert byid["username"]["purpose"] == "USERNAME"
    host_id = next(f["id"] for f in before["fields"]
                   if f["label"] == "DB_HOST")
    assert host_id not in byid
    added = [f for f in after["fields"] if f["label"] == "ADDED"]
    assert added and added[0]["value"] == "op-added-value"
    # untouched: password, the unnamed label, both ports, their sections
    for fid, f in old.items():
        if fid not in ("username", host_id):
            assert byid[fid] == f, fid
    for k in ("title", "category", "tags", "urls", "sections", "files"):
        assert after[k] == before[k], k
    assert sfs.read(app / "cert.pem") == CERT
    assert sfs.read(app / "ADDED") == b"op-added-value"


def test_key_file_write_and_attachment_refused(op, op_mount, secrets):
    op.add_vault("Team")
    iid = op.add_item("Team", "billing", fields=[
        ("password", secrets.add("op-pw-old"))],
        files=[("TLS_CERT", CERT)])
    m = op_mount(app_of())
    m.expect_log(r"TLS_CERT")
    app = m.app("billing")
    assert sfs.read(app / "TLS_CERT") == CERT
    assert sfs.write_file(app / "password",
                          secrets.add("op-pw-new").encode()) == (None, None)
    assert op.field("Team", iid, "password") == "op-pw-new"
    # Connect cannot upload files: changing or removing one is refused
    m.expect_log(r"TLS_CERT is a file attached to the item; 1Password "
                 r"Connect cannot change attachments")
    assert sfs.write_file(app / "TLS_CERT", b"x") == ("close", "EROFS")
    m.expect_log(r"cannot remove attachments")
    assert sfs.errno_of(os.unlink, app / "TLS_CERT") == "EROFS"
    assert op.item("Team", iid)["files"][0]["size"] == len(CERT)
    assert op.count_op("PatchItem") == 1


def test_new_item_created_in_category(op, op_mount, secrets):
    op.add_vault("Team")
    m = op_mount(app_of("op://Team/new%20app",
                        **{"env.TOKEN": "generate:password:24"}),
                 category="API_CREDENTIAL")
    val = sfs.read(m.app("billing") / "TOKEN")
    secrets.add(val.decode())
    ids = op.items("Team", "new app")
    assert len(ids) == 1
    item = op.item("Team", ids[0])
    assert item["category"] == "API_CREDENTIAL"
    assert [(f["label"], f["value"]) for f in item["fields"]] == \
        [("TOKEN", val.decode())]
    assert op.count_op("CreateItem") == 1


def test_concurrent_change_to_another_field_survives(op, op_mount, secrets):
    """A write patches only its own fields: a change someone makes to
    another field between secretfs's read and its write is kept (a whole
    item PUT would have undone it)."""
    iid = billing_item(op)
    m = op_mount(app_of())
    m.expect_log(r"left out|cert\.pem")
    app = m.app("billing")
    assert sfs.read(app / "password") == b"op-bill-pw 'q'"
    op.faults.latency(1.0, method="PATCH", n=1)
    result = {}
    writer = threading.Thread(target=lambda: result.update(w=sfs.write_file(
        app / "username", secrets.add("op-race-user").encode())))
    writer.start()
    deadline = time.monotonic() + 5
    while op.count_op("PatchItem") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    op.set_field("Team", iid, "password", secrets.add("op-race-pw"))
    writer.join(10)
    assert result["w"] == (None, None)
    assert op.field("Team", iid, "username") == "op-race-user"
    assert op.field("Team", iid, "password") == "op-race-pw"
    assert sfs.read(app / "password") == b"op-race-pw"


def test_field_removed_meanwhile_is_a_lost_race(op, op_mount, secrets):
    """A patch naming a field someone removed since the read is refused
    (400); the item moved on, so it is a lost race: redone on top."""
    iid = billing_item(op)
    m = op_mount(app_of())
    m.expect_log(r"left out|cert\.pem")
    app = m.app("billing")
    op.faults.latency(1.0, method="PATCH", n=1)
    result = {}
    writer = threading.Thread(target=lambda: result.update(w=sfs.write_file(
        app / "username", secrets.add("op-late-user").encode())))
    writer.start()
    deadline = time.monotonic() + 5
    while op.count_op("PatchItem") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    # another client removes the field secretfs is about to patch
    assert other_client(op, "PATCH", f"/v1/vaults/{op.vault_id('Team')}"
                        f"/items/{iid}", [{"op": "remove",
                                           "path": "/fields/username"}]) \
        == 200
    writer.join(10)
    assert result["w"] == (None, None)
    assert op.field("Team", iid, "username") == "op-late-user"
    # ours refused, theirs, ours redone on top (the field added anew)
    assert [r.status for r in op.calls("PatchItem")] == [400, 200, 200]


# ---------------------------------------------------------------- errors

def test_ambiguous_titles_name_both_ids(op, op_mount, secrets):
    op.add_vault("Team")
    a = op.add_item("Team", "dup", fields=[("A", secrets.add("op-dup-a"))])
    b = op.add_item("Team", "DUP", fields=[("A", secrets.add("op-dup-b"))])
    op.filter_case_insensitive = True
    m = op_mount({"billing": {"env.A": "op://Team/dup/A"}})
    m.expect_log(r"two items are named 'dup'")
    assert sfs.errno_of(sfs.read, m.app("billing") / "A") == "EIO"
    line = re.search(r"two items are named 'dup': (\w+) and (\w+)",
                     m.stderr_text())
    assert line and {line.group(1), line.group(2)} == {a, b}
    # by ID it reads
    m2 = op_mount({"billing": {"env.A": f"op://Team/{b}/A"}})
    assert sfs.read(m2.app("billing") / "A") == b"op-dup-b"


def test_case_insensitive_names_without_server_help(op, op_mount, secrets):
    """title eq matches exactly on Connect: the unfiltered list is
    searched without regard to case."""
    op.add_vault("Team")
    op.add_item("Team", "Billing", fields=[("A", secrets.add("op-ci-a"))])
    m = op_mount({"billing": {"env.A": "op://TEAM/billing/a"}})
    assert sfs.read(m.app("billing") / "A") == b"op-ci-a"


def test_revoked_token(op, op_mount, secrets):
    billing_item(op)
    tok = op.add_token()
    m = op_mount(app_of(), token=tok)
    m.expect_log(r"left out|cert\.pem")
    assert sfs.read(m.app("billing") / "password") == b"op-bill-pw 'q'"
    op.revoke(tok)
    m.expect_log(r"1password op: .*refused the token \(HTTP 401: "
                 r"Invalid bearer token\); token from token_file")
    m.expect_log(r"op://Team/billing")
    assert sfs.errno_of(sfs.read, m.app("billing") / "password") == "EACCES"
    assert sfs.errno_of(sfs.read, m.app("billing") / "password") == "EACCES"
    warns = re.findall(r"secretfs: warn: 1password op: .*refused the token.*",
                       m.stderr_text())
    assert len(warns) == 1, warns      # once a minute at most
    # it names the item and where the token came from, never the token
    assert "Team/billing: " in warns[0]
    assert "token from token_file " in warns[0]
    assert tok not in m.stderr_text()


def test_vault_outside_the_token(op, op_mount, secrets):
    """Connect lists only the token's vaults: by name such a vault is not
    there (ENOENT); by ID it is refused (EACCES)."""
    billing_item(op)
    vid = op.vault_id("Team")
    op.add_vault("Other")
    tok = op.add_token(vaults=["Other"])
    m = op_mount({"billing": {"env.PW": "op://Team/billing/password"},
                  "shop": {"env.PW": f"op://{vid}/billing/password"}},
                 token=tok)
    m.expect_log(r"no vault named 'Team' that the token can see")
    m.expect_log(r"access denied by 1Password Connect \(HTTP 403")
    assert sfs.errno_of(sfs.read, m.app("billing") / "PW") == "EIO"
    assert sfs.errno_of(sfs.read, m.app("shop") / "PW") == "EACCES"


def test_title_cache_follows_a_rename(op, op_mount, secrets):
    op.add_vault("Team")
    first = op.add_item("Team", "db", fields=[
        ("password", secrets.add("op-first-pw"))])
    m = op_mount({"billing": {"env.PW": "op://Team/db/password"}})
    assert sfs.read(m.app("billing") / "PW") == b"op-first-pw"
    lists = op.count_op("ListItems")
    # renamed away, and another item takes the title
    op.set_title("Team", first, "db-old")
    op.add_item("Team", "db", fields=[
        ("password", secrets.add("op-second-pw"))])
    assert sfs.read(m.app("billing") / "PW") == b"op-second-pw"
    assert op.count_op("ListItems") > lists
    # deleted: the cached ID 404s, the name is looked up again
    second = op.items("Team", "db")[0]
    op.delete_item("Team", second)
    third = op.add_item("Team", "db", fields=[
        ("password", secrets.add("op-third-pw"))])
    assert third != second
    assert sfs.read(m.app("billing") / "PW") == b"op-third-pw"


def test_rate_limits_retried_garbage_is_eio(op, op_mount, secrets):
    op.add_vault("Team")
    op.add_item("Team", "billing", fields=[("A", secrets.add("op-retry-a"))])
    m = op_mount({"billing": {"env.A": "op://Team/billing/A"}})
    app = m.app("billing")
    assert sfs.read(app / "A") == b"op-retry-a"
    # 429 and 5xx: retried by the HTTP layer, the read succeeds
    op.faults.rate_limit_next(1, retry_after=1, path=r"/items/")
    op.faults.fail_next(1, 503, path=r"/items/")
    assert sfs.read(app / "A") == b"op-retry-a"
    # an answer that is no item: EIO and a log line, no crash
    for kind, why in (("truncated", "the answer is not JSON"),
                      ("wrong-types", "not an item with an ID")):
        op.faults.garbage_next(1, kind, path=r"/items/")
        m.expect_log(rf"op://Team/billing/A: garbage from 1Password "
                     rf"Connect: {why}")
        assert sfs.errno_of(sfs.read, app / "A") == "EIO", kind
    assert sfs.read(app / "A") == b"op-retry-a"
