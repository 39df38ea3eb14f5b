"""The AWS emulator against the real clients: boto3/botocore (Debian
python3-boto3, python3-botocore) for Secrets Manager and STS, botocore's
own credential providers for ECS and IMDS, and curl 7.88's
CURLOPT_AWS_SIGV4 (the CLI's --aws-sigv4) for the signing rules listed
at aws_send in providers/aws.c. Raw HTTP where the exact wire shape matters.

No FUSE here: these run anywhere /usr/bin/python3 has boto3 and pytest.
In CI (CI=true) a missing client fails instead of skipping.
"""

import base64
import datetime
import json
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

# aws_fixtures is a plugin (fixtures aws, aws_factory) whose helpers are
# imported too: register it for assert rewriting first
pytest.register_assert_rewrite("aws_fixtures")
pytest_plugins = ["aws_fixtures"]

from aws_fixtures import EMULATORS, IN_CI, REGION  # noqa: E402

if IN_CI:
    import boto3  # in CI a missing client is a failure, never a skip
else:
    boto3 = pytest.importorskip("boto3",
                                reason="apt-get install python3-boto3")
import requests  # noqa: E402  (Debian python3-requests, a dependency)
from botocore import UNSIGNED  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import (  # noqa: E402
    AssumeRoleWithWebIdentityProvider, ContainerProvider, Credentials,
    InstanceMetadataProvider)
from botocore.exceptions import (  # noqa: E402
    ClientError, CredentialRetrievalError)
from botocore.utils import (ContainerMetadataFetcher,  # noqa: E402
                            InstanceMetadataFetcher)

import aws as aws_mod  # noqa: E402  (tests/emulators, put on sys.path)

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                  connect_timeout=5, read_timeout=10)


def sm(emu, cred=None, region=None, config=None, **kw):
    cred = cred or emu.key
    return boto3.client("secretsmanager", endpoint_url=emu.url,
                        region_name=region or emu.region,
                        aws_access_key_id=cred.access,
                        aws_secret_access_key=kw.pop("secret", cred.secret),
                        aws_session_token=kw.pop("token", cred.token),
                        config=config or NO_RETRY, **kw)


def sm_with(emu, creds, **kw):
    """A client signing with botocore Credentials (e.g. from a provider)."""
    f = creds.get_frozen_credentials()
    return boto3.client("secretsmanager", endpoint_url=emu.url,
                        region_name=emu.region, aws_access_key_id=f.access_key,
                        aws_secret_access_key=f.secret_key,
                        aws_session_token=f.token, config=NO_RETRY, **kw)


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def message(exc_info):
    return exc_info.value.response["Error"]["Message"]


def status(exc_info):
    return exc_info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def signed(emu, op, body, cred=None, headers=None, region=None,
           service="secretsmanager", when=None):
    """A request signed by botocore's SigV4Auth, ready to send (or to
    tamper with first)."""
    cred = cred or emu.key
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": aws_mod.JSON_TYPE,
            "X-Amz-Target": f"secretsmanager.{op}"}
    hdrs.update(headers or {})
    req = AWSRequest(method="POST", url=emu.url + "/", data=data,
                     headers=hdrs)
    signer = SigV4Auth(Credentials(cred.access, cred.secret, cred.token),
                       service, region or emu.region)
    if when is None:
        signer.add_auth(req)
    else:
        # add_auth with another time than utcnow()
        req.context["timestamp"] = aws_mod.amz_date(when)
        signer._modify_request_before_signing(req)
        canonical = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, canonical), req)
        signer._inject_signature_to_request(req, sig)
    return req


def send(req, **kw):
    p = req.prepare()
    return requests.request(p.method, p.url, headers=dict(p.headers),
                            data=p.body, timeout=10, **kw)


# ------------------------------------------------------------ reading

def test_create_and_get_string_by_name_and_arns(aws):
    c = sm(aws)
    r = c.create_secret(Name="prod/billing", SecretString='{"DB":"pw-1"}')
    assert re.fullmatch(r"arn:aws:secretsmanager:us-east-1:123456789012:"
                        r"secret:prod/billing-[A-Za-z0-9]{6}", r["ARN"])
    assert r["Name"] == "prod/billing"
    vid = r["VersionId"]
    uuid.UUID(vid)          # boto3 made the ClientRequestToken a UUID
    for sid in ("prod/billing", r["ARN"], r["ARN"][:-7]):
        g = c.get_secret_value(SecretId=sid)
        assert g["SecretString"] == '{"DB":"pw-1"}', sid
        assert g["ARN"] == r["ARN"] and g["Name"] == "prod/billing"
        assert g["VersionId"] == vid
        assert g["VersionStages"] == ["AWSCURRENT"]
        assert isinstance(g["CreatedDate"], datetime.datetime)
        assert "SecretBinary" not in g
    assert aws.get_secret("prod/billing") == '{"DB":"pw-1"}'
    # a full ARN with the wrong random suffix names nothing
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_secret_value(SecretId=r["ARN"][:-6] + "zzzzzz")


def test_binary_secret_exact_bytes(aws):
    c = sm(aws)
    blob = bytes(range(256)) + b"\x00tail\xff"
    c.create_secret(Name="prod/cert", SecretBinary=blob)
    g = c.get_secret_value(SecretId="prod/cert")
    assert g["SecretBinary"] == blob
    assert "SecretString" not in g
    assert aws.get_secret("prod/cert") == blob
    # on the wire it is standard base64 with padding
    raw = send(signed(aws, "GetSecretValue", {"SecretId": "prod/cert"}))
    assert raw.json()["SecretBinary"] == base64.b64encode(blob).decode()


def test_wire_shape_of_get(aws):
    aws.put_secret("wire", string="v-wire-1")
    r = send(signed(aws, "GetSecretValue", {"SecretId": "wire"}))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-amz-json-1.1"
    uuid.UUID(r.headers["x-amzn-RequestId"])
    # epoch seconds as Java writes doubles, keys sorted, compact
    assert re.search(rb'"CreatedDate":1\.\d+E9[,}]', r.content), r.content
    keys = list(json.loads(r.content))
    assert keys == sorted(keys)
    assert b": " not in r.content


