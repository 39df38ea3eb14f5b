"""Local sources through real mounts: the daemon's environment (type = env),
folders of secret files (type = dir: Docker secrets, Kubernetes ..data
volumes) and Fernet-encrypted values (fernet_key on any provider), checked
against Python's cryptography.fernet in both directions.

Run: SECRETFS_BIN=build/secretfs python3 -m pytest tests/integration/test_local_sources.py
"""

import os
import time

import pytest

# whose helpers are imported too: register it for assert rewriting first
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402

fernet = pytest.importorskip("cryptography.fernet")

# Every read reaches the sources: changes show at once.
FRESH = {"ttl": "0", "max_stale": "0"}


def sections(*specs):
    """[provider NAME] text for (name, {option: value}) pairs."""
    out = []
    for name, opts in specs:
        out.append(f"[provider {name}]\n"
                   + "".join(f"{k} = {v}\n" for k, v in opts.items()))
    return out


def local_config(store, apps, *specs, settings=FRESH, local=None):
    """The INI with the `local` file store (its extra options in local),
    the given sections and apps."""
    lines = ["[secretfs]"] + [f"{k} = {v}" for k, v in settings.items()]
    lines += ["", "[provider local]", "type = file", f"directory = {store.dir}"]
    lines += [f"{k} = {v}" for k, v in (local or {}).items()]
    text = "\n".join(lines) + "\n\n" + "\n".join(sections(*specs))
    for name, opts in apps.items():
        text += f"\n[app {name}]\n" + "".join(f"{k} = {v}\n"
                                             for k, v in opts.items())
    return text


def folder(tmp_path, name, files, mode=0o755):
    d = tmp_path / name
    d.mkdir(mode=mode)
    for k, v in files.items():
        (d / k).write_bytes(v.encode() if isinstance(v, str) else v)
    return d


# ------------------------------------------------------------ mixed app

def test_app_mixing_environ_secrets_and_vault(vault_mount, vault, secrets,
                                               monkeypatch, tmp_path):
    db = secrets.add("local-env-db-pw")
    api = secrets.add("local-file-api-key")
    stripe = secrets.add("local-vault-stripe")
    monkeypatch.setenv("SFS_IT_DB_PASSWORD", db)
    vault.put("secret", "billing", {"STRIPE_KEY": stripe})
    d = folder(tmp_path, "run-secrets", {"api_key.txt": api + "\n"})
    m = vault_mount({"billing": {
        "store": "vault://secret/billing", "mode": "0600",
        "env.DB_PASSWORD": "environ://SFS_IT_DB_PASSWORD",
        "env.API_KEY": "secrets://api_key.txt"}},
        extra_sections=sections(
            ("environ", {"type": "env"}),
            ("secrets", {"type": "dir", "directory": d,
                         "trim_newline": "true"})))
    app = m.app("billing")
    assert sfs.parse(sfs.read_text(app / ".env")) == {
        "API_KEY": api, "DB_PASSWORD": db, "STRIPE_KEY": stripe}
    assert sfs.read_text(app / "DB_PASSWORD") == db
    assert sfs.read_text(app / "API_KEY") == api
    # a mapped key is read-only here; the vault store takes writes
    assert sfs.write_file(app / "DB_PASSWORD", "x")[1] == "EROFS"
    m.expect_log(r"DB_PASSWORD comes from environ://SFS_IT_DB_PASSWORD")
    new = secrets.add("local-vault-stripe-2")
    assert sfs.write_file(app / "STRIPE_KEY", new) == (None, None)
    assert vault.get("secret", "billing")["STRIPE_KEY"] == new


# ------------------------------------------------------------ env

