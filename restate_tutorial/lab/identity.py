"""Signed requests: the lab's restate-server signs every request it sends to a service host,
and the service host runs only requests signed by it.

A lab makes an Ed25519 key pair of its own. restate-server gets the private half (a PEM file,
``[worker.invoker] request-identity-private-key-pem-file``) and signs each request with it;
every app a service host serves is made with the public half
(``restate.app(..., identity_keys=[...])``), so a request that did not come from this lab's
Restate — a hand-made one sent straight to the service host — is refused with 401 and runs
nothing. With your own Restate (external mode), set RESTATE_TUTORIAL_IDENTITY_KEY to the public
key it logs at start-up (``publickeyv1_…``); unset, the service host accepts unsigned requests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .server import PRIVATE_KEY_SETTING, RestateServer

#: External mode: the public key of your own Restate.
PUBLIC_KEY_VARIABLE = "RESTATE_TUTORIAL_IDENTITY_KEY"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True)
class RequestIdentity:
    """A key pair: restate-server signs with ``private_key_pem``; the SDK checks ``public_key``."""

    private_key_pem: bytes
    public_key: str  # "publickeyv1_<base58 of the raw 32-byte key>", the SDK's format

    @classmethod
    def new(cls) -> RequestIdentity:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return cls(pem, f"publickeyv1_{base58(raw)}")

    def write(self, path: Path) -> Path:
        """The private key in a file only its owner can read; returns its path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(self.private_key_pem)
        return path


def external_public_key() -> str | None:
    """The public key of your own Restate (RESTATE_TUTORIAL_IDENTITY_KEY), if set."""
    return os.environ.get(PUBLIC_KEY_VARIABLE) or None


def server_with_another_key() -> RestateServer:
    """A restate-server of its own (free ports, a temp data dir; not started) that signs with a
    key pair of its own: a service host of a lab trusts none of its requests."""
    server = RestateServer()
    pem = RequestIdentity.new().write(server.data_dir / "another-identity.pem")
    server.cluster_env[PRIVATE_KEY_SETTING] = str(pem)
    return server


def send_unsigned(host_url: str, service: str, handler: str) -> httpx.Response:
    """What a client that is not Restate can send a service host: a request in Restate's
    protocol (its path and content type) that no Restate signed."""
    return httpx.post(f"{host_url}/invoke/{service}/{handler}", content=b"\0" * 8, timeout=10,
                      headers={"content-type": "application/vnd.restate.invocation.v5"})


def base58(data: bytes) -> str:
    """Bitcoin's base58 (leading zero bytes as "1"s)."""
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, digit = divmod(number, 58)
        digits = _BASE58[digit] + digits
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + digits