def test_get_by_version_and_stage(aws):
    c = sm(aws)
    v1 = aws.put_secret("app", string="value-one")
    v2 = aws.put_secret("app", string="value-two")
    assert c.get_secret_value(SecretId="app")["SecretString"] == "value-two"
    prev = c.get_secret_value(SecretId="app", VersionStage="AWSPREVIOUS")
    assert (prev["SecretString"], prev["VersionId"]) == ("value-one", v1)
    assert prev["VersionStages"] == ["AWSPREVIOUS"]
    byid = c.get_secret_value(SecretId="app", VersionId=v1)
    assert byid["SecretString"] == "value-one"
    both = c.get_secret_value(SecretId="app", VersionId=v2,
                              VersionStage="AWSCURRENT")
    assert both["SecretString"] == "value-two"
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.get_secret_value(SecretId="app", VersionId=v1,
                           VersionStage="AWSCURRENT")
    with pytest.raises(c.exceptions.ResourceNotFoundException) as e:
        c.get_secret_value(SecretId="app", VersionStage="AWSPENDING")
    assert message(e) == ("Secrets Manager can't find the specified secret "
                          "value for staging label: AWSPENDING")
    with pytest.raises(c.exceptions.ResourceNotFoundException) as e:
        c.get_secret_value(SecretId="app", VersionId="f" * 36)
    assert message(e).endswith("for VersionId: " + "f" * 36)


# ------------------------------------------------------------ writing

def test_put_moves_stages(aws):
    c = sm(aws)
    first = c.create_secret(Name="rot", SecretString="rot-1")["VersionId"]
    p = c.put_secret_value(SecretId="rot", SecretString="rot-2")
    assert p["VersionStages"] == ["AWSCURRENT"]
    assert p["Name"] == "rot" and p["ARN"].startswith(aws.arn_prefix())
    second = p["VersionId"]
    assert aws.versions("rot") == {first: ["AWSPREVIOUS"],
                                   second: ["AWSCURRENT"]}
    third = c.put_secret_value(SecretId="rot", SecretString="rot-3")[
        "VersionId"]
    # the oldest loses its labels (deprecated, still readable by id)
    assert aws.versions("rot") == {first: [], second: ["AWSPREVIOUS"],
                                   third: ["AWSCURRENT"]}
    d = c.describe_secret(SecretId="rot")
    assert d["VersionIdsToStages"] == {second: ["AWSPREVIOUS"],
                                       third: ["AWSCURRENT"]}
    assert c.get_secret_value(SecretId="rot", VersionId=first)[
        "SecretString"] == "rot-1"
    # a pending version is staged without promotion
    pend = c.put_secret_value(SecretId="rot", SecretString="rot-4",
                              VersionStages=["AWSPENDING"])
    assert pend["VersionStages"] == ["AWSPENDING"]
    assert c.get_secret_value(SecretId="rot")["SecretString"] == "rot-3"
    assert aws.get_secret("rot", stage="AWSPENDING") == "rot-4"


def test_put_is_idempotent_per_client_request_token(aws):
    c = sm(aws)
    c.create_secret(Name="idem", SecretString="idem-0")
    tok = str(uuid.uuid4())
    a = c.put_secret_value(SecretId="idem", SecretString="idem-1",
                           ClientRequestToken=tok)
    b = c.put_secret_value(SecretId="idem", SecretString="idem-1",
                           ClientRequestToken=tok)
    assert a["VersionId"] == b["VersionId"] == tok
    assert a["VersionStages"] == b["VersionStages"] == ["AWSCURRENT"]
    assert len(aws.versions("idem")) == 2
    with pytest.raises(c.exceptions.ResourceExistsException) as e:
        c.put_secret_value(SecretId="idem", SecretString="idem-other",
                           ClientRequestToken=tok)
    assert message(e) == ("You can't modify an existing version, you can "
                          "only create a new version.")
    assert aws.get_secret("idem") == "idem-1"
    # the same value under a new token is a new version
    c.put_secret_value(SecretId="idem", SecretString="idem-1")
    assert len(aws.versions("idem")) == 3


def test_raw_put_needs_client_request_token(aws):
    aws.put_secret("raw", string="raw-0")
    r = send(signed(aws, "PutSecretValue", {"SecretId": "raw",
                                            "SecretString": "raw-1"}))
    assert r.status_code == 400
    assert r.json()["__type"] == "ValidationException"
    assert "clientRequestToken" in r.json()["message"]
    short = send(signed(aws, "PutSecretValue", {
        "SecretId": "raw", "SecretString": "raw-1",
        "ClientRequestToken": "too-short"}))
    assert short.status_code == 400
    assert "greater than or equal to 32" in short.json()["message"]
    assert aws.get_secret("raw") == "raw-0"


def test_create_errors_and_idempotent_retry(aws):
    c = sm(aws)
    tok = str(uuid.uuid4())
    a = c.create_secret(Name="dup", SecretString="dup-1",
                        ClientRequestToken=tok, Description="d",
                        Tags=[{"Key": "team", "Value": "billing"}])
    # a retry whose first answer was lost succeeds with the same answer
    b = c.create_secret(Name="dup", SecretString="dup-1",
                        ClientRequestToken=tok)
    assert (a["ARN"], a["VersionId"]) == (b["ARN"], b["VersionId"])
    with pytest.raises(c.exceptions.ResourceExistsException) as e:
        c.create_secret(Name="dup", SecretString="dup-2")
    assert message(e) == "The operation failed because the secret dup " \
        "already exists."
    with pytest.raises(c.exceptions.InvalidParameterException):
        c.create_secret(Name="bad name!", SecretString="x")
    with pytest.raises(c.exceptions.InvalidParameterException) as e:
        c.create_secret(Name="both", SecretString="s", SecretBinary=b"b")
    assert message(e) == ("You can't specify both a binary secret value and "
                          "a string secret value in the same secret.")
    assert "both" not in aws.names()
    # no value: a secret without versions, whose value is not found
    c.create_secret(Name="empty")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_secret_value(SecretId="empty")
    d = c.describe_secret(SecretId="dup")
    assert d["Description"] == "d"
    assert d["Tags"] == [{"Key": "team", "Value": "billing"}]


