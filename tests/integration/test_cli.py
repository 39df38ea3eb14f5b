"""secretfs check and secretfs render: the configuration alone, no mount.

check resolves every reference, prints a table, never a value, and writes
nothing; render prints an app's values in a format a consumer reads back
exactly (the real sh and dash, a mirror of docker's env-file parser,
json), all or nothing, and agrees with what a mount serves.
"""

import json
import re
import os
import shutil
import subprocess

import pytest

# the Vault emulator holds keys no .env can: register its plugin for
# assert rewriting before its helpers are imported
pytest.register_assert_rewrite("vault_fixtures")
pytest_plugins = ["vault_fixtures"]

import sfs  # noqa: E402
import vault_fixtures  # noqa: E402

TRICKY = {
    "QUOTES": "it's \"both\"",
    "SHELLY": "$HOME `id` $(id) \\ ; | & * ?",
    "TRAIL": "ends in a backslash \\",
    "SPACES": "  padded  ",
    "HASH": "#not a comment",
    "EMPTY": "",
    "UNICODE": "p\u00e4ss\u00a0w\u00f6rd \u2603",
}


def run(*args, check_stderr=True):
    res = subprocess.run([str(sfs.BIN), *map(str, args)], capture_output=True,
                         timeout=60, env=sfs.daemon_env(),
                         stdin=subprocess.DEVNULL)
    err = res.stderr.decode("utf-8", "replace")
    assert not sfs.SANITIZER.search(err), err
    return res.returncode, res.stdout, err


@pytest.fixture
def conf(tmp_path, store):
    """Write a config for apps; returns its path."""
    def make(apps, extra=""):
        path = tmp_path / "secretfs.conf"
        path.write_text(sfs.config_text(store.dir, apps, extra=extra))
        return path
    return make


def no_secret_in(secrets, *texts):
    for t in texts:
        if isinstance(t, bytes):
            t = t.decode("utf-8", "replace")
        assert not secrets.found_in(t), "a secret value was printed"


# ---------------------------------------------------------------- check

def test_check_table_without_values_or_writes(store, conf, secrets):
    store.put("team/billing", {"DB_PASSWORD": "check-db-password"})
    # keys.* hold dotenvx private keys, which check verifies: 64 hex
    store.put("team/shared", {"URL": "postgres://check-shared-url",
                              "PROD": "5c" * 32})
    path = conf({"billing": {"store": "local://team/billing",
                             "env.DATABASE_URL": "local://team/shared#URL",
                             "env.SECRET_KEY": "generate:base64:32",
                             "keys.production": "local://team/shared#PROD"}})
    before = store.raw("team/billing")
    rc, out, err = run("check", path)
    text = out.decode()
    assert rc == 0, err
    assert err == ""
    assert "app billing" in text
    rows = {line.split()[0]: line for line in text.splitlines()
            if line.startswith("  ") and not line.startswith("  KEY")}
    assert set(rows) == {"DB_PASSWORD", "DATABASE_URL", "SECRET_KEY",
                         "DOTENV_PRIVATE_KEY_PRODUCTION"}
    assert "local://team/billing#DB_PASSWORD" in rows["DB_PASSWORD"]
    assert rows["DATABASE_URL"].rstrip().endswith(" ok")
    assert "would be generated into local://team/billing" in rows["SECRET_KEY"]
    assert ".env.keys" in rows["DOTENV_PRIVATE_KEY_PRODUCTION"]
    assert text.rstrip().endswith("check: ok, 1 app resolves")
    no_secret_in(secrets, out, err)
    # check generates nothing and writes nothing
    assert store.raw("team/billing") == before


def test_check_fails_with_the_reference(store, conf, secrets):
    store.put("team/ok", {"K": "check-ok-value"})
    path = conf({"good": {"store": "local://team/ok"},
                 "bad": {"store": "local://team/ok",
                         "env.GONE": "local://team/missing#X",
                         "env.NOKEY": "local://team/ok#NOPE"}})
    rc, out, err = run("check", path)
    assert rc == 1
    text = out.decode()
    assert "FAILED: local://team/missing#X: no such entry" in text
    assert "FAILED: local://team/ok#NOPE: the entry has no key 'NOPE'" in text
    assert "check: 1 of 2 apps failed" in text
    assert "app bad: GONE: local://team/missing#X" in err
    no_secret_in(secrets, out, err)
    # only the apps named
    rc, out, err = run("check", path, "good")
    assert rc == 0, err
    assert "app bad" not in out.decode()
    rc, out, err = run("check", path, "nosuchapp")
    assert rc == 1 and "has no [app nosuchapp]" in err


