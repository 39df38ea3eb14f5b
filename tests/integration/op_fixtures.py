"""op_fixtures.py - fixtures and helpers for the 1Password Connect tests.

Loaded by test_op_*.py with `pytest_plugins = ["op_fixtures"]` (its helpers
imported as usual), so conftest.py stays as it is:

    op_factory(**kw) -> OpConnectEmulator (plain http unless tls=True),
                        started, with a token op.token for every vault;
                        stopped at teardown, which also fails the test if
                        the emulator itself raised
    op               -> one such emulator

Every field value, file content and token the emulator is given or hands
out is registered with the leak checker.
"""

import os
import pathlib
import sys

import pytest

EMULATORS = pathlib.Path(__file__).resolve().parents[1] / "emulators"
if str(EMULATORS) not in sys.path:
    sys.path.insert(0, str(EMULATORS))

from opconnect import OpConnectEmulator, new_id  # noqa: E402  (emulator)

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture
def op_factory(secrets):
    emus = []

    def make(**kw):
        kw.setdefault("on_secret", secrets.add)
        emu = OpConnectEmulator(**kw)
        emus.append(emu)
        emu.token = emu.add_token()
        return emu.start()

    yield make
    for emu in emus:
        emu.stop()
    broken = [tb for emu in emus for tb in emu.errors]
    if broken:
        pytest.fail("the 1Password Connect emulator raised:\n" +
                    "\n".join(broken), pytrace=False)


@pytest.fixture
def op(op_factory):
    return op_factory()


__all__ = ["op_factory", "op", "OpConnectEmulator", "new_id", "IN_CI",
           "EMULATORS"]