def test_describe_and_deleted_secret(aws):
    c = sm(aws)
    aws.put_secret("gone", string="gone-v")
    c.get_secret_value(SecretId="gone")
    d = c.describe_secret(SecretId="gone")
    assert set(d) >= {"ARN", "Name", "LastChangedDate", "LastAccessedDate",
                      "CreatedDate", "VersionIdsToStages"}
    assert d["LastAccessedDate"].time() == datetime.time(0, 0)
    aws.delete_secret("gone")
    with pytest.raises(c.exceptions.InvalidRequestException) as e:
        c.get_secret_value(SecretId="gone")
    assert "marked for deletion" in message(e)
    assert "DeletedDate" in c.describe_secret(SecretId="gone")
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_secret(Name="gone", SecretString="again")
    assert [s["Name"] for s in c.list_secrets()["SecretList"]] == []
    aws.restore_secret("gone")
    assert c.get_secret_value(SecretId="gone")["SecretString"] == "gone-v"


def test_list_with_paginator_and_filters(aws):
    c = sm(aws)
    names = [f"team/app{i}" for i in range(7)] + ["other/x"]
    for n in names:
        aws.put_secret(n, string="list-" + n)
    pages = list(c.get_paginator("list_secrets").paginate(
        PaginationConfig={"PageSize": 3}))
    assert [len(p["SecretList"]) for p in pages] == [3, 3, 2]
    assert all("NextToken" in p for p in pages[:-1])
    assert "NextToken" not in pages[-1]
    seen = [s["Name"] for p in pages for s in p["SecretList"]]
    assert sorted(seen) == sorted(names)
    # newest first by default
    assert seen[0] == "other/x"
    for s in pages[0]["SecretList"]:
        assert list(s["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]
    asc = c.list_secrets(SortOrder="asc", MaxResults=1)
    assert asc["SecretList"][0]["Name"] == "team/app0"
    f = c.list_secrets(Filters=[{"Key": "name", "Values": ["team/"]}])
    assert sorted(s["Name"] for s in f["SecretList"]) == sorted(names[:-1])
    neg = c.list_secrets(Filters=[{"Key": "name", "Values": ["!team/"]}])
    assert [s["Name"] for s in neg["SecretList"]] == ["other/x"]
    with pytest.raises(c.exceptions.InvalidNextTokenException):
        c.list_secrets(NextToken="bm90IGEgdG9rZW4=")
    with pytest.raises(ClientError) as e:
        c.list_secrets(MaxResults=101)
    assert code(e) == "ValidationException"


# ------------------------------------------------------------ errors

def test_not_found_shape(aws):
    c = sm(aws)
    with pytest.raises(c.exceptions.ResourceNotFoundException) as e:
        c.get_secret_value(SecretId="nope")
    assert message(e) == "Secrets Manager can't find the specified secret."
    assert status(e) == 400
    raw = send(signed(aws, "GetSecretValue", {"SecretId": "nope"}))
    assert raw.status_code == 400
    assert raw.json() == {"__type": "ResourceNotFoundException",
                          "Message": "Secrets Manager can't find the "
                          "specified secret."}
    for op in ("DescribeSecret", "PutSecretValue"):
        r = send(signed(aws, op, {"SecretId": "nope", "SecretString": "x",
                                  "ClientRequestToken": "t" * 32}))
        assert r.json()["__type"] == "ResourceNotFoundException", op


def test_access_denied_by_allow_list(aws):
    aws.put_secret("prod/billing", string="allowed-v")
    aws.put_secret("prod/hr", string="denied-v")
    key = aws.add_credentials("AKIALIMITED00000001", "limited-secret-key-1",
                              allow=[("GetSecretValue", "prod/billing*"),
                                     "secretsmanager:DescribeSecret:*"])
    c = sm(aws, key)
    assert c.get_secret_value(SecretId="prod/billing")["SecretString"] == \
        "allowed-v"
    c.describe_secret(SecretId="prod/hr")
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId="prod/hr")
    assert code(e) == "AccessDeniedException" and status(e) == 400
    assert "is not authorized to perform: secretsmanager:GetSecretValue " \
        "on resource: prod/hr" in message(e)
    # denied even where nothing exists: IAM is asked first
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId="prod/nothing-here")
    assert code(e) == "AccessDeniedException"
    for call in (lambda: c.list_secrets(),
                 lambda: c.put_secret_value(SecretId="prod/billing",
                                            SecretString="x"),
                 lambda: c.create_secret(Name="prod/new", SecretString="x")):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "AccessDeniedException"
    assert aws.get_secret("prod/billing") == "allowed-v"
    assert "prod/new" not in aws.names()


def test_bad_secret_key_is_invalid_signature(aws):
    aws.put_secret("s", string="sig-v")
    c = sm(aws, secret="not-the-right-secret-key-xxxxxxxxxxxxxxx")
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId="s")
    assert code(e) == "InvalidSignatureException" and status(e) == 400
    assert message(e).startswith(aws_mod.SIG_MISMATCH)
    # AWS shows what it computed, to debug signers
    assert "\nThe Canonical String for this request should have been" \
        "\n'POST\n/" in message(e)
    assert "x-amz-target:secretsmanager.GetSecretValue" in message(e)
    assert "20" in message(e).split("String-to-Sign should have been")[1]
    raw = send(signed(aws, "GetSecretValue", {"SecretId": "s"},
                      cred=aws_mod.Cred(aws.key.access, "wrong-secret")))
    assert raw.json()["__type"] == "InvalidSignatureException"
    assert set(raw.json()) == {"__type", "message"}


