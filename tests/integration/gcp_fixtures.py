"""gcp_fixtures.py - fixtures and helpers for the GCP Secret Manager tests.

Loaded by test_gcp_*.py with `pytest_plugins = ["gcp_fixtures"]` (its
helpers imported as usual), so conftest.py stays as it is:

    gcp_factory(**kw) -> GcpEmulator (https, test CA), started, project
                         PROJECT (number PROJECT_NUMBER), with a service
                         account gcp.sa (SA_EMAIL, every permission);
                         stopped at teardown, which also fails the test if
                         the emulator itself raised
    gcp               -> one such emulator

ADC files (Application Default Credentials JSON, mode 0600), each
pointing at the emulator where the file format lets it:

    write_service_account_adc(emu, sa, path)     token_uri = emu.token_url
    write_authorized_user_adc(emu, user, path)   no token endpoint in the
        format: clients use https://oauth2.googleapis.com/token unless
        told otherwise (Node: clientOptions.endpoints.oauth2TokenUrl;
        Python google-auth: token_uri= of Credentials; secretfs: its
        token_uri override, see tests/emulators/README.md)
    write_external_account_adc(emu, path, audience, subject_token_file=...
        | subject_token_url=..., impersonate=EMAIL)
    write_impersonated_adc(emu, path, source: dict, target_email)

Every value and credential the emulator is given or hands out (secret
values, private keys, client secrets, refresh tokens, subject tokens,
access tokens) is registered with the leak checker.
"""

import os
import pathlib
import sys

import pytest

EMULATORS = pathlib.Path(__file__).resolve().parents[1] / "emulators"
if str(EMULATORS) not in sys.path:
    sys.path.insert(0, str(EMULATORS))

from gcpsm import (GcpEmulator, write_json_0600, crc32c,  # noqa: E402
                   CLOUD_PLATFORM)

IN_CI = os.environ.get("CI") == "true"
PROJECT = "secretfs-test"
PROJECT_NUMBER = "861234567890"
SA_EMAIL = f"secretfs-app@{PROJECT}.iam.gserviceaccount.com"
JWT_SUBJECT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def write_service_account_adc(emu, sa, path):
    """service_account ADC for sa (a ServiceAccount), token_uri = the
    emulator's OAuth endpoint."""
    return write_json_0600(path, sa.adc(emu.token_url))


def write_authorized_user_adc(emu, user, path, quota_project=None):
    """authorized_user ADC (what `gcloud auth application-default login`
    writes). The format has no token endpoint of its own."""
    return write_json_0600(path, user.adc(quota_project))


def write_external_account_adc(emu, path, audience, *,
                               subject_token_file=None,
                               subject_token_url=None, url_headers=None,
                               url_json_field=None,
                               impersonate=None,
                               subject_token_type=JWT_SUBJECT_TYPE,
                               lifetime=None):
    """external_account ADC (workload identity federation) with a file- or
    URL-sourced subject token; impersonate: a service account email (adds
    service_account_impersonation_url)."""
    if subject_token_file is not None:
        source = {"file": os.fspath(subject_token_file)}
    else:
        source = {"url": subject_token_url}
        if url_headers:
            source["headers"] = dict(url_headers)
        if url_json_field:
            source["format"] = {"type": "json",
                                "subject_token_field_name": url_json_field}
    d = {"type": "external_account", "audience": audience,
         "subject_token_type": subject_token_type,
         "token_url": emu.sts_url, "credential_source": source,
         "universe_domain": "googleapis.com"}
    if impersonate:
        d["service_account_impersonation_url"] = \
            emu.impersonation_url(impersonate)
        if lifetime:
            d["service_account_impersonation"] = {
                "token_lifetime_seconds": lifetime}
    return write_json_0600(path, d)


def write_impersonated_adc(emu, path, source, target_email, delegates=()):
    """impersonated_service_account ADC (`gcloud auth application-default
    login --impersonate-service-account`): source is the ADC dict of the
    source credentials (authorized_user or service_account)."""
    return write_json_0600(path, {
        "type": "impersonated_service_account",
        "service_account_impersonation_url":
            emu.impersonation_url(target_email),
        "source_credentials": dict(source),
        "delegates": list(delegates)})


@pytest.fixture
def gcp_factory(secrets):
    emus = []

    def make(project=PROJECT, project_number=PROJECT_NUMBER, **kw):
        kw.setdefault("on_secret", secrets.add)
        emu = GcpEmulator(project, project_number, **kw)
        emus.append(emu)
        emu.sa = emu.add_service_account(SA_EMAIL)
        return emu.start()

    yield make
    for emu in emus:
        emu.stop()
    broken = [tb for emu in emus for tb in emu.errors]
    if broken:
        pytest.fail("the GCP emulator raised:\n" + "\n".join(broken),
                    pytrace=False)


@pytest.fixture
def gcp(gcp_factory):
    return gcp_factory()


__all__ = ["gcp_factory", "gcp", "GcpEmulator", "PROJECT", "PROJECT_NUMBER",
           "SA_EMAIL", "IN_CI", "EMULATORS", "crc32c", "CLOUD_PLATFORM",
           "write_service_account_adc", "write_authorized_user_adc",
           "write_external_account_adc", "write_impersonated_adc",
           "JWT_SUBJECT_TYPE"]
