"""The tools and services the tests use (espeak-ng, nats-server, PulseAudio, openssl, the Kokoro voices).

On a developer's machine a missing one skips its tests with the reason. Where
``EMOSTREAM_REQUIRE_SERVICES=1`` (``.ci/run`` sets it, after installing and starting them all) a
missing one fails the test instead: a green CI run means every such test ran.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = os.environ.get("EMOSTREAM_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{reason} [EMOSTREAM_REQUIRE_SERVICES=1: this run promised every service]", pytrace=False)
    pytest.skip(reason)