def test_unknown_key_and_session_tokens(aws):
    aws.put_secret("s", string="tok-v")
    ghost = aws_mod.Cred("AKIANOBODYKNOWS00001", "ghost-secret-key")
    with pytest.raises(ClientError) as e:
        sm(aws, ghost).get_secret_value(SecretId="s")
    assert code(e) == "UnrecognizedClientException"
    assert message(e) == "The security token included in the request is " \
        "invalid."
    temp = aws.new_credentials(temporary=True, ttl=3600)
    assert temp.access.startswith("ASIA") and temp.token
    assert sm(aws, temp).get_secret_value(SecretId="s")["SecretString"] == \
        "tok-v"
    # the session token is required, and must be the right one
    for tok in (None, temp.token[:-4] + "AAAA"):
        c = boto3.client("secretsmanager", endpoint_url=aws.url,
                         region_name=aws.region, aws_access_key_id=temp.access,
                         aws_secret_access_key=temp.secret,
                         aws_session_token=tok, config=NO_RETRY)
        with pytest.raises(ClientError) as e:
            c.get_secret_value(SecretId="s")
        assert code(e) == "UnrecognizedClientException", tok
    # a token sent with a long-term key is refused too
    with pytest.raises(ClientError) as e:
        sm(aws, token=temp.token).get_secret_value(SecretId="s")
    assert code(e) == "UnrecognizedClientException"
    # the token header is signed like any other by botocore
    r = aws.calls("GetSecretValue")[1]
    assert "x-amz-security-token" in r.header("Authorization")


def test_expired_credentials(aws):
    aws.put_secret("s", string="exp-v")
    temp = aws.new_credentials(temporary=True, ttl=2)
    c = sm(aws, temp)
    assert c.get_secret_value(SecretId="s")["SecretString"] == "exp-v"
    time.sleep(max(0, temp.expires - time.time()) + 0.2)
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId="s")
    assert code(e) == "ExpiredTokenException"
    assert message(e) == "The security token included in the request is " \
        "expired"
    static = aws.add_credentials("AKIAEXPIRING0000001", "expiring-key-0001",
                                 expires=time.time() - 1)
    with pytest.raises(ClientError) as e:
        sm(aws, static).get_secret_value(SecretId="s")
    assert code(e) == "ExpiredTokenException"


@pytest.mark.parametrize("offset,text", [
    (900, "Signature expired: "), (-900, "Signature not yet current: ")])
def test_clock_skew(aws, offset, text):
    aws.put_secret("s", string="skew-v")
    aws.clock_offset = offset
    with pytest.raises(ClientError) as e:
        sm(aws).get_secret_value(SecretId="s")
    assert code(e) == "InvalidSignatureException"
    m = message(e)
    assert m.startswith(text), m
    sign = "-" if offset > 0 else "+"
    assert re.fullmatch(r"Signature (expired|not yet current): \d{8}T\d{6}Z "
                        r"is (now earlier|still later) than \d{8}T\d{6}Z "
                        rf"\(\d{{8}}T\d{{6}}Z \{sign} 5 min\.\)", m), m
    # within five minutes is fine; the Date header tells the client the
    # server's time
    aws.clock_offset = offset / 4
    r = sm(aws).get_secret_value(SecretId="s")
    date = r["ResponseMetadata"]["HTTPHeaders"]["date"]
    server = datetime.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")
    skew = server.replace(tzinfo=datetime.timezone.utc).timestamp() - \
        time.time()
    assert abs(skew - offset / 4) < 5


def test_scope_checks(aws):
    aws.put_secret("s", string="scope-v")
    with pytest.raises(ClientError) as e:
        sm(aws, region="us-west-2").get_secret_value(SecretId="s")
    assert code(e) == "InvalidSignatureException"
    assert message(e) == "Credential should be scoped to a valid region, " \
        "not 'us-west-2'. "
    r = send(signed(aws, "GetSecretValue", {"SecretId": "s"},
                    service="kms"))
    assert r.json() == {"__type": "InvalidSignatureException",
                        "message": "Credential should be scoped to correct "
                        "service: 'secretsmanager'. "}
    unsigned = requests.post(aws.url + "/", data=b'{"SecretId":"s"}',
                             headers={"Content-Type": aws_mod.JSON_TYPE,
                                      "X-Amz-Target":
                                      "secretsmanager.GetSecretValue"},
                             timeout=10)
    assert unsigned.status_code == 400
    assert unsigned.json() == {"__type": "MissingAuthenticationTokenException",
                               "message": "Missing Authentication Token"}


def test_signature_covers_body_and_signed_headers(aws):
    aws.put_secret("a", string="body-a")
    aws.put_secret("b", string="body-b")
    req = signed(aws, "GetSecretValue", {"SecretId": "a"})
    assert send(req).json()["SecretString"] == "body-a"
    # the body swapped after signing
    req.data = json.dumps({"SecretId": "b"}).encode()
    assert send(req).json()["__type"] == "InvalidSignatureException"
    # a signed header changed after signing
    req = signed(aws, "GetSecretValue", {"SecretId": "a"})
    req.headers.replace_header("X-Amz-Target",
                               "secretsmanager.DescribeSecret")
    assert send(req).json()["__type"] == "InvalidSignatureException"
    # an unsigned header added after signing is fine
    req = signed(aws, "GetSecretValue", {"SecretId": "a"})
    req.headers["X-Unsigned"] = "anything"
    assert send(req).status_code == 200
    # a signed header left out of the request
    req = signed(aws, "GetSecretValue", {"SecretId": "a"},
                 headers={"X-Extra": "e"})
    p = req.prepare()
    hdrs = {k: v for k, v in p.headers.items() if k != "X-Extra"}
    r = requests.post(p.url, headers=hdrs, data=p.body, timeout=10)
    assert r.json() == {"__type": "IncompleteSignatureException",
                        "message": "'x-extra' is named as a SignedHeader, "
                        "but it does not exist in the HTTP request."}
    # a signature made ten minutes ago
    old = signed(aws, "GetSecretValue", {"SecretId": "a"},
                 when=time.time() - 600)
    assert send(old).json()["message"].startswith("Signature expired")