def test_check_refuses_bad_configs(tmp_path, store, conf):
    rc, _, err = run("check", tmp_path / "missing.conf")
    assert rc == 1 and "missing.conf" in err
    path = conf({"a": {"store": "local://team/a", "bogus": "1"}})
    rc, _, err = run("check", path)
    assert rc == 1 and "secretfs.conf:" in err
    # a provider that cannot be created: its section's file:line
    bad = tmp_path / "bad.conf"
    bad.write_text("[provider local]\ntype = file\ndirectory = relative\n")
    rc, _, err = run("check", bad)
    assert rc == 1 and "bad.conf:1: provider local:" in err, err
    rc, _, err = run("check")
    assert rc == 1 and "no CONFIG" in err


def test_check_refuses_configs_others_may_write(tmp_path, store, conf, users):
    path = conf({"a": {"store": "local://team/a"}})
    path.chmod(0o646)
    rc, out, err = run("check", path)
    assert rc == 1 and f"{path}: writable by group or others" in err, err
    assert f"chmod go-w {path}" in err and not out
    path.chmod(0o644)
    os.chown(path, users["a"].pw_uid, -1)
    rc, _, err = run("check", path)
    assert rc == 1 and f"chown root {path}" in err, err
    os.chown(path, 0, -1)
    dropin = tmp_path / "conf.d" / "b.conf"
    dropin.parent.mkdir()
    dropin.write_text("[app b]\nstore = local://team/b\n")
    dropin.chmod(0o660)
    rc, _, err = run("check", path)
    assert rc == 1 and f"chmod go-w {dropin}" in err, err


def test_check_refuses_templates_others_may_write(tmp_path, store, conf):
    tpl = tmp_path / "a.tpl"
    tpl.write_text("k: {{ K }}\n")
    tpl.chmod(0o664)
    path = conf({"a": {"env.K": "local://team/a#K", "file.a.yaml": str(tpl)}})
    rc, out, err = run("check", path)
    assert rc == 1 and not out, err
    assert f"template {tpl}: writable by group or others" in err, err
    assert f"chmod go-w {tpl}" in err, err


def test_check_of_on_change_programs(tmp_path, store, conf, users):
    store.put("team/a", {"K": "S3cr3t-hook-0b9d"})
    hook = tmp_path / "bin" / "reload.sh"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    ok = [f"sh -c 'kill -HUP \"$(cat /run/x.pid)\"'", "true", str(hook),
          f"sh -c '{hook} a b'"]
    for cmd in ok:
        rc, _, err = run("check", conf({"a": {"store": "local://team/a",
                                               "on_change": cmd}}))
        assert rc == 0, (cmd, err)
    rc, _, err = run("check", conf({"a": {"store": "local://team/a",
                                           "on_change": "no-such-reload-x"}}))
    assert rc == 1 and "on_change: no-such-reload-x: not found in " in err, err
    # a program of another user's runs only as that user
    os.chown(hook, users["a"].pw_uid, -1)
    rc, _, err = run("check", conf({"a": {"store": "local://team/a",
                                           "on_change": str(hook)}}))
    assert rc == 1 and f"chown root {hook}" in err, err
    rc, _, err = run("check", conf({"a": {"store": "local://team/a",
                                           "on_change": str(hook),
                                           "on_change_user": "sfs-test-a"}}))
    assert rc == 0, err