def test_env_store_prefix_and_read_only(mount, store, secrets, monkeypatch):
    a = secrets.add("local-env-prefixed-a")
    monkeypatch.setenv("SFSIT_APP_A_KEY", a)
    monkeypatch.setenv("SFSIT_APP_EMPTY", "")
    monkeypatch.setenv("SFSIT_OTHER", "not-in-the-app")
    m = mount(config=local_config(store, {"svc": {"store": "environ://"}},
                                  ("environ", {"type": "env",
                                               "prefix": "SFSIT_APP_"})))
    app = m.app("svc")
    assert sorted(os.listdir(app)) == [".env", "A_KEY", "EMPTY"]
    assert sfs.parse(sfs.read_text(app / ".env")) == {"A_KEY": a, "EMPTY": ""}
    stage, err = sfs.write_file(app / "A_KEY", "changed")
    assert err == "EROFS", (stage, err)
    m.expect_log(r"environ://: environment variables are read-only")


# ------------------------------------------------------------ dir

def test_docker_secret_files_trailing_newlines(mount, store, secrets,
                                               tmp_path):
    pw = secrets.add("local-docker-pw")
    d = folder(tmp_path, "docker", {"db_password": pw + "\n",
                                    "crlf": pw + "\r\n", "exact": pw})
    m = mount(config=local_config(
        store, {"raw": {"store": "raw://"}, "trim": {"store": "trim://"}},
        ("raw", {"type": "dir", "directory": d}),
        ("trim", {"type": "dir", "directory": d, "trim_newline": "true"})))
    assert sfs.read(m.app("raw") / "db_password") == (pw + "\n").encode()
    assert sfs.read(m.app("raw") / "crlf") == (pw + "\r\n").encode()
    for key in ("db_password", "crlf", "exact"):
        assert sfs.read(m.app("trim") / key) == pw.encode()
    assert os.stat(m.app("trim") / "db_password").st_size == len(pw)


def kube_publish(d, ts, files):
    """What kubelet's atomic writer does: a new ..TS folder, ..data swapped
    to it by rename, KEY -> ..data/KEY links, the old folder removed."""
    new = d / ts
    new.mkdir()
    for k, v in files.items():
        (new / k).write_text(v)
    old = os.readlink(d / "..data") if (d / "..data").is_symlink() else None
    os.symlink(ts, d / "..data_tmp")
    os.rename(d / "..data_tmp", d / "..data")
    for k in files:
        if not (d / k).is_symlink():
            os.symlink(f"..data/{k}", d / k)
    if old:
        for f in (d / old).iterdir():
            f.unlink()
        (d / old).rmdir()