def test_protocol_errors(aws):
    aws.put_secret("s", string="proto-v")
    r = send(signed(aws, "GetSecretValue", {"SecretId": "s"},
                    headers={"Content-Type": "application/json"}))
    assert (r.status_code, r.json()) == \
        (400, {"__type": "UnknownOperationException"})
    r = send(signed(aws, "NoSuchOperation", {}))
    assert r.json() == {"__type": "UnknownOperationException"}
    r = send(signed(aws, "GetSecretValue", b"{not json"))
    assert r.json()["__type"] == "SerializationException"
    r = send(signed(aws, "GetSecretValue", {"SecretId": 42}))
    assert r.json()["__type"] == "SerializationException"


def test_qualified_error_types_still_parse(aws_factory):
    emu = aws_factory(qualified_errors=True)
    c = sm(emu)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_secret_value(SecretId="nope")
    raw = send(signed(emu, "GetSecretValue", {"SecretId": "nope"}))
    assert raw.json()["__type"] == \
        "com.amazonaws.secretsmanager#ResourceNotFoundException"
    assert raw.headers["x-amzn-ErrorType"] == (
        "ResourceNotFoundException:http://internal.amazon.com/coral/"
        "com.amazonaws.secretsmanager/")
    with pytest.raises(ClientError) as e:
        sm(emu, secret="wrong-key-wrong-key").get_secret_value(SecretId="x")
    assert code(e) == "InvalidSignatureException"


# ------------------------------------------------------------ curl 7.88

CURL = shutil.which("curl")


def curl(emu, body, *extra, user=None, target="GetSecretValue",
         ctype=True):
    if CURL is None:
        if IN_CI:
            pytest.fail("the curl CLI is missing (apt-get install curl)")
        pytest.skip("apt-get install curl")
    user = user or f"{emu.key.access}:{emu.key.secret}"
    argv = [CURL, "-sS", "--aws-sigv4", f"aws:amz:{emu.region}:secretsmanager",
            "-u", user, "-H", f"X-Amz-Target: secretsmanager.{target}"]
    if ctype:
        argv += ["-H", "Content-Type: application/x-amz-json-1.1"]
    argv += [*extra, "--data-binary", json.dumps(body), emu.url + "/"]
    res = subprocess.run(argv, capture_output=True, timeout=30, check=True)
    return json.loads(res.stdout)


def test_curl_sigv4_following_the_rules_is_accepted(aws):
    aws.put_secret("c", string="curl-v")
    assert curl(aws, {"SecretId": "c"})["SecretString"] == "curl-v"
    temp = aws.new_credentials(temporary=True, ttl=600)
    out = curl(aws, {"SecretId": "c"}, "-H",
               f"X-Amz-Security-Token: {temp.token}",
               user=f"{temp.access}:{temp.secret}")
    assert out["SecretString"] == "curl-v"
    tok = str(uuid.uuid4())
    put = curl(aws, {"SecretId": "c", "SecretString": "curl-v2",
                     "ClientRequestToken": tok}, target="PutSecretValue")
    assert put["VersionId"] == tok
    assert aws.get_secret("c") == "curl-v2"


def test_curl_sigv4_rule_breakers_are_refused(aws):
    aws.put_secret("c", string="curl-v")
    # rule 3: a header-removal entry is signed but not sent
    out = curl(aws, {"SecretId": "c"}, "-H", "Accept:")
    assert out == {"__type": "IncompleteSignatureException",
                   "message": "'accept' is named as a SignedHeader, but it "
                   "does not exist in the HTTP request."}
    # rule 5: a user X-Amz-Date goes out twice and breaks the signature
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = curl(aws, {"SecretId": "c"}, "-H", f"X-Amz-Date: {now}")
    assert out["__type"] == "InvalidSignatureException"
    # rule 2: without Content-Type curl sends a form type
    assert curl(aws, {"SecretId": "c"}, ctype=False) == \
        {"__type": "UnknownOperationException"}
    # rule 4: a temporary key without its token header
    temp = aws.new_credentials(temporary=True, ttl=600)
    out = curl(aws, {"SecretId": "c"}, user=f"{temp.access}:{temp.secret}")
    assert out["__type"] == "UnrecognizedClientException"


# ------------------------------------------------------------ faults

def test_throttling_is_retried_by_boto3(aws):
    aws.put_secret("t", string="thr-v")
    aws.throttle_next(2, op="GetSecretValue")
    c = sm(aws, config=Config(retries={"max_attempts": 5, "mode": "standard"}))
    r = c.get_secret_value(SecretId="t")
    assert r["SecretString"] == "thr-v"
    assert r["ResponseMetadata"]["RetryAttempts"] == 2
    statuses = [q.status for q in aws.calls("GetSecretValue")]
    assert statuses == [400, 400, 200]
    raw = aws.calls("GetSecretValue")[0]
    assert raw.fault == "status"
    aws.throttle_next(1)
    with pytest.raises(ClientError) as e:
        sm(aws).describe_secret(SecretId="t")
    assert code(e) == "ThrottlingException" and message(e) == "Rate exceeded"