def test_names_with_control_characters_printed_escaped(tmp_path, store,
                                                        vault, secrets):
    """A key from a store (a JSON key in a Vault secret) or a reference's
    field holding a newline or an ESC byte is printed escaped, as the log
    does: it can neither forge a line nor drive the terminal. render's
    values are data, and stay as they are."""
    val = secrets.add("S3cr3t-ctl-c1e5")
    forged = "BAD\nsecretfs: error: forged line"
    vault.put("secret", "ctl", {forged: val, "E\x1b[31mSC": val, "OK": val})
    token = vault_fixtures.write_private(tmp_path / "token",
                                         vault.root_token + "\n")
    section = vault_fixtures.provider_section(vault, auth="token",
                                              token_file=token)
    path = tmp_path / "ctl.conf"
    path.write_text(vault_fixtures.config_text(store.dir, [section], {
        "s": {"store": "vault://secret/ctl",
              "env.GONE": "vault://secret/ctl#NO%1B]0;title%07PE"}}))
    rc, out, err = run("check", path)
    text = out.decode()
    assert rc == 1 and "check: 1 of 1 apps failed" in text, (text, err)
    assert "\x1b" not in text + err and "\x07" not in text + err, (text, err)
    assert not [l for l in (text + err).splitlines() if "forged" in l and
                not l.startswith("  BAD\\nsecretfs: error: forged line ")], \
        text + err
    assert "  E\\x1b[31mSC " in text, text
    assert "the entry has no key 'NO\\x1b]0;title\\x07PE'" in err, err
    no_secret_in(secrets, out, err)
    # render: an error naming such a key is escaped; the values are not
    rc, out, err = run("render", path, "s", "--format", "sh")
    assert rc == 1 and out == b"" and err.count("\n") == 1, err
    assert "\x1b" not in err and "NO\\x1b]0;title\\x07PE" in err, err
    vault.put("secret", "ctl", {"E\x1b[31mSC": val, "OK": "a\x1bb\nc"})
    path.write_text(path.read_text().replace("env.GONE", "#"))
    rc, out, err = run("render", path, "s", "--format", "sh")
    assert rc == 1 and out == b"" and err.count("\n") == 1, err
    assert "E\\x1b[31mSC" in err and "\x1b" not in err, err
    rc, out, err = run("render", path, "s", "--format", "json")
    assert rc == 0, err
    assert json.loads(out) == {"E\x1b[31mSC": val, "OK": "a\x1bb\nc"}


def test_check_of_an_empty_config_passes(tmp_path, store):
    path = tmp_path / "empty.conf"
    path.write_text(sfs.config_text(store.dir, {}))
    rc, out, err = run("check", path)
    assert rc == 0, err
    assert "1 provider created: local (file)" in out.decode()


# ---------------------------------------------------------------- render

def test_render_env_is_what_the_mount_serves(mount, store, conf, secrets):
    store.put("team/web", {**TRICKY, "PLAIN": "render-plain-value"})
    apps = {"web": {"store": "local://team/web",
                    "env.TOKEN": "generate:hex:16"}}
    path = conf(apps)
    rc, out, err = run("render", path, "web")
    assert rc == 0, err
    secrets.add(store.get("team/web")["TOKEN"])
    # render generated TOKEN (the read path) and said so, without the value
    assert "app web: generated TOKEN" in err
    no_secret_in(secrets, err)
    m = mount(apps)
    m.expect_log(r"key (TRAIL|SHELLY|QUOTES): ")  # .env's escaped-form warnings
    assert sfs.read(m.app("web") / ".env") == out


