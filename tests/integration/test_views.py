"""Dialect views: views = docker json sh shows .env.docker, .env.json and
.env.sh beside .env, each read back exactly by its own consumer: docker
itself (--env-file, and the app folder bind-mounted into a container),
json.load, and `. file` in dash and bash."""

import json
import subprocess

import pytest

import sfs
from docker_fixtures import docker_cli, docker_image, env0  # noqa: F401
from test_cli import docker_env_file
from test_read import VALUES

# the .env corpus, and what only some formats carry
CORPUS = {**VALUES, "PEM": "-----BEGIN KEY-----\nviews-pem-body\n-----END KEY-----\n",
          "TAB": "a\tb", "CTRL": "bell\x07 esc\x1b", "EQUALS": "a=b==c",
          "LEADING_HASH": "#not-a-comment"}
ONE_LINE = {k: v for k, v in CORPUS.items() if "\n" not in v}
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


@pytest.fixture
def viewed(mount, store):
    store.put("team/web", CORPUS)
    m = mount({"web": {"store": "local://team/web", "views": "docker json sh"}})
    # .env.docker leaves out what it cannot carry, and says so
    m.expect_log(r"warn: app web: key (PEM|NEWLINE|MIXED_NL): the value holds a newline")
    m.expect_log(r"warn: app web: key \w+: value (holds \$\{|needs escapes)")
    return m


def test_views_listed_and_read_only(viewed):
    names = sorted(p.name for p in viewed.app("web").iterdir())
    assert [n for n in names if n.startswith(".env")] == \
        [".env", ".env.docker", ".env.json", ".env.sh"]
    assert sfs.errno_of(sfs.write_file, viewed.app("web") / ".env.json", b"{}") != 0


def test_json_view_is_exact(viewed):
    assert json.loads(sfs.read(viewed.app("web") / ".env.json")) == CORPUS


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_sh_view_is_exact_in_posix_shells(viewed, shell):
    res = subprocess.run([shell, "-c", '. "$1" && exec env -0', shell,
                          str(viewed.app("web") / ".env.sh")],
                         capture_output=True, timeout=20, check=True, env=CLEAN_ENV)
    got = env0(res.stdout)
    assert {k: got.get(k) for k in CORPUS} == CORPUS


def test_docker_view_by_docker_rules(viewed):
    text = sfs.read(viewed.app("web") / ".env.docker")
    assert docker_env_file(text) == ONE_LINE
    for key in ("PEM", "NEWLINE", "MIXED_NL"):
        assert f"# {key} left out: the value holds a newline".encode() in text
    assert b"views-pem-body" not in text


@pytest.mark.timeout_s(240)
def test_docker_reads_env_file_and_bind_mounted_folder(viewed, docker_cli, docker_image):
    folder = viewed.app("web")
    res = docker_cli("run", "--rm", "--network", "none",
                     "--env-file", str(folder / ".env.docker"),
                     docker_image, "/bin/env", "-0")
    got = env0(res.stdout)
    assert {k: got.get(k) for k in ONE_LINE} == ONE_LINE
    # the folder bind-mounted: the container's own sh reads .env.sh, and
    # every value arrives, the multi-line ones too
    res = docker_cli("run", "--rm", "--network", "none",
                     "-v", f"{folder}:/run/secrets:ro", docker_image,
                     "/bin/sh", "-c", ". /run/secrets/.env.sh && exec env -0")
    got = env0(res.stdout)
    assert {k: got.get(k) for k in CORPUS} == CORPUS
