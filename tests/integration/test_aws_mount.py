"""secretfs on AWS Secrets Manager: real mounts whose [provider aws] talks
to the emulator (tests/emulators/aws.py). JSON secrets as entries, a
#key mapped into another app, binary and plain-string secrets as whole
values, generated keys (CreateSecret), writes (PutSecretValue and its
staging labels), every source of the credential chain with expiry and
refresh, and the failures the design promises an answer for.

The daemon runs with ttl = 0 and max_stale = 0 (aws_fixtures.SETTINGS):
every read reaches the emulator, and a failing source fails the read. Its
credentials come from its environment only (aws_fixtures.aws_mount).
"""

import json
import os
import re
import time
import uuid

import pytest

# aws_fixtures is a plugin (fixtures aws, aws_factory, aws_mount) whose
# helpers are imported too: register it for assert rewriting first
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]

import sfs  # noqa: E402
from aws_fixtures import bodies, static_env, write_private  # noqa: E402

BILLING = {"DB_PASSWORD": "aws-db-pw 'quoted'",
           "API_KEY": "aws-api-key-0123",
           "MULTI": "aws line one\nline two"}
SHARED = {"stripe_key": "aws-stripe-key-9876", "other": "aws-other-value"}
ROLE = "arn:aws:iam::123456789012:role/secretfs-mount"
NO_CHAIN = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}


def put_json(emu, secrets, name, mapping, **kw):
    for v in mapping.values():
        if isinstance(v, str):
            secrets.add(v)
    return emu.put_secret(name, string=json.dumps(mapping), **kw)


def stored(emu, name, **kw):
    return json.loads(emu.get_secret(name, **kw))


def billing_app(**extra):
    return {"billing": {"store": "aws://prod/billing", "mode": "0600",
                        **extra}}


def signer_of(req):
    """The access key a request was signed with (from its Authorization)."""
    m = re.search(r"Credential=([^/]+)/", req.header("Authorization") or "")
    return m.group(1) if m else None


def assert_clean(emu):
    """Every Secrets Manager call was well signed and understood."""
    bad = [(r.op, r.status, getattr(r, "aws_error", None))
           for r in emu.calls() if r.op.startswith("secretsmanager.")
           and r.fault is None and r.status != 200
           and getattr(r, "aws_error", None) in (
               "InvalidSignatureException", "IncompleteSignatureException",
               "UnrecognizedClientException", "ExpiredTokenException",
               "MissingAuthenticationTokenException",
               "UnknownOperationException", "SerializationException",
               "ValidationException")]
    assert bad == []


