"""ZeroMQ CURVE for the PUB sockets we bind (``listen``, ``bridge``) and for subscribers.

Keys are pyzmq's certificate files (``zmq.auth.create_certificates``; ``emostream keys DIR``):
``NAME.key`` holds the public key, ``NAME.key_secret`` the public and secret key. The publisher
needs its secret file; a subscriber needs the publisher's public key (and makes itself a key pair
unless given one). Without ``--curve-clients`` any subscriber that knows the server key is let in
(libzmq accepts every client key when no authenticator runs); with it, only the public keys in
that directory. A subscriber without the right server key receives nothing: libzmq reports no
error to it, so ``emostream subscribe --timeout`` is the way to notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

log = logging.getLogger(__name__)


def _load(path: str, need_secret: bool) -> tuple[bytes, bytes | None]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"CURVE key file {path} does not exist (make one with `emostream keys DIR`)")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a ZeroMQ certificate file: {exc}") from exc
    if need_secret and not secret:
        raise ValueError(f"{path} has no secret key: give the NAME.key_secret file")
    return public, secret


@dataclass(frozen=True)
class CurveOptions:
    """Publisher side: ``secret_key`` (its NAME.key_secret file); ``clients``: a directory of allowed
    client public keys (None: any client that knows the server's public key)."""

    secret_key: str | None = None
    clients: str | None = None

    @property
    def enabled(self) -> bool:
        return self.secret_key is not None

    def apply_server(self, context: zmq.Context, socket: zmq.Socket):
        """Make ``socket`` a CURVE server; returns the authenticator to stop on close (or None)."""
        if not self.enabled:
            if self.clients:
                raise ValueError("--curve-clients needs --curve-secret-key")
            return None
        public, secret = _load(self.secret_key, need_secret=True)
        authenticator = None
        if self.clients:
            if not Path(self.clients).is_dir():
                raise ValueError(f"--curve-clients {self.clients} is not a directory of NAME.key files")
            from zmq.auth.thread import ThreadAuthenticator

            authenticator = ThreadAuthenticator(context)
            authenticator.start()
            authenticator.configure_curve(domain="*", location=str(self.clients))
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True
        return authenticator


def apply_client(socket: zmq.Socket, server_key: str, client_key: str | None = None) -> None:
    """Make ``socket`` a CURVE client of the server whose public key file is ``server_key``."""
    server_public, _ = _load(server_key, need_secret=False)
    if client_key:
        public, secret = _load(client_key, need_secret=True)
    else:
        public, secret = zmq.curve_keypair()
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def make_keys(directory: str, name: str) -> tuple[Path, Path]:
    """-> (public file, secret file); refuses to overwrite an existing secret."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if (d / f"{name}.key_secret").exists():
        raise ValueError(f"{d / (name + '.key_secret')} exists; not overwriting a secret key")
    public, secret = zmq.auth.create_certificates(d, name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)
