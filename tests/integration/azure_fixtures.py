"""azure_fixtures.py - fixtures and helpers for the Azure Key Vault tests.

Loaded by test_azure_*.py with `pytest_plugins = ["azure_fixtures"]` (its
helpers imported as usual), so conftest.py stays as it is:

    azure_factory(**kw) -> AzureEmulator (https, test CA), started, with an
                           app registration azure.app (client id
                           APP_ID, secret APP_SECRET, every permission);
                           stopped at teardown, which also fails the test
                           if the emulator itself raised
    azure               -> one such emulator

Every value and credential the emulator is given or hands out (secret
values, client secrets, assertions, tokens, the App Service identity
header) is registered with the leak checker.
"""

import os
import pathlib
import sys

import pytest

EMULATORS = pathlib.Path(__file__).resolve().parents[1] / "emulators"
if str(EMULATORS) not in sys.path:
    sys.path.insert(0, str(EMULATORS))

from azurekv import AzureEmulator, DEFAULT_TENANT  # noqa: E402  (emulator)

IN_CI = os.environ.get("CI") == "true"
APP_ID = "0f3c1d2e-5ec2-4f00-8a11-7e57c11e0001"
APP_SECRET = "azure-test-client-secret~0123456789abcdef"


@pytest.fixture
def azure_factory(secrets):
    emus = []

    def make(tenant=DEFAULT_TENANT, **kw):
        kw.setdefault("on_secret", secrets.add)
        emu = AzureEmulator(tenant, **kw)
        emus.append(emu)
        emu.app = emu.add_client(APP_ID, APP_SECRET)
        return emu.start()

    yield make
    for emu in emus:
        emu.stop()
    broken = [tb for emu in emus for tb in emu.errors]
    if broken:
        pytest.fail("the Azure emulator raised:\n" + "\n".join(broken),
                    pytrace=False)


@pytest.fixture
def azure(azure_factory):
    return azure_factory()


__all__ = ["azure_factory", "azure", "AzureEmulator", "DEFAULT_TENANT",
           "APP_ID", "APP_SECRET", "IN_CI", "EMULATORS"]