def read_until(path, pred, seconds):
    """Read path every 0.25 s until pred(emulator state) holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sfs.read(path)
        if pred():
            return True
        time.sleep(0.25)
    return pred()


# ----------------------------------------------------------------- reads

def test_store_is_a_json_secret(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    app = m.app("billing")
    assert sfs.read_text(app / ".env") == sfs.render(BILLING)
    for k, v in BILLING.items():
        assert sfs.read(app / k) == v.encode(), k
        assert os.stat(app / k).st_size == len(v.encode())
    assert sorted(os.listdir(app)) == sorted([".env", *BILLING])
    gets = aws.calls("GetSecretValue")
    assert gets and all(r.json()["SecretId"] == "prod/billing" for r in gets)
    assert {signer_of(r) for r in gets} == {aws.key.access}
    assert all(r.header("X-Amz-Security-Token") is None for r in gets)
    assert_clean(aws)


def test_json_key_mapped_into_another_app(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    put_json(aws, secrets, "prod/shared", SHARED)
    m = aws_mount(billing_app(
        **{"env.STRIPE": "aws://prod/shared#stripe_key"}))
    app = m.app("billing")
    env = sfs.parse(sfs.read_text(app / ".env"))
    assert env == {**BILLING, "STRIPE": "aws-stripe-key-9876"}
    assert sfs.read(app / "STRIPE") == b"aws-stripe-key-9876"
    assert "other" not in env
    # a key from another entry is read-only here
    m.expect_log(r"STRIPE")
    stage, err = sfs.write_file(app / "STRIPE", "aws-stripe-new")
    assert err == "EROFS", (stage, err)
    assert stored(aws, "prod/shared") == SHARED
    assert aws.count_op("PutSecretValue") == 0


def test_binary_and_plain_string_secrets_are_whole_values(aws, aws_mount,
                                                          secrets):
    cert = (b"-----BEGIN CERTIFICATE-----\n\x81\xfe\xff binary \x7f\x01"
            b"\n-----END CERTIFICATE-----\n")
    aws.put_secret("prod/cert", binary=cert)
    secrets.add("binary \x7f")
    aws.put_secret("prod/note", string=secrets.add("aws plain, not json"))
    m = aws_mount({"billing": {"env.CERT": "aws://prod/cert",
                               "env.NOTE": "aws://prod/note"}})
    app = m.app("billing")
    assert sfs.read(app / "CERT") == cert
    assert os.stat(app / "CERT").st_size == len(cert)
    assert sfs.read(app / "NOTE") == b"aws plain, not json"


def test_stage_and_version_parameters(aws, aws_mount, secrets):
    v1 = put_json(aws, secrets, "prod/db", {"password": "aws-pw-v1"})
    put_json(aws, secrets, "prod/db", {"password": "aws-pw-v2"})
    m = aws_mount({"billing": {
        "env.PREV": "aws://prod/db?stage=AWSPREVIOUS#password",
        "env.OLD": f"aws://prod/db?version={v1}#password",
        "env.NEW": "aws://prod/db#password"}})
    app = m.app("billing")
    assert sfs.read(app / "PREV") == b"aws-pw-v1"
    assert sfs.read(app / "OLD") == b"aws-pw-v1"
    assert sfs.read(app / "NEW") == b"aws-pw-v2"
    asked = bodies(aws, "GetSecretValue")
    assert {"SecretId": "prod/db", "VersionStage": "AWSPREVIOUS"} in asked
    assert any(b.get("VersionId") == v1 for b in asked)


def test_secret_by_arn(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/arn", {"K": "aws-by-arn-value"})
    arn = aws.secret("prod/arn").arn
    m = aws_mount({"billing": {"env.K": f"aws://{arn}#K"}})
    assert sfs.read(m.app("billing") / "K") == b"aws-by-arn-value"


# ---------------------------------------------------- generated values

def test_generated_key_creates_the_secret(aws, aws_mount, secrets):
    m = aws_mount({"gen": {"store": "aws://prod/gen",
                           "env.TOKEN": "generate:hex:16"}})
    value = secrets.add(sfs.read_text(m.app("gen") / "TOKEN"))
    assert re.fullmatch(r"[0-9a-f]{32}", value)
    creates = bodies(aws, "CreateSecret")
    assert creates, aws.ops()
    assert creates[0]["Name"] == "prod/gen"
    assert 32 <= len(creates[0]["ClientRequestToken"]) <= 64
    assert json.loads(creates[0]["SecretString"]) == {"TOKEN": value}
    assert stored(aws, "prod/gen") == {"TOKEN": value}
    assert aws.versions("prod/gen") == {
        creates[0]["ClientRequestToken"]: ["AWSCURRENT"]}
    # served from the store from now on, not generated again
    assert sfs.read_text(m.app("gen") / "TOKEN") == value
    assert len(bodies(aws, "CreateSecret")) == 1
    assert aws.count_op("PutSecretValue") == 0


def test_generated_key_added_to_an_existing_secret(aws, aws_mount, secrets):
    first = put_json(aws, secrets, "prod/gen2", {"NAME": "aws-gen-name"})
    m = aws_mount({"gen": {"store": "aws://prod/gen2",
                           "env.TOKEN": "generate:hex:16"}})
    value = secrets.add(sfs.read_text(m.app("gen") / "TOKEN"))
    assert stored(aws, "prod/gen2") == {"NAME": "aws-gen-name",
                                        "TOKEN": value}
    puts = bodies(aws, "PutSecretValue")
    assert len(puts) == 1
    new = puts[0]["ClientRequestToken"]
    assert aws.versions("prod/gen2") == {first: ["AWSPREVIOUS"],
                                         new: ["AWSCURRENT"]}
    assert aws.count_op("CreateSecret") == 0


# ---------------------------------------------------------------- writes

def test_key_write_is_a_put_secret_value(aws, aws_mount, secrets):
    first = put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    new = secrets.add("aws-new-db-pw")
    assert sfs.write_file(m.app("billing") / "DB_PASSWORD", new) == \
        (None, None)
    assert stored(aws, "prod/billing") == {**BILLING, "DB_PASSWORD": new}
    puts = aws.calls("PutSecretValue")
    assert [r.status for r in puts] == [200]
    body = puts[0].json()
    uuid.UUID(body["ClientRequestToken"])
    assert body["SecretId"] in ("prod/billing", aws.secret("prod/billing").arn)
    assert "VersionStages" not in body
    assert json.loads(body["SecretString"]) == {**BILLING,
                                                "DB_PASSWORD": new}
    assert aws.versions("prod/billing") == {
        first: ["AWSPREVIOUS"], body["ClientRequestToken"]: ["AWSCURRENT"]}
    assert sfs.read(m.app("billing") / "DB_PASSWORD") == new.encode()
    assert_clean(aws)


def test_env_write_lands(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    env = m.app("billing") / ".env"
    text = sfs.read_text(env).replace("aws-api-key-0123", "aws-api-key-new")
    secrets.add("aws-api-key-new")
    assert sfs.write_file(env, text) == (None, None)
    assert stored(aws, "prod/billing") == {**BILLING,
                                           "API_KEY": "aws-api-key-new"}
    assert sfs.read_text(env) == sfs.render({**BILLING,
                                             "API_KEY": "aws-api-key-new"})


# --------------------------------------------------- credential sources

def test_session_token_from_environment(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    temp = aws.new_credentials(temporary=True, ttl=3600)
    m = aws_mount(billing_app(), env=static_env(temp))
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    gets = aws.calls("GetSecretValue")
    assert gets and all(r.status == 200 for r in gets)
    assert {r.header("X-Amz-Security-Token") for r in gets} == {temp.token}
    assert {signer_of(r) for r in gets} == {temp.access}
    # the token header is signed, as curl signs what it is given
    assert all("x-amz-security-token" in r.header("Authorization")
               for r in gets)


def test_endpoint_and_region_from_environment(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app(), endpoint=None, region=None,
                  env={**static_env(aws.key),
                       "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws.url,
                       "AWS_REGION": aws.region})
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    assert "/us-east-1/secretsmanager/aws4_request" in \
        aws.calls("GetSecretValue")[0].header("Authorization")


@pytest.mark.timeout_s(90)
def test_web_identity_rereads_token_file(aws, aws_mount, secrets, tmp_path):
    put_json(aws, secrets, "prod/billing", BILLING)
    aws.add_role(ROLE, ["aws-jwt-one.payload.sig"], ttl=16)
    tok = write_private(tmp_path / "web-token", "aws-jwt-one.payload.sig\n")
    m = aws_mount(billing_app(), env={
        **NO_CHAIN, "AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_ROLE_ARN": ROLE,
        "AWS_ROLE_SESSION_NAME": "secretfs-it",
        "AWS_ENDPOINT_URL_STS": aws.url})
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    sts = aws.calls("sts.AssumeRoleWithWebIdentity")
    assert len(sts) == 1 and sts[0].status == 200
    form = dict(x.split("=", 1) for x in sts[0].body.decode().split("&"))
    assert form["Action"] == "AssumeRoleWithWebIdentity"
    assert form["Version"] == "2011-06-15"
    assert sts[0].header("Authorization") is None
    first = aws.issued_by("sts")[0]
    assert signer_of(aws.calls("GetSecretValue")[0]) == first.access
    # the projected token rotates; the next exchange must read the file
    tok.write_text("aws-jwt-two.payload.sig\n")
    aws.accept_web_token(ROLE, "aws-jwt-two.payload.sig")
    aws.reject_web_token(ROLE, "aws-jwt-one.payload.sig")
    assert read_until(app / "API_KEY",
                      lambda: len(aws.issued_by("sts")) >= 2, 40), \
        "the web identity credentials were never refreshed"
    sts = aws.calls("sts.AssumeRoleWithWebIdentity")
    tokens = [aws_form(r)["WebIdentityToken"] for r in sts]
    assert tokens[:2] == ["aws-jwt-one.payload.sig", "aws-jwt-two.payload.sig"]
    assert all(aws_form(r)["RoleArn"] == ROLE for r in sts)
    # refreshed before the first ones expired, and used right away
    assert sts[1].time < first.expires
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    assert signer_of(aws.calls("GetSecretValue")[-1]) == \
        aws.issued_by("sts")[-1].access
    assert_clean(aws)


def aws_form(req):
    import urllib.parse
    return {k: v[-1] for k, v in
            urllib.parse.parse_qs(req.body.decode()).items()}


def test_shared_credentials_file_with_profile(aws, aws_mount, secrets,
                                              tmp_path):
    put_json(aws, secrets, "prod/billing", BILLING)
    prof = aws.add_credentials("AKIAPROFILEPROD0001",
                               "aws-profile-prod-secret-key")
    creds = write_private(tmp_path / "credentials",
                          "[default]\naws_access_key_id = AKIAWRONGDEFAULT01\n"
                          "aws_secret_access_key = aws-wrong-default-key\n\n"
                          "[prod]\naws_access_key_id = AKIAPROFILEPROD0001\n"
                          "aws_secret_access_key = aws-profile-prod-secret-key"
                          "\n")
    secrets.add("aws-wrong-default-key")
    m = aws_mount(billing_app(), profile="prod", env={
        **NO_CHAIN, "AWS_SHARED_CREDENTIALS_FILE": creds})
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    assert {signer_of(r) for r in aws.calls("GetSecretValue")} == \
        {prof.access}


def test_config_file_profile_with_session_token(aws, aws_mount, secrets,
                                                tmp_path):
    put_json(aws, secrets, "prod/billing", BILLING)
    temp = aws.new_credentials(temporary=True, ttl=3600)
    conf = write_private(tmp_path / "config",
                         "[profile dev]\n"
                         f"aws_access_key_id = {temp.access}\n"
                         f"aws_secret_access_key = {temp.secret}\n"
                         f"aws_session_token = {temp.token}\n")
    m = aws_mount(billing_app(), env={**NO_CHAIN, "AWS_PROFILE": "dev",
                                      "AWS_CONFIG_FILE": conf})
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    gets = aws.calls("GetSecretValue")
    assert {r.header("X-Amz-Security-Token") for r in gets} == {temp.token}


def test_readable_credentials_file_is_refused(aws, aws_mount, secrets,
                                              tmp_path):
    put_json(aws, secrets, "prod/billing", BILLING)
    loose = write_private(tmp_path / "credentials",
                          f"[default]\naws_access_key_id = {aws.key.access}\n"
                          f"aws_secret_access_key = {aws.key.secret}\n",
                          mode=0o644)
    m = aws_mount(billing_app(), env={**NO_CHAIN,
                                      "AWS_SHARED_CREDENTIALS_FILE": loose})
    m.expect_log(r"(?i)group|others|mode|permission|credentials")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") in \
        ("EACCES", "EIO")
    assert aws.count_op("GetSecretValue") == 0


def test_ecs_full_uri_with_auth_token(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    ep = aws.add_container_endpoint(auth_token="aws-ecs-auth-token-1")
    m = aws_mount(billing_app(), env={
        **NO_CHAIN, "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "aws-ecs-auth-token-1"})
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    ecs = aws.calls("ecs")
    assert len(ecs) == 1 and ecs[0].status == 200
    assert ecs[0].header("Authorization") == "aws-ecs-auth-token-1"
    issued = aws.issued_by("ecs")[0]
    gets = aws.calls("GetSecretValue")
    assert {signer_of(r) for r in gets} == {issued.access}
    assert {r.header("X-Amz-Security-Token") for r in gets} == {issued.token}


def test_ecs_token_file_reread_and_relative_uri(aws, aws_mount, secrets,
                                                tmp_path):
    put_json(aws, secrets, "prod/billing", BILLING)
    ep = aws.add_container_endpoint("/v2/credentials/task-7",
                                    auth_token="aws-ecs-file-token-1",
                                    ttl=16)
    tokfile = write_private(tmp_path / "ecs-token", "aws-ecs-file-token-1")
    m = aws_mount(billing_app(), env={
        **NO_CHAIN, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ep.path,
        "SECRETFS_ECS_ENDPOINT": aws.url,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokfile})
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    tokfile.write_text("aws-ecs-file-token-2")
    ep.auth_token = "aws-ecs-file-token-2"
    secrets.add("aws-ecs-file-token-2")
    assert read_until(app / "API_KEY",
                      lambda: len(aws.issued_by("ecs")) >= 2, 30), \
        "the container credentials were never refreshed"
    auths = [r.header("Authorization") for r in aws.calls("ecs")]
    assert auths[0] == "aws-ecs-file-token-1"
    assert "aws-ecs-file-token-2" in auths[1:]


@pytest.mark.timeout_s(90)
def test_refresh_before_expiry(aws, aws_mount, secrets):
    """Short-lived container credentials are fetched again before they
    expire; no request ever goes out with expired ones."""
    put_json(aws, secrets, "prod/billing", BILLING)
    ep = aws.add_container_endpoint(auth_token="aws-ecs-refresh-tok", ttl=16)
    m = aws_mount(billing_app(), env={
        **NO_CHAIN, "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "aws-ecs-refresh-tok"})
    app = m.app("billing")
    assert read_until(app / "API_KEY",
                      lambda: len(aws.issued_by("ecs")) >= 3, 45)
    issued = aws.issued_by("ecs")
    ecs = aws.calls("ecs")
    for prev, nxt in zip(issued, ecs[1:]):
        assert nxt.time < prev.expires, "refreshed only after expiry"
    # each SM request used credentials valid at the time
    by_key = {c.access: c for c in issued}
    for r in aws.calls("GetSecretValue"):
        c = by_key[signer_of(r)]
        assert c.issued_at <= r.time < c.expires
        assert r.status == 200, getattr(r, "aws_error", None)


@pytest.mark.timeout_s(90)
def test_credentials_refused_mid_life_are_fetched_again(aws, aws_mount,
                                                        secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    ep = aws.add_container_endpoint(auth_token="aws-ecs-revoke-tok",
                                    ttl=3600)
    m = aws_mount(billing_app(), env={
        **NO_CHAIN, "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "aws-ecs-revoke-tok"})
    m.expect_log(r"(?i)expired|refus|credential|token")
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    time.sleep(11)      # older than the provider's "just fetched" window
    aws.expire(aws.issued_by("ecs")[0].access)
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    assert len(aws.issued_by("ecs")) == 2
    errors = [getattr(r, "aws_error", None) for r in
              aws.calls("GetSecretValue")]
    assert "ExpiredTokenException" in errors
    assert aws.calls("GetSecretValue")[-1].status == 200


def test_imdsv2(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    aws.set_imds_role("secretfs-ec2", ttl=3600)
    m = aws_mount(billing_app(), env={
        **NO_CHAIN, "AWS_EC2_METADATA_DISABLED": None,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": aws.url})
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    imds = aws.calls("imds")
    assert [(r.method, r.path, r.status) for r in imds] == [
        ("PUT", "/latest/api/token", 200),
        ("GET", "/latest/meta-data/iam/security-credentials/", 200),
        ("GET", "/latest/meta-data/iam/security-credentials/secretfs-ec2",
         200)]
    ttl = int(imds[0].header("X-aws-ec2-metadata-token-ttl-seconds"))
    assert 1 <= ttl <= 21600
    assert imds[1].header("X-aws-ec2-metadata-token") and \
        imds[2].header("X-aws-ec2-metadata-token") == \
        imds[1].header("X-aws-ec2-metadata-token")
    issued = aws.issued_by("imds")[0]
    assert {signer_of(r) for r in aws.calls("GetSecretValue")} == \
        {issued.access}


def test_no_credentials_anywhere(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app(), env=NO_CHAIN)
    m.expect_log(r"(?i)credential")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") in \
        ("EACCES", "EIO")
    assert aws.count_op("GetSecretValue") == 0


# ----------------------------------------------------- refusals, faults

def test_wrong_secret_key_is_eacces_and_logged_without_the_key(
        aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    wrong = secrets.add("aws-wrong-secret-key-zzzz9999")
    m = aws_mount(billing_app(), env={"AWS_ACCESS_KEY_ID": aws.key.access,
                                      "AWS_SECRET_ACCESS_KEY": wrong})
    m.expect_log(r"(?i)prod/billing|signature|secret access key")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    gets = aws.calls("GetSecretValue")
    assert gets and {getattr(r, "aws_error", None) for r in gets} == \
        {"InvalidSignatureException"}
    text = m.stderr_text()
    lines = [ln for ln in text.splitlines()
             if re.match(r"secretfs: (error|warn): ", ln)]
    assert any(re.search(r"(?i)signature|secret access key", ln)
               for ln in lines), lines
    assert wrong not in text and aws.key.secret not in text


def test_access_denied_is_eacces(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    put_json(aws, secrets, "prod/hr", {"k": "aws-hr-secret-v"})
    limited = aws.add_credentials("AKIALIMITEDMOUNT001",
                                  "aws-limited-mount-key",
                                  allow=[("GetSecretValue", "prod/billing")])
    m = aws_mount(billing_app(**{"env.HR": "aws://prod/hr#k"}),
                  env=static_env(limited))
    m.expect_log(r"prod/hr")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "HR") == "EACCES"
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    assert sfs.errno_of(sfs.read, app / ".env") == "EACCES"
    # the reference once; AWS's own message, quoted after it, names the
    # resource again in its words ("... on resource: prod/hr ...")
    assert "aws://prod/hr#k: access denied by AWS" in m.stderr_text()
    assert "aws://prod/hr#k: prod/hr" not in m.stderr_text()


@pytest.mark.parametrize("status,kind", [(403, "html"), (401, "xml")])
def test_refusal_without_aws_error_type_is_eacces_never_stale(
        aws, aws_mount, secrets, status, kind):
    """A proxy or an AWS-compatible server refusing with an HTML or XML
    page (no AWS error type) refuses all the same: EACCES, and no stale
    value, although max_stale would cover a transient failure (the 502
    control below shows it does)."""
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app(), settings={"max_stale": "1h"})
    m.expect_log(r"prod/billing")
    app = m.app("billing")
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"

    rule = aws.faults.fail_next(None, 502, body=b"<html>Bad Gateway</html>",
                                content_type="text/html",
                                path=r"GetSecretValue$")
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    assert os.getxattr(app / "API_KEY", "user.secretfs.stale") == b"1"
    aws.faults.remove(rule)

    rule = aws.refuse_next(None, status, kind, op="GetSecretValue")
    assert sfs.errno_of(sfs.read, app / "API_KEY") == "EACCES"
    assert sfs.errno_of(sfs.read, app / ".env") == "EACCES"
    assert rule.fired >= 2
    aws.faults.remove(rule)
    assert sfs.repeated_locator(m.stderr_text(), "aws://prod/billing",
                                "prod/billing") == []
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"


def test_missing_secret_as_a_mapping_fails(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app(**{"env.GONE": "aws://prod/nothing#k"}))
    m.expect_log(r"prod/nothing")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "GONE") in ("ENOENT", "EIO")
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"


@pytest.mark.parametrize("kind", ["throttle", "500", "drop"])
def test_transient_failure_once_is_retried(aws, aws_mount, secrets, kind):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    if kind == "throttle":
        aws.throttle_next(1, op="GetSecretValue")
    elif kind == "500":
        aws.error_next(1, "InternalServiceError", "boom", status=500,
                       op="GetSecretValue")
    else:
        aws.faults.drop_next(1, path=r"GetSecretValue$")
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    assert aws.faults.pending() == 0
    statuses = [r.status for r in aws.calls("GetSecretValue")]
    assert statuses[-1] == 200 and len(statuses) >= 2, statuses


GARBAGE = ["not-json", "truncated", "empty", "null", "array", "wrong-types",
           "no-value", "bad-base64"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_body_is_eio(aws, aws_mount, secrets, kind):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    m.expect_log(r"(?i)prod/billing|garbage|json|base64")
    rule = aws.faults.garbage_next(None, kind, path=r"GetSecretValue$")
    app = m.app("billing")
    assert sfs.errno_of(sfs.read, app / "API_KEY") == "EIO"
    assert sfs.errno_of(sfs.read, app / ".env") == "EIO"
    assert rule.fired >= 1
    aws.faults.remove(rule)
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    assert m.proc.poll() is None


def test_huge_body_is_eio(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    m.expect_log(r"(?i)prod/billing|large|limit|big")
    rule = aws.faults.huge_next(None, size=5 << 20, path=r"GetSecretValue$")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EIO"
    assert rule.fired >= 1
    aws.faults.remove(rule)
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"


def test_write_retried_after_lost_answer_makes_one_version(aws, aws_mount,
                                                           secrets):
    first = put_json(aws, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app())
    aws.faults.drop_next(1, after_handling=True, path=r"PutSecretValue$")
    new = secrets.add("aws-after-drop-pw")
    stage, err = sfs.write_file(m.app("billing") / "DB_PASSWORD", new)
    assert stored(aws, "prod/billing")["DB_PASSWORD"] == new
    puts = aws.calls("PutSecretValue")
    tokens = {r.json()["ClientRequestToken"] for r in puts}
    assert len(tokens) == 1, "a retry must resend the same token"
    assert len(aws.versions("prod/billing")) == 2
    assert aws.versions("prod/billing")[first] == ["AWSPREVIOUS"]
    assert (stage, err) == (None, None)


def test_tls_with_ca_file(aws_factory, aws_mount, secrets):
    emu = aws_factory(tls=True)
    put_json(emu, secrets, "prod/billing", BILLING)
    m = aws_mount(billing_app(), emu=emu, ca_file=emu.tls.ca_file)
    assert sfs.read(m.app("billing") / "API_KEY") == b"aws-api-key-0123"
    assert_clean(emu)


def test_expired_session_token_is_eacces(aws, aws_mount, secrets):
    put_json(aws, secrets, "prod/billing", BILLING)
    temp = aws.new_credentials(temporary=True, ttl=3600)
    aws.expire(temp.access)
    m = aws_mount(billing_app(), env=static_env(temp))
    m.expect_log(r"(?i)prod/billing|expired")
    assert sfs.errno_of(sfs.read, m.app("billing") / "API_KEY") == "EACCES"
    assert {getattr(r, "aws_error", None) for r in
            aws.calls("GetSecretValue")} == {"ExpiredTokenException"}
    assert re.search(r"(?i)^secretfs: (error|warn): .*expired",
                     m.stderr_text(), re.M)


def test_qualified_error_types_are_understood(aws_factory, aws_mount,
                                              secrets):
    """__type as namespace#Type and x-amzn-ErrorType Type:url, forms real
    AWS services send: the provider must strip both (aws_error_type in
    providers/aws.c)."""
    emu = aws_factory(qualified_errors=True)
    put_json(emu, secrets, "prod/billing", BILLING)
    put_json(emu, secrets, "prod/hr", {"k": "aws-hr-qualified-v"})
    limited = emu.add_credentials("AKIAQUALIFIED000001",
                                  "aws-qualified-mount-key",
                                  allow=[("GetSecretValue", "prod/billing")])
    m = aws_mount(billing_app(**{"env.HR": "aws://prod/hr#k"}), emu=emu,
                  env=static_env(limited))
    m.expect_log(r"prod/hr")
    app = m.app("billing")
    # AccessDeniedException recognized: EACCES, not a generic EIO
    assert sfs.errno_of(sfs.read, app / "HR") == "EACCES"
    # ThrottlingException recognized: retried
    emu.throttle_next(1, op="GetSecretValue")
    assert sfs.read(app / "API_KEY") == b"aws-api-key-0123"
    assert emu.faults.pending() == 0
