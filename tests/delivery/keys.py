"""DKIM key pairs for tests: the private key, and the DNS record that publishes it."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

DOMAIN = "example.org"
SELECTOR = "news2026"


class Key:
    """A private key as the signer loads it, and the DNS TXT record that publishes it."""

    def __init__(self, private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> None:
        self.private = private
        self.pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if isinstance(private, rsa.RSAPrivateKey):
            der = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self.txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
        else:
            raw = private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self.txt = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)

    def dnsfunc(self, name: bytes | str, timeout: float = 5) -> bytes:
        """dkimpy's DNS hook: answers only for our selector's record."""
        if isinstance(name, str):
            name = name.encode("ascii")
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return self.txt