def test_error_next_and_status_faults(aws):
    aws.put_secret("t", string="err-v")
    aws.error_next(1, "InternalServiceError", "boom", status=500,
                   op="GetSecretValue")
    with pytest.raises(ClientError) as e:
        sm(aws).get_secret_value(SecretId="t")
    assert (code(e), message(e), status(e)) == \
        ("InternalServiceError", "boom", 500)
    # other operations are not hit by an op-scoped rule
    aws.error_next(1, "InternalServiceError", status=500, op="PutSecretValue")
    sm(aws).get_secret_value(SecretId="t")
    assert aws.faults.pending() == 1
    aws.faults.clear()
    aws.faults.fail_next(1, 503, path=r"GetSecretValue$")
    with pytest.raises(ClientError) as e:
        sm(aws).get_secret_value(SecretId="t")
    assert status(e) == 503
    assert sm(aws).get_secret_value(SecretId="t")["SecretString"] == "err-v"


def test_drop_after_handling_then_idempotent_retry(aws):
    aws.put_secret("d", string="drop-0")
    aws.faults.drop_next(1, after_handling=True, path=r"PutSecretValue$")
    c = sm(aws, config=Config(retries={"max_attempts": 3, "mode": "standard"}))
    tok = str(uuid.uuid4())
    r = c.put_secret_value(SecretId="d", SecretString="drop-1",
                           ClientRequestToken=tok)
    assert r["VersionId"] == tok
    puts = aws.calls("PutSecretValue")
    assert [p.status for p in puts] == [None, 200]
    assert len(aws.versions("d")) == 2      # the retry was a no-op


@pytest.mark.parametrize("kind", ["not-json", "truncated", "empty", "array",
                                  "wrong-types", "no-value", "bad-base64"])
def test_garbage_bodies(aws, kind):
    aws.put_secret("g", string="garbage-v")
    aws.faults.garbage_next(1, kind, path=r"GetSecretValue$")
    r = send(signed(aws, "GetSecretValue", {"SecretId": "g"}))
    assert r.status_code == 200
    assert r.content == aws.garbage_body(kind, None)
    # boto3 gets no usable value out of it either
    aws.faults.garbage_next(1, kind, path=r"GetSecretValue$")
    try:
        out = sm(aws).get_secret_value(SecretId="g")
        usable = isinstance(out.get("SecretString"), str) or \
            isinstance(out.get("SecretBinary"), bytes)
    except Exception:
        usable = False
    assert not usable
    assert aws.faults.pending() == 0
    assert sm(aws).get_secret_value(SecretId="g")["SecretString"] == \
        "garbage-v"


def test_huge_body(aws):
    aws.faults.huge_next(1, size=1 << 20, path=r"GetSecretValue$")
    r = send(signed(aws, "GetSecretValue", {"SecretId": "h"}))
    assert r.status_code == 200 and len(r.json()["SecretString"]) == 1 << 20


def test_latency_and_counting(aws):
    aws.put_secret("l", string="lat-v")
    aws.faults.latency(0.5, path=r"GetSecretValue$", n=1)
    t0 = time.monotonic()
    sm(aws).get_secret_value(SecretId="l")
    assert time.monotonic() - t0 >= 0.45
    sm(aws).describe_secret(SecretId="l")
    assert aws.count_op("GetSecretValue") == 1
    assert aws.count_op("DescribeSecret") == 1
    assert aws.ops() == ["secretsmanager.GetSecretValue",
                         "secretsmanager.DescribeSecret"]
    assert aws.calls("GetSecretValue")[0].access_key == aws.key.access


# ------------------------------------------------------------ STS

def sts(emu, signed_with=None):
    if signed_with is None:
        return boto3.client("sts", endpoint_url=emu.url,
                            region_name=emu.region, config=Config(
                                signature_version=UNSIGNED,
                                retries={"total_max_attempts": 1}))
    return boto3.client("sts", endpoint_url=emu.url, region_name=emu.region,
                        aws_access_key_id=signed_with.access,
                        aws_secret_access_key=signed_with.secret,
                        config=NO_RETRY)


ROLE = "arn:aws:iam::123456789012:role/secretfs-web"


def test_sts_assume_role_with_web_identity(aws):
    aws.put_secret("w", string="web-v")
    aws.add_role(ROLE, ["jwt-one-header.payload.sig"],
                 allow=[("GetSecretValue", "w")])
    r = sts(aws).assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="secretfs",
        WebIdentityToken="jwt-one-header.payload.sig")
    cr = r["Credentials"]
    assert cr["AccessKeyId"].startswith("ASIA")
    assert isinstance(cr["Expiration"], datetime.datetime)
    left = cr["Expiration"].timestamp() - time.time()
    assert 3500 < left <= 3600
    assert r["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::123456789012:assumed-role/secretfs-web/secretfs"
    assert r["AssumedRoleUser"]["AssumedRoleId"].endswith(":secretfs")
    assert r["SubjectFromWebIdentityToken"] and r["Audience"]
    c = boto3.client("secretsmanager", endpoint_url=aws.url,
                     region_name=aws.region,
                     aws_access_key_id=cr["AccessKeyId"],
                     aws_secret_access_key=cr["SecretAccessKey"],
                     aws_session_token=cr["SessionToken"], config=NO_RETRY)
    assert c.get_secret_value(SecretId="w")["SecretString"] == "web-v"
    with pytest.raises(ClientError) as e:       # the role's allow list
        c.describe_secret(SecretId="w")
    assert code(e) == "AccessDeniedException"
    assert "assumed-role/secretfs-web/secretfs" in message(e)
    call = aws.calls("sts.AssumeRoleWithWebIdentity")[0]
    assert call.header("Authorization") is None
    assert call.header("Content-Type").startswith(
        "application/x-www-form-urlencoded")
    assert aws.issued_by("sts")[0].access == cr["AccessKeyId"]
    # a signed call is accepted too
    sts(aws, aws.key).assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="signed",
        WebIdentityToken="jwt-one-header.payload.sig")