def test_kubernetes_volume_swap_one_version_per_open(mount, store, secrets,
                                                     tmp_path):
    v1, v2 = secrets.add("local-kube-v1"), secrets.add("local-kube-v2-longer")
    d = tmp_path / "kube"
    d.mkdir()
    kube_publish(d, "..2024_01_01_00_00_00.1", {"TOKEN": v1, "USER": "svc"})
    m = mount(config=local_config(store, {"k": {"store": "kube://"}},
                                  ("kube", {"type": "dir", "directory": d})))
    app = m.app("k")
    assert sorted(os.listdir(app)) == [".env", "TOKEN", "USER"]
    fd = os.open(app / "TOKEN", os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == v1.encode()
        kube_publish(d, "..2024_01_01_00_01_00.2", {"TOKEN": v2, "USER": "svc"})
        # the open file keeps its version; a new open sees the new one
        assert os.pread(fd, 100, 0) == v1.encode()
        assert sfs.read_text(app / "TOKEN") == v2
        assert os.pread(fd, 100, 0) == v1.encode()
    finally:
        os.close(fd)
    assert sfs.parse(sfs.read_text(app / ".env"))["TOKEN"] == v2
    stage, err = sfs.write_file(app / "USER", "other")
    assert err == "EROFS", (stage, err)
    m.expect_log(r"Kubernetes Secret volume \(\.\.data\) is read-only")


def test_symlink_out_of_the_folder_refused(mount, store, secrets, tmp_path):
    d = folder(tmp_path, "links", {"A": secrets.add("local-link-a")})
    os.symlink("/etc/hostname", d / "HOST")
    m = mount(config=local_config(store, {"s": {"store": "s://"}},
                                  ("s", {"type": "dir", "directory": d})))
    assert sfs.errno_of(sfs.read, m.app("s") / ".env") == "EACCES"
    m.expect_log(r"HOST: a symbolic link; only the Kubernetes \.\.data")


def test_write_through_to_folder(mount, store, secrets, tmp_path):
    keep = secrets.add("local-dir-keep")
    d = folder(tmp_path, "rw", {"KEEP": keep, "GONE": "local-dir-gone"},
               mode=0o700)
    secrets.add("local-dir-gone")
    m = mount(config=local_config(store, {"app": {"store": "rw://",
                                                  "mode": "0600"}},
                                  ("rw", {"type": "dir", "directory": d,
                                          "trim_newline": "true"})))
    app = m.app("app")
    new = secrets.add("local-dir-new-value")
    assert sfs.write_file(app / "NEW", new) == (None, None)
    assert (d / "NEW").read_text() == new + "\n"	# echo's newline
    assert (d / "NEW").stat().st_mode & 0o777 == 0o600
    # a .env without GONE removes its file; KEEP's file is not rewritten
    ino = (d / "KEEP").stat().st_ino
    text = sfs.render({"KEEP": keep, "NEW": new})
    assert sfs.write_file(app / ".env", text) == (None, None)
    assert sorted(p.name for p in d.iterdir()) == ["KEEP", "NEW"]
    assert (d / "KEEP").stat().st_ino == ino
    assert sfs.read_text(app / "NEW") == new
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_control_characters_in_names_logged_escaped(vault_mount, vault,
                                                    secrets):
    """A key named with a newline (a JSON key in a Vault secret, or a name
    the kernel passes) is logged escaped: it can neither split its line nor
    forge one; a backslash is doubled so the escaped form is unambiguous."""
    val = secrets.add("S3cr3t-ctl-41d7")
    forged = "BAD\nsecretfs: error: forged line"
    vault.put("secret", "ctl", {forged: val, "B\\S\x1b[1m": val, "OK": val})
    m = vault_mount({"s": {"store": "vault://secret/ctl"}})
    assert sfs.parse(sfs.read_text(m.app("s") / ".env")) == {"OK": val}
    # a name from the kernel, logged (at debug) by the lookup
    assert sfs.errno_of(os.stat, m.app("s") / "X\nsecretfs: error: forged 2") \
        == "ENOENT"
    log = m.stderr_text()
    lines = log.splitlines()
    assert not [l for l in lines if "forged" in l and not
                l.startswith(("secretfs: warn: ", "secretfs: debug: "))], log
    assert any(l.startswith("secretfs: warn: app s: key BAD\\nsecretfs: error: "
                            "forged line: not a valid") for l in lines), log
    assert any(l.startswith("secretfs: warn: app s: key B\\\\S\\x1b[1m: not a "
                            "valid") for l in lines), log
    assert any(l.endswith("X\\nsecretfs: error: forged 2") for l in lines), log
    assert "\x1b" not in log
    m.expect_log(r"^secretfs: warn: app s: key B(AD|\\\\S).*: not a valid "
                 r"environment variable name; only in its own file$")


# ------------------------------------------------------------ Fernet

@pytest.fixture
def fkey(secrets, monkeypatch):
    key = fernet.Fernet.generate_key().decode()
    secrets.add(key)
    monkeypatch.setenv("SFS_IT_FERNET_KEY", key)
    return fernet.Fernet(key)


def test_fernet_values_in_file_store(mount, store, secrets, fkey):
    pw, other = secrets.add("local-fernet-pw"), secrets.add("local-fernet-2")
    tokens = {"DB_PASSWORD": fkey.encrypt(pw.encode()).decode(),
              "OTHER": fkey.encrypt(other.encode()).decode()}
    store.put("team/billing", tokens)
    m = mount(config=local_config(
        store, {"billing": {"store": "local://team/billing", "mode": "0600"}},
        ("environ", {"type": "env"}),
        local={"fernet_key": "environ://SFS_IT_FERNET_KEY",
               "fernet_ttl": "1h"}))
    app = m.app("billing")
    assert sfs.parse(sfs.read_text(app / ".env")) == {"DB_PASSWORD": pw,
                                                       "OTHER": other}
    assert sfs.read_text(app / "DB_PASSWORD") == pw
    new = secrets.add("local-fernet-new")
    assert sfs.write_file(app / "DB_PASSWORD", new) == (None, None)
    stored = store.get("team/billing")
    secrets.add(stored["DB_PASSWORD"])
    assert new not in store.raw("team/billing").decode()
    assert fkey.decrypt(stored["DB_PASSWORD"].encode(), ttl=60) == new.encode()
    assert stored["OTHER"] == tokens["OTHER"]	# unchanged: its token kept
    assert sfs.read_text(app / "DB_PASSWORD") == new


def test_fernet_values_in_vault_key_from_a_file(vault_mount, vault, secrets,
                                                tmp_path, fkey):
    pw = secrets.add("local-fernet-vault-pw")
    vault.put("secret", "billing",
              {"DB_PASSWORD": fkey.encrypt(pw.encode()).decode()})
    d = folder(tmp_path, "keys",
               {"fernet.key": os.environ["SFS_IT_FERNET_KEY"] + "\n"})
    m = vault_mount({"billing": {"store": "vault://secret/billing",
                                 "mode": "0600"}},
                    fernet_key="keys://fernet.key",
                    extra_sections=sections(
                        ("keys", {"type": "dir", "directory": d})))
    app = m.app("billing")
    assert sfs.read_text(app / "DB_PASSWORD") == pw
    new = secrets.add("local-fernet-vault-new")
    assert sfs.write_file(app / "NEW_KEY", new) == (None, None)
    data = vault.get("secret", "billing")
    assert fkey.decrypt(data["NEW_KEY"].encode()) == new.encode()
    assert fkey.decrypt(data["DB_PASSWORD"].encode()) == pw.encode()
    assert sfs.parse(sfs.read_text(app / ".env")) == {"DB_PASSWORD": pw,
                                                       "NEW_KEY": new}


def fernet_mount(mount, store, tokens):
    store.put("team/billing", tokens)
    return mount(config=local_config(
        store, {"billing": {"store": "local://team/billing", "mode": "0600"}},
        ("environ", {"type": "env"}),
        local={"fernet_key": "environ://SFS_IT_FERNET_KEY"}))


def test_fernet_wrong_key_refused(mount, store, secrets, fkey):
    pw = secrets.add("local-fernet-wrong-key-pw")
    other = fernet.Fernet(fernet.Fernet.generate_key())
    m = fernet_mount(mount, store,
                     {"DB_PASSWORD": other.encrypt(pw.encode()).decode()})
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "DB_PASSWORD") == "EIO"
    m.expect_log(r"local://team/billing#DB_PASSWORD: Fernet token does not "
                 r"verify .*\(fernet_key environ://SFS_IT_FERNET_KEY\)")


def test_fernet_tampered_token_refused_all_or_nothing(mount, store, secrets,
                                                      fkey):
    good, pw = secrets.add("local-fernet-good"), secrets.add("local-fernet-t")
    token = fkey.encrypt(pw.encode()).decode()
    mid = len(token) // 2
    tampered = token[:mid] + ("A" if token[mid] != "A" else "B") + \
        token[mid + 1:]
    m = fernet_mount(mount, store, {
        "GOOD": fkey.encrypt(good.encode()).decode(), "BAD": tampered})
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "BAD") == "EIO"
    # per-key files fail one by one
    assert sfs.read_text(app / "GOOD") == good
    m.expect_log(r"local://team/billing#BAD: Fernet token does not verify")


def test_fernet_key_not_a_key(mount, store, secrets, monkeypatch):
    monkeypatch.setenv("SFS_IT_FERNET_KEY", "too-short")
    m = fernet_mount(mount, store, {"A": "gAAAA"})
    assert sfs.errno_of(sfs.read, m.app("billing") / "A") == "EIO"
    m.expect_log(r"fernet_key environ://SFS_IT_FERNET_KEY: not a Fernet key: "
                 r"32 bytes in URL-safe base64")
