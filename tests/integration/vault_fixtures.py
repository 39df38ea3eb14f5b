"""vault_fixtures.py - fixtures and helpers for the Vault tests.

Loaded by test_vault_*.py with `pytest_plugins = ["vault_fixtures"]` (its
helpers imported as usual), so conftest.py stays as it is:

    vault_factory(mounts=None, **kw) -> VaultEmulator, started; stopped at
                                        teardown, which also fails the test
                                        if the emulator itself raised
    vault                            -> one emulator with secret/ (v2),
                                        kv1/ (v1) and kv/team/ (v2)
    vault_mount(apps, emu=None, ...) -> sfs.Mount of a secretfs daemon
                                        whose [provider vault] points at
                                        the emulator

Every credential the emulator hands out or is given (tokens, secret IDs,
JWTs) is registered with the leak checker, so a daemon that logs one
fails its test.
"""

import os
import pathlib
import sys

import pytest

import sfs

EMULATORS = pathlib.Path(__file__).resolve().parents[1] / "emulators"
if str(EMULATORS) not in sys.path:
    sys.path.insert(0, str(EMULATORS))

from vault import VaultEmulator  # noqa: E402

MOUNTS = {"secret/": 2, "kv1/": 1, "kv/team/": 2}

# Reads must reach the emulator every time, and a failing source must
# fail, not be served stale: the tests count requests and inject faults.
SETTINGS = {"ttl": "0", "max_stale": "0", "request_timeout": "10s"}


@pytest.fixture
def vault_factory(secrets):
    emus = []

    def make(mounts=None, **kw):
        kw.setdefault("on_secret", secrets.add)
        emu = VaultEmulator(MOUNTS if mounts is None else mounts, **kw)
        emus.append(emu)
        return emu.start()

    yield make
    for emu in emus:
        emu.stop()
    broken = [tb for emu in emus for tb in emu.errors]
    if broken:
        pytest.fail("the Vault emulator raised:\n" + "\n".join(broken),
                    pytrace=False)


@pytest.fixture
def vault(vault_factory):
    return vault_factory()


def write_private(path, text, mode=0o600):
    """A credential file (0600 unless told otherwise)."""
    path = pathlib.Path(path)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def provider_section(emu, name="vault", **opts):
    """[provider NAME] text for emu; opts are the provider's options."""
    lines = [f"[provider {name}]", "type = vault", f"address = {emu.url}"]
    lines += [f"{k} = {v}" for k, v in opts.items() if v is not None]
    return "\n".join(lines) + "\n"


def config_text(store_dir, sections, apps, settings=None):
    """The whole INI: [secretfs], the local file provider, the given
    provider sections, then the apps."""
    lines = ["# written by tests/integration (vault)", "[secretfs]"]
    lines += [f"{k} = {v}" for k, v in {**SETTINGS, **(settings or {})}.items()]
    lines += ["", "[provider local]", "type = file", f"directory = {store_dir}",
              ""]
    text = "\n".join(lines) + "\n" + "\n".join(sections)
    for name, opts in apps.items():
        text += f"\n[app {name}]\n"
        text += "".join(f"{k} = {v}\n" for k, v in opts.items())
    return text


@pytest.fixture
def vault_mount(vault, mount, store, tmp_path):
    """Factory: vault_mount(apps, emu=None, auth="token", token=None,
    settings=None, name="vault", extra_sections=(), **provider_opts).

    auth="token" writes token (default: the emulator's root token) to a
    0600 file and sets token_file, unless provider_opts sets token_file
    itself or token_file=None is passed to use the environment.

    It takes vault before mount so the emulators stop only after every
    daemon has unmounted: tests must not request `mount` themselves."""
    counter = [0]

    def start(apps, emu=None, auth="token", token=None, settings=None,
              name="vault", extra_sections=(), **provider_opts):
        emu = emu or vault
        counter[0] += 1
        opts = {"auth": auth}
        if auth == "token" and "token_file" not in provider_opts:
            opts["token_file"] = write_private(
                tmp_path / f"vault-token-{counter[0]}",
                (token or emu.root_token) + "\n")
        opts.update(provider_opts)
        sections = [provider_section(emu, name, **opts), *extra_sections]
        return mount(config=config_text(store.dir, sections, apps, settings))

    return start


def data_writes(emu, mount, path):
    """The JSON bodies of the KV v2 writes (POST/PUT) seen on mount/path."""
    full = f"/v1/{mount.strip('/')}/data/{path}"
    return [r.json() for r in emu.requests
            if r.path == full and r.method in ("POST", "PUT")
            and r.status is not None]


def statuses(emu, path):
    """The statuses answered on path, in order (None: no answer)."""
    return [r.status for r in emu.requests if r.path == path]


__all__ = ["vault_factory", "vault", "vault_mount", "write_private",
           "provider_section", "config_text", "data_writes", "statuses",
           "VaultEmulator", "MOUNTS", "SETTINGS", "sfs"]