def test_sts_errors(aws):
    aws.add_role(ROLE, ["jwt-good"])
    c = sts(aws)
    with pytest.raises(c.exceptions.InvalidIdentityTokenException) as e:
        c.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="s1",
                                        WebIdentityToken="jwt-bad")
    assert status(e) == 400
    aws.expire_web_token("jwt-good")
    with pytest.raises(c.exceptions.ExpiredTokenException):
        c.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="s1",
                                        WebIdentityToken="jwt-good")
    with pytest.raises(ClientError) as e:
        c.assume_role_with_web_identity(
            RoleArn="arn:aws:iam::123456789012:role/nobody",
            RoleSessionName="s1", WebIdentityToken="jwt-good")
    assert (code(e), status(e)) == ("AccessDenied", 403)
    lax = boto3.client("sts", endpoint_url=aws.url, region_name=aws.region,
                       config=Config(signature_version=UNSIGNED,
                                     parameter_validation=False))
    with pytest.raises(ClientError) as e:
        lax.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="s1",
                                          WebIdentityToken="jwt-fresh",
                                          DurationSeconds=60)
    assert code(e) == "ValidationError"
    raw = requests.post(aws.url + "/", data={
        "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
        "RoleArn": ROLE, "WebIdentityToken": "jwt-good"}, timeout=10)
    assert raw.status_code == 400
    assert raw.headers["Content-Type"] == "text/xml"
    assert "<Code>ValidationError</Code>" in raw.text
    assert "'roleSessionName' failed to satisfy constraint" in raw.text
    assert "<Type>Sender</Type>" in raw.text


def test_botocore_web_identity_provider_rereads_token_file(aws, tmp_path,
                                                          monkeypatch):
    aws.put_secret("w", string="web-file-v")
    aws.add_role(ROLE, ["jwt-file-one"], ttl=2)
    tokfile = tmp_path / "token"
    tokfile.write_text("jwt-file-one")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tokfile))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "botocore-web")

    def client_creator(service, **kw):
        kw.pop("region_name", None)
        return boto3.client(service, endpoint_url=aws.url,
                            region_name=aws.region, **kw)

    prov = AssumeRoleWithWebIdentityProvider(load_config=lambda: {},
                                             client_creator=client_creator,
                                             profile_name="default")
    creds = prov.load()
    assert creds is not None
    assert creds.method == "assume-role-with-web-identity"
    assert sm_with(aws, creds).get_secret_value(SecretId="w")[
        "SecretString"] == "web-file-v"
    # the projected token rotates; the refresh reads the new one
    tokfile.write_text("jwt-file-two")
    aws.accept_web_token(ROLE, "jwt-file-two")
    aws.reject_web_token(ROLE, "jwt-file-one")
    time.sleep(2.2)
    assert sm_with(aws, creds).get_secret_value(SecretId="w")[
        "SecretString"] == "web-file-v"
    forms = [aws_mod._form(r.body) for r in
             aws.calls("sts.AssumeRoleWithWebIdentity")]
    assert [f["WebIdentityToken"] for f in forms][:2] == \
        ["jwt-file-one", "jwt-file-two"]
    assert all(f["RoleSessionName"] == "botocore-web" for f in forms)
    assert [r.status for r in aws.calls("sts.AssumeRoleWithWebIdentity")][
        :2] == [200, 200]


# ------------------------------------------------------------ ECS