def test_render_sh_round_trips_through_real_shells(store, conf, tmp_path):
    store.put("team/web", {**TRICKY, "MULTI": "line one\nline 'two'\n"})
    rc, out, err = run("render", conf({"web": {"store": "local://team/web"}}),
                       "web", "--format", "sh")
    assert rc == 0, err
    script = tmp_path / "env.sh"
    script.write_bytes(out)
    dump = ("import json, os; print(json.dumps({k: os.environ[k] for k in "
            + repr(sorted(TRICKY) + ["MULTI"]) + "}))")
    for shell in ("/bin/sh", "/bin/dash", "/bin/bash"):
        if not os.path.exists(shell):
            continue
        for how in ('. "$1"', 'eval "$(cat "$1")"'):
            res = subprocess.run(
                [shell, "-c", how + '; exec "$2" -c "$3"', "sh", str(script),
                 sfs.PYTHON, dump], capture_output=True, text=True, timeout=20,
                env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
            assert res.returncode == 0, res.stderr
            got = json.loads(res.stdout)
            assert got == {**TRICKY, "MULTI": "line one\nline 'two'\n"}, shell


def docker_env_file(text):
    """docker's env-file parser (docker/cli opts/envfile.go parseKeyValueFile):
    lines split on \\n with one trailing \\r dropped, leading whitespace
    trimmed, blank and #-lines skipped, KEY=VALUE with the value verbatim;
    invalid UTF-8 or a key with whitespace is an error."""
    out = {}
    raw = text.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    for n, b in enumerate(raw, 1):
        if b.endswith(b"\r"):
            b = b[:-1]
        line = b.decode("utf-8")  # raises on invalid UTF-8, as docker does
        if n == 1 and line.startswith("\ufeff"):
            line = line[1:]
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert key and not any(c.isspace() for c in key), line
        assert sep, "a key without a value would be taken from the environment"
        out[key] = value
    return out


def test_render_docker_is_what_docker_reads(store, conf, secrets):
    store.put("team/web", TRICKY)
    path = conf({"web": {"store": "local://team/web"}})
    rc, out, err = run("render", path, "web", "--format=docker")
    assert rc == 0, err
    assert docker_env_file(out) == TRICKY
    # a newline cannot be carried: refused by name, nothing printed
    store.put("team/web", {**TRICKY, "PEM": "-----BEGIN-----\nrender-pem-body\n"})
    rc, out, err = run("render", path, "web", "--format", "docker")
    assert rc == 1 and out == b""
    assert "PEM: the value holds a newline" in err
    no_secret_in(secrets, err)


def test_render_json(store, conf):
    store.put("team/web", {**TRICKY, "MULTI": "a\nb"})
    rc, out, err = run("render", conf({"web": {"store": "local://team/web"}}),
                       "web", "--format", "json")
    assert rc == 0, err
    assert json.loads(out) == {**TRICKY, "MULTI": "a\nb"}


@pytest.mark.parametrize("fmt", ["env", "json", "sh", "docker"])
def test_render_is_all_or_nothing(store, conf, secrets, fmt):
    store.put("team/web", {"K": "render-partial-value"})
    path = conf({"web": {"store": "local://team/web",
                         "env.GONE": "local://team/missing#X"}})
    rc, out, err = run("render", path, "web", "--format", fmt)
    assert rc == 1
    assert out == b""
    assert "local://team/missing#X: no such entry" in err
    no_secret_in(secrets, err)


def test_render_usage_errors(store, conf):
    path = conf({"web": {"store": "local://team/web"}})
    rc, _, err = run("render", path)
    assert rc == 1 and "one APP" in err
    rc, _, err = run("render", path, "nope")
    assert rc == 1 and "has no [app nope]" in err
    rc, _, err = run("render", path, "web", "--format", "yaml")
    assert rc == 1 and "unknown format 'yaml'" in err
    rc, out, _ = run("render", "--help")
    assert rc == 0 and b"--format env|json|sh|docker" in out


# ---------------------------------------------------------------- papercuts

def test_help_states_the_defaults_the_code_uses():
    main_c = (sfs.REPO / "fs" / "main.c").read_text()
    threads = re.search(r"#define MAIN_MAX_THREADS (\d+)", main_c).group(1)
    res = subprocess.run([str(sfs.BIN), "--help"], capture_output=True,
                         text=True, timeout=20)
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert f"max_threads the maximum number of worker threads allowed (default: {threads})" in text
    assert "(default: 10)" not in text
    assert "check CONFIG [APP...]" in text
    assert "render CONFIG APP [--format env|json|sh|docker]" in text


def test_man_page_lists_every_store_type():
    """Every type in providers/registry.c's PROVIDER_TYPES, by the .type
    its ops table declares, is named in secretfs(8)'s Stores section."""
    registry = (sfs.REPO / "providers" / "registry.c").read_text()
    table = re.search(r"#define PROVIDER_TYPES\(X\)(.*?)\n\n", registry, re.S)
    names = re.findall(r"X\((\w+)\)", table.group(1))
    man = (sfs.REPO / "docs" / "secretfs.8").read_text()
    stores = man[man.index(".SS Stores"):man.index(".SS Reads")]
    stores = stores.replace("\\-", "-")
    sources = "".join(p.read_text() for p in (sfs.REPO / "providers").glob("*.c"))
    for name in names:
        m = re.search(rf"{name}_provider_ops = \{{.*?\.type = \"([^\"]+)\"",
                      sources, re.S)
        assert m, f"no ops table for {name}"
        assert f".B {m.group(1)}\n" in stores, f"secretfs(8) does not list {m.group(1)}"
