"""A throwaway RSA-2048 DKIM key for benchmarks, made in memory at each run."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.delivery.dkim import DkimSigner


def rsa_pem() -> bytes:
    """A new RSA-2048 private key, PEM-encoded."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def rsa_signer(domain: str = "example.org", selector: str = "bench") -> DkimSigner:
    return DkimSigner(domain, selector, rsa_pem())