def test_ecs_full_uri_with_auth_token(aws):
    aws.put_secret("e", string="ecs-v")
    ep = aws.add_container_endpoint(auth_token="ecs-auth-token-123",
                                    ttl=3600)
    prov = ContainerProvider(environ={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ecs-auth-token-123"})
    creds = prov.load()
    assert creds.method == "container-role"
    assert sm_with(aws, creds).get_secret_value(SecretId="e")[
        "SecretString"] == "ecs-v"
    call = aws.calls("ecs")[0]
    assert call.path == ep.path and call.method == "GET"
    assert call.header("Authorization") == "ecs-auth-token-123"
    body = json.loads(send_get(ep.full_uri, "ecs-auth-token-123").content)
    assert set(body) == {"RoleArn", "AccessKeyId", "SecretAccessKey",
                         "Token", "Expiration"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["Expiration"])


def send_get(url, auth=None):
    return requests.get(url, headers={"Authorization": auth} if auth else {},
                        timeout=10)


def test_ecs_wrong_token_refused(aws):
    ep = aws.add_container_endpoint(auth_token="ecs-right-token")
    assert send_get(ep.full_uri).status_code == 401
    assert send_get(ep.full_uri, "ecs-wrong-token").status_code == 401
    fetcher = ContainerMetadataFetcher(sleep=lambda s: None)
    prov = ContainerProvider(environ={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ecs-wrong-token"},
        fetcher=fetcher)
    with pytest.raises(CredentialRetrievalError):
        prov.load()
    assert aws.issued_by("ecs") == []


def test_ecs_relative_uri_and_refresh(aws):
    aws.put_secret("e", string="ecs-rel-v")
    ep = aws.add_container_endpoint("/v2/credentials/task-1", ttl=2)

    class Local(ContainerMetadataFetcher):
        # the base endpoint is 169.254.170.2; here it is the emulator
        def full_url(self, relative_uri):
            return aws.url + relative_uri

    prov = ContainerProvider(environ={
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ep.path}, fetcher=Local())
    creds = prov.load()
    first = creds.get_frozen_credentials().access_key
    assert sm_with(aws, creds).get_secret_value(SecretId="e")[
        "SecretString"] == "ecs-rel-v"
    time.sleep(2.2)
    # botocore refreshes credentials that are about to expire
    second = creds.get_frozen_credentials().access_key
    assert second != first
    assert aws.count_op("ecs") >= 2
    with pytest.raises(ClientError) as e:
        sm(aws, aws.credentials(first)).get_secret_value(SecretId="e")
    assert code(e) == "ExpiredTokenException"
    assert sm_with(aws, creds).get_secret_value(SecretId="e")[
        "SecretString"] == "ecs-rel-v"


# ------------------------------------------------------------ IMDS

def imds_provider(emu, attempts=1):
    fetcher = InstanceMetadataFetcher(
        timeout=2, num_attempts=attempts,
        config={"ec2_metadata_service_endpoint": emu.url})
    return InstanceMetadataProvider(iam_role_fetcher=fetcher)


def test_imdsv2_credentials(aws):
    aws.put_secret("i", string="imds-v")
    aws.set_imds_role("secretfs-ec2", ttl=3600)
    creds = imds_provider(aws).load()
    assert creds is not None and creds.method == "iam-role"
    assert sm_with(aws, creds).get_secret_value(SecretId="i")[
        "SecretString"] == "imds-v"
    reqs = aws.calls("imds")
    assert [(r.method, r.path) for r in reqs] == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/secretfs-ec2")]
    assert reqs[0].header("X-aws-ec2-metadata-token-ttl-seconds") == "21600"
    token = send_imds_put(aws).text
    assert reqs[1].header("X-aws-ec2-metadata-token") and \
        reqs[2].header("X-aws-ec2-metadata-token") == \
        reqs[1].header("X-aws-ec2-metadata-token") != token


def send_imds_put(emu, ttl="21600", **headers):
    h = dict(headers)
    if ttl is not None:
        h["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
    return requests.put(emu.url + "/latest/api/token", headers=h, timeout=10)


def test_imds_token_rules(aws):
    aws.set_imds_role("secretfs-ec2", ttl=3600)
    base = aws.url + "/latest/meta-data/iam/security-credentials/"
    put = send_imds_put(aws, ttl="1")
    assert put.status_code == 200
    assert put.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "1"
    tok = put.text
    assert requests.get(base, headers={"X-aws-ec2-metadata-token": tok},
                        timeout=10).text == "secretfs-ec2"
    # IMDSv2 only: no token, a wrong token, an expired token
    assert requests.get(base, timeout=10).status_code == 401
    assert requests.get(base, headers={"X-aws-ec2-metadata-token": "x"},
                        timeout=10).status_code == 401
    time.sleep(1.1)
    assert requests.get(base, headers={"X-aws-ec2-metadata-token": tok},
                        timeout=10).status_code == 401
    assert send_imds_put(aws, ttl=None).status_code == 400
    assert send_imds_put(aws, ttl="21601").status_code == 400
    assert send_imds_put(aws, **{"X-Forwarded-For": "1.2.3.4"}).status_code \
        == 403
    assert requests.get(aws.url + "/latest/api/token",
                        timeout=10).status_code == 405
    good = send_imds_put(aws).text
    miss = requests.get(base + "other-role",
                        headers={"X-aws-ec2-metadata-token": good}, timeout=10)
    assert miss.status_code == 404
    aws.set_imds_role(None)
    assert requests.get(base, headers={"X-aws-ec2-metadata-token": good},
                        timeout=10).status_code == 404
    assert aws.issued_by("imds") == []


def test_imds_unavailable_and_v1_fallback(aws):
    aws.set_imds_role("secretfs-ec2", ttl=3600)
    # PUT refused (404): botocore falls back to IMDSv1, which is off
    aws.faults.fail_next(1, 404, path=r"^/latest/api/token$")
    assert imds_provider(aws).load() is None
    aws.imds_v1 = True
    aws.faults.fail_next(1, 404, path=r"^/latest/api/token$")
    creds = imds_provider(aws).load()
    assert creds is not None
    last = aws.calls("imds")[-1]
    assert last.header("X-aws-ec2-metadata-token") is None


def test_imds_credentials_expire(aws):
    aws.put_secret("i", string="imds-exp-v")
    aws.set_imds_role("secretfs-ec2", ttl=2)
    fetcher = InstanceMetadataFetcher(
        timeout=2, num_attempts=1,
        config={"ec2_metadata_service_endpoint": aws.url})
    raw = fetcher.retrieve_iam_role_credentials()
    cred = aws.credentials(raw["access_key"])
    assert cred.token == raw["token"] and cred.source == "imds"
    c = boto3.client("secretsmanager", endpoint_url=aws.url,
                     region_name=aws.region,
                     aws_access_key_id=raw["access_key"],
                     aws_secret_access_key=raw["secret_key"],
                     aws_session_token=raw["token"], config=NO_RETRY)
    assert c.get_secret_value(SecretId="i")["SecretString"] == "imds-exp-v"
    time.sleep(max(0, cred.expires - time.time()) + 0.2)
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId="i")
    assert code(e) == "ExpiredTokenException"


# ------------------------------------------------------------ TLS, CLI

def test_tls(aws_factory):
    emu = aws_factory(tls=True)
    emu.put_secret("tls", string="tls-v")
    c = sm(emu, verify=str(emu.tls.ca_file))
    assert emu.url.startswith("https://")
    assert c.get_secret_value(SecretId="tls")["SecretString"] == "tls-v"
    with pytest.raises(ClientError) as e:
        sm(emu, secret="wrong-wrong-wrong", verify=str(emu.tls.ca_file)
           ).get_secret_value(SecretId="tls")
    assert code(e) == "InvalidSignatureException"


def test_cli_by_hand(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00cli-binary\xff")
    proc = subprocess.Popen(
        [sys.executable, str(EMULATORS / "aws.py"), "--port", "0",
         "--credentials", "AKIACLITEST00000001:cli-secret-key",
         "--secret", "cli/str=cli-string", "--secret-file",
         f"cli/bin={blob}", "--container", "/creds=cli-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert m, line + proc.stderr.read()
        url = m.group(1)
        c = boto3.client("secretsmanager", endpoint_url=url,
                         region_name=REGION,
                         aws_access_key_id="AKIACLITEST00000001",
                         aws_secret_access_key="cli-secret-key",
                         config=NO_RETRY)
        assert c.get_secret_value(SecretId="cli/str")["SecretString"] == \
            "cli-string"
        assert c.get_secret_value(SecretId="cli/bin")["SecretBinary"] == \
            b"\x00cli-binary\xff"
        assert send_get(url + "/creds", "cli-auth").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
