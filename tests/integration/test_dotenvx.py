"""dotenvx end to end through real mounts, against the real dotenvx CLI
(npm @dotenvx/dotenvx in tests/node): files it encrypts are read through the
mount; what secretfs writes, its encrypted views and the keys it generates
are decrypted by `dotenvx get`; a key pair that drifted apart is refused.

Run: SECRETFS_BIN=build/secretfs python3 -m pytest tests/integration/test_dotenvx.py
"""

import json
import os
import pathlib
import subprocess

import pytest

import sfs

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOTENVX = ROOT / "tests/node/node_modules/.bin/dotenvx"

# Every read reaches the sources: changes show at once.
FRESH = {"ttl": "0", "max_stale": "0"}

pytestmark = pytest.mark.skipif(
    not DOTENVX.exists(), reason="dotenvx CLI missing: run scripts/deps")


def dotenvx(*args, cwd, env=None):
    """Run the dotenvx CLI; its stdout."""
    full = dict(os.environ, DOTENVX_NO_UPDATE_CHECK="1", NO_COLOR="1")
    full.update(env or {})
    r = subprocess.run([str(DOTENVX), *args], cwd=cwd, env=full,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"dotenvx {args}: {r.stderr}"
    return r.stdout


def dotenvx_get(path, private_key, name="DOTENV_PRIVATE_KEY_PRODUCTION"):
    """Every variable of an encrypted file, as dotenvx decrypts it with the
    private key in the environment."""
    path = pathlib.Path(path)
    out = dotenvx("get", "-f", str(path), "--format", "json",
                  cwd=path.parent, env={name: private_key})
    return json.loads(out)


def keys_of(keys_file):
    return sfs.parse(pathlib.Path(keys_file).read_text())


@pytest.fixture
def repo(tmp_path, secrets):
    """A checkout with services/myapp/.env.production encrypted by the
    dotenvx CLI; returns (folder, values, private key)."""
    d = tmp_path / "repo" / "services" / "myapp"
    d.mkdir(parents=True)
    values = {"DB_PASSWORD": secrets.add("dx-db-password"),
              "API_TOKEN": secrets.add("dx-api-token 'quoted'"),
              "MULTI": secrets.add("dx-line-one\ndx-line-two")}
    (d / ".env.production").write_text(
        "# myapp production\n"
        f"DB_PASSWORD={values['DB_PASSWORD']}\n"
        f"API_TOKEN=\"{values['API_TOKEN']}\"\n"
        "PORT=8080\n"
        f"MULTI=\"{values['MULTI']}\"\n")
    dotenvx("encrypt", "-f", ".env.production", "-k", "DB_PASSWORD",
            "-k", "API_TOKEN", "-k", "MULTI", cwd=d)
    key = keys_of(d / ".env.keys")["DOTENV_PRIVATE_KEY_PRODUCTION"]
    secrets.add(key)
    (d / ".env.keys").unlink()	# the key lives in the "vault" only
    values["PORT"] = "8080"
    return d, values, key


def dx_config(tmp_path, store, key_ref, apps, extra=""):
    return sfs.config_text(store.dir, apps, FRESH, extra=(
        "\n[provider environ]\ntype = env\n"
        "\n[provider repo]\ntype = dotenvx\n"
        f"directory = {tmp_path / 'repo'}\nprivate_key = {key_ref}\n" + extra))


@pytest.fixture
def dx_mount(mount, store, tmp_path, monkeypatch):
    def start(key, apps=None, key_ref="environ://SFS_IT_DX_KEY"):
        monkeypatch.setenv("SFS_IT_DX_KEY", key)
        apps = apps or {"myapp": {
            "store": "repo://services/myapp/.env.production", "mode": "0600"}}
        return mount(config=dx_config(tmp_path, store, key_ref, apps))
    return start


# ------------------------------------------------------------ the store

def test_cli_encrypted_file_read_through_the_mount(dx_mount, repo):
    d, values, key = repo
    text = (d / ".env.production").read_text()
    assert "encrypted:" in text and values["DB_PASSWORD"] not in text
    m = dx_mount(key)
    app = m.app("myapp")
    assert sfs.parse(sfs.read_text(app / ".env")) == values
    assert sfs.read_text(app / "MULTI") == values["MULTI"]
    assert sfs.read_text(app / "PORT") == "8080"	# plaintext passes
    # the public key line names the key pair; it is no value of the app
    assert "DOTENV_PUBLIC_KEY_PRODUCTION" not in os.listdir(app)


def test_write_changes_only_the_changed_ciphertext(dx_mount, repo, secrets):
    d, values, key = repo
    f = d / ".env.production"
    before = f.read_text().splitlines(keepends=True)
    m = dx_mount(key)
    app = m.app("myapp")
    new = secrets.add("dx-db-password-rotated")
    assert sfs.write_file(app / "DB_PASSWORD", new) == (None, None)
    after = f.read_text().splitlines(keepends=True)
    assert new not in "".join(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(after) == len(before) and len(changed) == 1
    assert changed[0][0].startswith("DB_PASSWORD=encrypted:")
    assert changed[0][1].startswith("DB_PASSWORD=encrypted:")
    secrets.add(changed[0][1])
    assert dotenvx_get(f, key) == dict(
        values, DB_PASSWORD=new,
        DOTENV_PUBLIC_KEY_PRODUCTION=dotenvx_get(f, key)[
            "DOTENV_PUBLIC_KEY_PRODUCTION"])
    assert sfs.read_text(app / "DB_PASSWORD") == new


def test_editing_env_adds_and_removes_keys(dx_mount, repo, secrets):
    d, values, key = repo
    f = d / ".env.production"
    m = dx_mount(key)
    app = m.app("myapp")
    added = secrets.add("dx-added-value")
    edited = dict(values, NEW_KEY=added)
    del edited["API_TOKEN"]
    assert sfs.write_file(app / ".env", sfs.render(edited)) == (None, None)
    text = f.read_text()
    assert added not in text and "API_TOKEN" not in text
    assert text.startswith("#/-------------------[DOTENV_PUBLIC_KEY]")
    assert "# myapp production\n" in text
    got = dotenvx_get(f, key)
    del got["DOTENV_PUBLIC_KEY_PRODUCTION"]
    assert got == edited
    assert sfs.parse(sfs.read_text(app / ".env")) == edited


def test_mismatched_key_is_refused(dx_mount, repo, tmp_path):
    d, values, _ = repo
    other = tmp_path / "other"
    other.mkdir()
    (other / ".env.production").write_text("X=1\n")
    dotenvx("encrypt", "-f", ".env.production", cwd=other)
    wrong = keys_of(other / ".env.keys")["DOTENV_PRIVATE_KEY_PRODUCTION"]
    m = dx_mount(wrong)
    app = m.app("myapp")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "PORT") == "EIO"
    # and nothing is written with it
    assert sfs.write_file(app / "PORT", "9090")[1] == "EIO"
    assert "PORT=8080" in (d / ".env.production").read_text()
    m.expect_log(r"repo://services/myapp/\.env\.production: "
                 r"DOTENV_PUBLIC_KEY_PRODUCTION is 0[23][0-9a-f]{64}, but "
                 r"private_key environ://SFS_IT_DX_KEY is the key of "
                 r"0[23][0-9a-f]{64}: the file and the key are not one key "
                 r"pair")


def test_value_that_does_not_decrypt_fails_the_read(dx_mount, repo):
    d, values, key = repo
    f = d / ".env.production"
    lines = f.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("DB_PASSWORD=encrypted:"):
            # a byte of the ciphertext: the end, before any padding
            at = len(line.rstrip("\n").rstrip("=")) - 2
            c = "A" if line[at] != "A" else "B"
            lines[i] = line[:at] + c + line[at + 1:]
    f.write_text("".join(lines))
    m = dx_mount(key)
    app = m.app("myapp")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert sfs.errno_of(sfs.read, app / "DB_PASSWORD") == "EIO"
    assert sfs.read_text(app / "PORT") == "8080"	# per-key files one by one
    m.expect_log(r"repo://services/myapp/\.env\.production#DB_PASSWORD: does "
                 r"not decrypt with this private key .*\(private_key "
                 r"environ://SFS_IT_DX_KEY, public key 0[23][0-9a-f]{64}\)")


def test_new_file_created_as_dotenvx_would(dx_mount, repo, secrets, tmp_path):
    _, _, key = repo
    m = dx_mount(key, apps={"staging": {
        "store": "repo://services/myapp/.env.production.new",
        "mode": "0600"}})
    v = secrets.add("dx-new-file-value")
    assert sfs.write_file(m.app("staging") / "SECRET", v) == (None, None)
    f = tmp_path / "repo/services/myapp/.env.production.new"
    text = f.read_text()
    assert v not in text
    assert "DOTENV_PUBLIC_KEY_PRODUCTION_NEW=" in text
    got = dotenvx_get(f, key, name="DOTENV_PRIVATE_KEY_PRODUCTION_NEW")
    assert got["SECRET"] == v


# ------------------------------------------------ generated keys, views

def test_generated_key_and_encrypted_view(mount, store, secrets, tmp_path):
    values = {"DB_PASSWORD": secrets.add("dx-view-db-password"),
              "QUOTED": secrets.add("dx-view 'single' \"double\" $HOME"),
              "MULTI": secrets.add("dx-view-one\ndx-view-two")}
    store.put("myapp", values)
    m = mount({"myapp": {"store": "local://myapp", "mode": "0600",
                         "keys.production": "generate:dotenvx"}})
    app = m.app("myapp")
    m.expect_log(r"app myapp: key QUOTED: value (needs escapes|holds)")
    names = os.listdir(app)
    assert ".env.keys" in names and ".env.production.encrypted" in names
    keys = sfs.parse(sfs.read_text(app / ".env.keys"))
    key = secrets.add(keys["DOTENV_PRIVATE_KEY_PRODUCTION"])
    assert len(key) == 64 and int(key, 16)
    # kept in the store like every generated value, and no value of .env
    assert store.get("myapp")["DOTENV_PRIVATE_KEY_PRODUCTION"] == key
    assert sfs.parse(sfs.read_text(app / ".env")) == values
    assert "DOTENV_PRIVATE_KEY_PRODUCTION" not in names
    view = sfs.read_text(app / ".env.production.encrypted")
    assert sfs.read_text(app / ".env.production.encrypted") == view  # stable
    for v in values.values():
        assert v not in view
    assert view.startswith("#/-------------------[DOTENV_PUBLIC_KEY]")
    out = tmp_path / "commit"
    out.mkdir()
    (out / ".env.production").write_text(view)
    got = dotenvx_get(out / ".env.production", key)
    pub = got.pop("DOTENV_PUBLIC_KEY_PRODUCTION")
    assert got == values and f'DOTENV_PUBLIC_KEY_PRODUCTION="{pub}"' in view
    # dotenvx finds the key in .env.keys beside the file, as a developer has it
    (out / ".env.keys").write_text(sfs.read_text(app / ".env.keys"))
    printed = dotenvx("run", "-f", ".env.production", "--", "sh", "-c",
                      'printf %s "$DB_PASSWORD"', cwd=out)
    assert printed.endswith(values["DB_PASSWORD"])
    # a changed value changes its line only
    new = secrets.add("dx-view-db-password-2")
    assert sfs.write_file(app / "DB_PASSWORD", new) == (None, None)
    after = sfs.read_text(app / ".env.production.encrypted")
    diff = [(a, b) for a, b in zip(view.splitlines(), after.splitlines())
            if a != b]
    assert len(diff) == 1 and diff[0][0].startswith("DB_PASSWORD=")
    (out / ".env.production").write_text(after)
    assert dotenvx_get(out / ".env.production", key)["DB_PASSWORD"] == new
    # the view is read-only; the generated key cannot be written as a value
    assert sfs.write_file(app / ".env.production.encrypted", "X=1")[1] \
        in ("EROFS", "EACCES")
    assert sfs.write_file(app / "DOTENV_PRIVATE_KEY_PRODUCTION", "x")[1] \
        in ("EPERM", "EACCES")
    m.expect_log(r"DOTENV_PRIVATE_KEY_PRODUCTION is no value of the app|"
                 r"an encrypted view of \.env")


def test_keys_from_a_vault_view_matches_the_committed_file(
        dx_mount, repo, secrets, store, tmp_path, monkeypatch):
    """The vault keeps the key; the view of the same values, encrypted to it,
    is what the team commits; dotenvx reads it with the vault's key."""
    d, values, key = repo
    m = dx_mount(key, apps={"myapp": {
        "store": "repo://services/myapp/.env.production", "mode": "0600",
        "keys.production": "environ://SFS_IT_DX_KEY"}})
    app = m.app("myapp")
    assert sfs.parse(sfs.read_text(app / ".env.keys")) == {
        "DOTENV_PRIVATE_KEY_PRODUCTION": key}
    view = sfs.read_text(app / ".env.production.encrypted")
    committed = (d / ".env.production").read_text()
    publine = [ln for ln in committed.splitlines()
               if ln.startswith("DOTENV_PUBLIC_KEY_PRODUCTION=")][0]
    assert publine in view.splitlines()
    out = tmp_path / "view"
    out.mkdir()
    (out / ".env.production").write_text(view)
    got = dotenvx_get(out / ".env.production", key)
    del got["DOTENV_PUBLIC_KEY_PRODUCTION"]
    assert got == values
