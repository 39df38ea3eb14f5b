"""aws_fixtures.py - fixtures and helpers for the AWS Secrets Manager tests.

Loaded by test_aws_*.py with `pytest_plugins = ["aws_fixtures"]` (its
helpers imported as usual), so conftest.py stays as it is:

    aws_factory(**kw)  -> AwsEmulator, started; stopped at teardown, which
                          also fails the test if the emulator itself raised
    aws                -> one emulator (us-east-1) that accepts the static
                          key aws.key (a Cred: .access, .secret)
    aws_mount(apps, emu=None, env=None, settings=None, name="aws",
              extra_sections=(), **provider_opts) -> sfs.Mount of a
                          secretfs daemon whose [provider aws] points at
                          the emulator

The daemon takes its AWS credentials from its environment (the chain of
docs/aws.md, "Credentials"). aws_mount starts it with every AWS_* variable of
the test process removed, shared config files pointing nowhere and IMDS
disabled, then applies env (a value of None removes a variable); by
default env holds aws.key as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
os.environ is restored right after the daemon starts.

Every credential the emulator is given or hands out (secret keys, session
tokens, web identity tokens, container tokens, IMDS tokens) is registered
with the leak checker, so a daemon that logs one fails its test.
"""

import contextlib
import os
import pathlib
import sys

import pytest

import sfs

EMULATORS = pathlib.Path(__file__).resolve().parents[1] / "emulators"
if str(EMULATORS) not in sys.path:
    sys.path.insert(0, str(EMULATORS))

from aws import AwsEmulator, SigV4Auth  # noqa: E402

IN_CI = os.environ.get("CI") == "true"
REGION = "us-east-1"

# Reads must reach the emulator every time, and a failing source must
# fail, not be served stale: the tests count requests and inject faults.
SETTINGS = {"ttl": "0", "max_stale": "0", "request_timeout": "10s"}


def need_botocore():
    if SigV4Auth is not None:
        return
    if IN_CI:
        pytest.fail("botocore is missing (apt-get install python3-botocore)"
                    "; in CI the AWS tests never skip")
    pytest.skip("apt-get install python3-botocore")


@pytest.fixture
def aws_factory(secrets):
    need_botocore()
    emus = []

    def make(region=REGION, **kw):
        kw.setdefault("on_secret", secrets.add)
        emu = AwsEmulator(region, **kw)
        emus.append(emu)
        emu.key = emu.add_credentials("AKIASECRETFSTEST001",
                                      "aws-test-secret-key-0123456789abcdef")
        return emu.start()

    yield make
    for emu in emus:
        emu.stop()
    broken = [tb for emu in emus for tb in emu.errors]
    if broken:
        pytest.fail("the AWS emulator raised:\n" + "\n".join(broken),
                    pytrace=False)


@pytest.fixture
def aws(aws_factory):
    return aws_factory()


def write_private(path, text, mode=0o600):
    """A credential file (0600 unless told otherwise)."""
    path = pathlib.Path(path)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def static_env(cred):
    """The environment that hands cred to the daemon."""
    env = {"AWS_ACCESS_KEY_ID": cred.access,
           "AWS_SECRET_ACCESS_KEY": cred.secret}
    if cred.token:
        env["AWS_SESSION_TOKEN"] = cred.token
    return env


def provider_section(emu, name="aws", **opts):
    """[provider NAME] text; opts are the provider's options (None: left
    out, e.g. endpoint=None to take it from the environment)."""
    base = {"type": "aws-secretsmanager", "region": emu.region,
            "endpoint": emu.url}
    base.update(opts)
    lines = [f"[provider {name}]"]
    lines += [f"{k} = {v}" for k, v in base.items() if v is not None]
    return "\n".join(lines) + "\n"


def config_text(store_dir, sections, apps, settings=None):
    """The whole INI: [secretfs], the local file provider, the given
    provider sections, then the apps."""
    lines = ["# written by tests/integration (aws)", "[secretfs]"]
    merged = {**SETTINGS, **(settings or {})}
    lines += [f"{k} = {v}" for k, v in merged.items()]
    lines += ["", "[provider local]", "type = file",
              f"directory = {store_dir}", ""]
    text = "\n".join(lines) + "\n" + "\n".join(sections)
    for name, opts in apps.items():
        text += f"\n[app {name}]\n"
        text += "".join(f"{k} = {v}\n" for k, v in opts.items())
    return text


@contextlib.contextmanager
def daemon_environment(env, home):
    """os.environ as the daemon should see it, for the duration."""
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                del os.environ[k]
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-creds")
        os.environ["AWS_CONFIG_FILE"] = str(home / "no-config")
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        os.environ["HOME"] = str(home)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def aws_mount(aws, mount, store, tmp_path):
    """Factory: aws_mount(apps, emu=None, env=None, settings=None,
    name="aws", extra_sections=(), **provider_opts).

    It takes aws before mount so the emulators stop only after every daemon
    has unmounted: tests must not request `mount` themselves."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def start(apps, emu=None, env=None, settings=None, name="aws",
              extra_sections=(), **provider_opts):
        emu = emu or aws
        if env is None:
            env = static_env(emu.key)
        sections = [provider_section(emu, name, **provider_opts),
                    *extra_sections]
        with daemon_environment(env, home):
            return mount(config=config_text(store.dir, sections, apps,
                                            settings))

    return start


def calls(emu, op, status=None):
    """Requests of op ("GetSecretValue"...), optionally only those answered
    with status."""
    return [r for r in emu.calls(op) if status is None or r.status == status]


def bodies(emu, op):
    """The JSON bodies of op's requests that got an answer."""
    return [r.json() for r in emu.calls(op) if r.status is not None]


__all__ = ["aws_factory", "aws", "aws_mount", "write_private", "static_env",
           "provider_section", "config_text", "daemon_environment", "calls",
           "bodies", "AwsEmulator", "REGION", "SETTINGS", "IN_CI", "sfs"]
