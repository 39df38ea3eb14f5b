"""Config-file templates: file.NAME = TEMPLATE shows NAME in the app
folder, filled in from the app's keys and from references, each filter
read back exactly by its real consumer (json, PyYAML, a shell,
urllib.parse, base64, an XML parser) over the .env corpus."""

import base64
import json
import subprocess
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import yaml

import sfs
from test_read import VALUES

CORPUS = {**VALUES, "TAB": "a\tb", "CR": "x\r\ny", "LS": "a\u2028b\u0085c"}


def template(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def templated(mount, store, tmp_path):
    store.put("team/web", CORPUS)
    store.put("team/db", {"password": "db 'pw' \"x\" $y\nz"})
    keys = sorted(CORPUS)
    tpls = {
        "app.json": "{\n" + ",\n".join(f'  "{k}": "{{{{ {k} | json }}}}"' for k in keys)
                    + ',\n  "db": "{{ local://team/db#password | json }}"\n}\n',
        "app.yaml": "".join(f"{k}: {{{{ {k} | yaml }}}}\n" for k in keys)
                    + "db: {{ local://team/db#password | yaml }}\n",
        "app.sh": "".join(f"{k}={{{{ {k} | shell }}}}\n" for k in keys),
        "app.query": "&".join(f"{k}={{{{ {k} | url }}}}" for k in keys),
        "app.b64": "".join(f"{k} {{{{ {k} | base64 }}}}\n" for k in keys),
    }
    opts = {"store": "local://team/web"}
    for name, text in tpls.items():
        opts[f"file.{name}"] = str(template(tmp_path, name + ".tpl", text))
    m = mount({"web": opts})
    return m


def test_templates_listed_read_only(templated):
    names = {p.name for p in templated.app("web").iterdir()}
    assert {"app.json", "app.yaml", "app.sh", "app.query", "app.b64"} <= names
    assert sfs.errno_of(sfs.write_file, templated.app("web") / "app.json", b"{}") != 0


def test_json_and_yaml_filters(templated):
    want = {**CORPUS, "db": "db 'pw' \"x\" $y\nz"}
    assert json.loads(sfs.read(templated.app("web") / "app.json")) == want
    assert yaml.safe_load(sfs.read(templated.app("web") / "app.yaml")) == want


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_shell_filter(templated, shell):
    res = subprocess.run([shell, "-c", 'set -a; . "$1"; exec env -0', shell,
                          str(templated.app("web") / "app.sh")],
                         capture_output=True, timeout=20, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    got = dict(i.decode().split("=", 1) for i in res.stdout.split(b"\0") if i)
    assert {k: got.get(k) for k in CORPUS} == CORPUS


def test_url_and_base64_filters(templated):
    q = sfs.read(templated.app("web") / "app.query").decode()
    assert dict(urllib.parse.parse_qsl(q, keep_blank_values=True)) == CORPUS
    lines = sfs.read(templated.app("web") / "app.b64").decode().splitlines()
    assert {k: base64.b64decode(v).decode() for k, v in (l.split(" ") for l in lines)} == CORPUS


def test_xml_filter(mount, store, tmp_path):
    store.put("team/x", {"V": "a<b>&\"c' \n\td"})
    t = template(tmp_path, "x.tpl", '<c v="{{ V | xml }}">{{ V | xml }}</c>\n')
    m = mount({"x": {"store": "local://team/x", "file.c.xml": str(t)}})
    root = ET.fromstring(sfs.read(m.app("x") / "c.xml"))
    assert root.get("v") == root.text == "a<b>&\"c' \n\td"


def test_rotation_shows_in_the_template(mount, store, tmp_path):
    store.put("team/r", {"K": "one"})
    t = template(tmp_path, "r.tpl", "k: {{ K | yaml }}\n")
    m = mount({"r": {"store": "local://team/r", "file.r.yaml": str(t), "ttl": "0"}})
    assert sfs.read(m.app("r") / "r.yaml") == b'k: "one"\n'
    store.put("team/r", {"K": "two"})
    assert sfs.read(m.app("r") / "r.yaml") == b'k: "two"\n'


@pytest.mark.parametrize("text,line,needle", [
    ("a: 1\nb: {{ K | rot13 }}\n", 2, "unknown filter 'rot13'"),
    ("\n\nx: {{ NOPE }}\n", 3, "app t has no key NOPE"),
    ("x: {{ other://a#b }}\n", 1, "unknown provider 'other'"),
    # the store's own check (issue 10): no locator out of its folder
    ("a: 1\nx: {{ local://../../etc/shadow#x }}\n", 2,
     "reference 'local://../../etc/shadow"),
])
def test_template_errors_at_load(tmp_path, store, fuse_ready, text, line, needle):
    t = template(tmp_path, "bad.tpl", text)
    conf = tmp_path / "secretfs.conf"
    conf.write_text(sfs.config_text(store.dir, {"t": {"env.K": "local://team/k#K",
                                                       "file.x": str(t)}}))
    res = subprocess.run([fuse_ready, "check", str(conf)], capture_output=True, timeout=30)
    assert res.returncode != 0
    assert f"{t}:{line}: {needle}" in res.stderr.decode()
