"""The tools and services the tests use (espeak-ng, nats-server, PulseAudio, openssl, the Kokoro voices).

On a developer's machine a missing one skips its tests with the reason. Where
``EMOSTREAM_REQUIRE_SERVICES=1`` (``.ci/run`` sets it, after installing and starting them all) a
missing one fails the test instead: a green CI run means every such test ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRED = os.environ.get("EMOSTREAM_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{reason} [EMOSTREAM_REQUIRE_SERVICES=1: this run promised every service]", pytrace=False)
    pytest.skip(reason)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl)."""
    if not shutil.which("openssl"):
        unavailable("openssl not installed (needed to make a test certificate)")
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key
