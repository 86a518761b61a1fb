"""DKIM signing (RFC 6376) with relaxed/relaxed canonicalisation, through OpenSSL.

dkimpy does the RSA arithmetic in pure Python (milliseconds a message); here the
signature comes from `cryptography`, and the canonicalisation works on the raw
bytes that `newsletter.delivery.mime` builds, without parsing them with the
`email` package. dkimpy stays a test dependency, as an independent verifier.

One `DkimSigner` is built per campaign or worker and reused: the key is loaded,
and the tag list and the header names prepared, once; `sign` does only the work
that depends on the message. The signer holds no mutable state, so threads may
share it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = [
    "DEFAULT_HEADERS_TO_SIGN",
    "DkimSigner",
    "load_signer",
    "relaxed_body",
    "relaxed_lines",
]

DEFAULT_HEADERS_TO_SIGN: tuple[str, ...] = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "Feedback-ID",
)

# Below 2048 bits mailbox providers treat RSA signatures as weak (RFC 8301 makes
# 1024 the floor for verifiers; Gmail and others want 2048 from senders).
MIN_RSA_BITS = 2048

# RFC 5322 2.1.1: lines SHOULD stay within 78 characters and MUST within 998.
# A 2048-bit b= value alone is 344 characters, so the header is always folded.
_FOLD_AT = 78
_HEADER_NAME = "DKIM-Signature"

_WSP_RUN = re.compile(rb"[ \t]+")
_SPACE_RUN = re.compile(rb"  +")
_ANY_NEWLINE = re.compile(rb"\r?\n")
# RFC 5322 field-name: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# RFC 6376 3.5: d= and s= are dot-separated LDH labels. Checked up front because
# a stray ";" or space would silently corrupt the tag list of every signature.
_LABELS = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _relaxed_header(lower_name: bytes, raw_value: bytes) -> bytes:
    """RFC 6376 3.4.2 for one field, without the trailing CRLF.

    The name arrives lowercased and stripped by the parser; the value is
    unfolded (its CRLFs always precede WSP, so dropping them is unfolding),
    its WSP runs compressed and its ends stripped.
    """
    value = _WSP_RUN.sub(b" ", raw_value.replace(b"\r\n", b"")).strip(b" \t")
    return lower_name + b":" + value


def relaxed_lines(data: bytes) -> bytes:
    """Relaxed canonicalisation of whole CRLF-ended lines, without the end-of-body rule.

    Lines are canonicalised independently, so a body cut at line ends can be
    canonicalised piece by piece (delivery.mime does so once per variant).
    """
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    if b"  " in data:
        data = _SPACE_RUN.sub(b" ", data)
    if b" \r\n" in data:
        data = data.replace(b" \r\n", b"\r\n")
    return data


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: the body as relaxed canonicalisation hashes it.

    `body` must end with CRLF (or be empty); `sign` makes sure it does.
    """
    # A body has a space between every two words, so a regex over [ \t]+ pays
    # for thousands of matches (1.3 ms on 40 KB). Turning tabs into spaces in C
    # first leaves only the runs of two spaces or more to rewrite, and a regex
    # with a literal prefix finds those fast; once runs are single spaces, at
    # most one can stand before a CRLF.
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACE_RUN.sub(b" ", body)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    # Empty lines at the end are ignored; what is left keeps exactly one CRLF.
    kept = body.rstrip(b"\r\n")
    tail = body[len(kept) :]
    if tail == b"\r\n" * (len(tail) // 2):
        return kept + b"\r\n" if kept else b""
    # The stripped tail held a bare CR: only whole CRLF pairs are empty lines.
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return b"" if body == b"\r\n" else body


def _parse_fields(block: bytes, wanted: frozenset[bytes]) -> dict[bytes, list[bytes]]:
    """The raw values of the wanted fields in `block`, by lowercased name, in order.

    Folded fields keep their CRLFs (relaxed canonicalisation unfolds them); a
    continuation line is one starting with WSP (RFC 5322 2.2.3).
    """
    found: dict[bytes, list[bytes]] = {}
    current: list[bytes] | None = None  # the list the last field's value went into
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current[-1] += b"\r\n" + line
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise ValueError(f"not a header field line: {line[:60]!r}")
        lower = name.rstrip(b" \t").lower()
        if lower in wanted:
            current = found.setdefault(lower, [])
            current.append(value)
        else:
            # Continuations of an unwanted field must not land on a wanted one.
            current = None
    return found


def _fold(pieces: Sequence[tuple[str, str]]) -> list[str]:
    """Lay `pieces` out on lines of at most 78 characters where they fit.

    Each piece is (separator, text): a separator of " " sits between two tags and
    becomes the fold itself; "" marks a place inside a value where FWS is legal
    (between h= names, inside base64), so folding there adds whitespace that
    verifiers ignore. A piece longer than a line gets a line of its own.
    """
    lines: list[str] = []
    line = _HEADER_NAME + ":"
    for sep, text in pieces:
        if len(line) + len(sep) + len(text) <= _FOLD_AT:
            line += sep + text
        else:
            lines.append(line)
            line = " " + text
    lines.append(line)
    return lines


def _chunks(text: str, first: int, rest: int) -> list[str]:
    """`text` cut into a piece of `first` characters, then pieces of `rest`."""
    out = [text[:first]]
    out.extend(text[i : i + rest] for i in range(first, len(text), rest))
    return out


class DkimSigner:
    """Signs messages for one domain and selector with one private key.

    RSA keys (2048 bits or more) sign with `a=rsa-sha256`; Ed25519 keys with
    `a=ed25519-sha256` (RFC 8463). Mailbox providers that do not know Ed25519
    ignore such a signature, so an Ed25519 signer is meant to run beside an RSA
    one (call both: each prepends its own header), not alone.
    """

    def __init__(
        self,
        domain: str,
        selector: str,
        private_key_pem: bytes,
        headers_to_sign: Sequence[str] = DEFAULT_HEADERS_TO_SIGN,
    ) -> None:
        if not _LABELS.fullmatch(domain):
            raise ValueError(f"not a DKIM domain (use the ASCII/punycode form): {domain!r}")
        if not _LABELS.fullmatch(selector):
            raise ValueError(f"not a DKIM selector: {selector!r}")

        key = load_pem_private_key(private_key_pem, password=None)
        self._rsa_key: rsa.RSAPrivateKey | None = None
        self._ed25519_key: ed25519.Ed25519PrivateKey | None = None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(
                    f"RSA key of {key.key_size} bits; DKIM keys need {MIN_RSA_BITS} or more"
                )
            self._rsa_key = key
            algorithm = "rsa-sha256"
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            self._ed25519_key = key
            algorithm = "ed25519-sha256"
        else:
            raise ValueError(f"DKIM signs with RSA or Ed25519 keys, not {type(key).__name__}")
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm

        # Duplicates are dropped: every listed name already signs every instance
        # of that field, so listing one twice would sign nothing more.
        names: list[tuple[bytes, str]] = []
        seen: set[bytes] = set()
        for name in headers_to_sign:
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"not a header field name: {name!r}")
            lower = name.lower().encode("ascii")
            if lower not in seen:
                seen.add(lower)
                names.append((lower, name))
        if b"from" not in seen:
            # RFC 6376 5.4: the From field MUST be signed.
            raise ValueError("headers_to_sign must include From")
        self.headers_to_sign: tuple[str, ...] = tuple(name for _, name in names)
        self._names = tuple(names)
        self._wanted = frozenset(seen)
        self._fixed_tags: tuple[tuple[str, str], ...] = (
            (" ", "v=1;"),
            (" ", f"a={algorithm};"),
            (" ", "c=relaxed/relaxed;"),
            (" ", f"d={domain};"),
            (" ", f"s={selector};"),
        )

    def sign(
        self, message: bytes, *, timestamp: int | None = None, body_hash: str | None = None
    ) -> bytes:
        """`message` with a `DKIM-Signature:` header field prepended.

        `message` is RFC 5322 bytes with CRLF line endings. Bare LF line endings
        are turned into CRLF, and a missing final CRLF is added, in the returned
        bytes as in what is signed: SMTP sends them that way, and a signature
        over anything else would fail at the receiver. `timestamp` (t=, seconds
        since the epoch) defaults to now; it is there for reproducible tests.
        `body_hash` (the bh= value) may be given when the caller computed it
        already, as delivery.mime's templates do from per-variant pieces.
        """
        # Counting single bytes runs at memory speed, three times as fast as
        # counting CRLF pairs. Equal counts mean CRLF throughout unless bare CRs
        # and bare LFs happen to balance, which mime.py's output never has.
        if body_hash is None and message.count(b"\r") != message.count(b"\n"):
            message = _ANY_NEWLINE.sub(b"\r\n", message)
        split_at = message.find(b"\r\n\r\n")
        if split_at == -1:
            header_block = message[:-2] if message.endswith(b"\r\n") else message
            body = b""
        else:
            header_block = message[:split_at]
            body = message[split_at + 4 :]
            if body and not body.endswith(b"\r\n"):
                body += b"\r\n"
                message += b"\r\n"

        found = _parse_fields(header_block, self._wanted)
        if b"from" not in found:
            raise ValueError("message has no From header field; DKIM requires one")

        # RFC 6376 5.4.2: a field present several times is named once per
        # instance, and instances are taken from the bottom of the header up.
        signed: list[bytes] = []
        h_names: list[str] = []
        for lower, name in self._names:
            values = found.get(lower)
            if values:
                for value in reversed(values):
                    signed.append(_relaxed_header(lower, value))
                    h_names.append(name)

        if body_hash is None:
            body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        t = int(time.time()) if timestamp is None else timestamp

        pieces = list(self._fixed_tags)
        pieces.append((" ", f"t={t};"))
        last = len(h_names) - 1
        for i, name in enumerate(h_names):
            text = name + (";" if i == last else ":")
            pieces.append((" ", "h=" + text) if i == 0 else ("", text))
        pieces.append((" ", f"bh={body_hash};"))
        lines = _fold(pieces)
        # b= opens a line of its own, so that the header as signed (with b=
        # empty) and the header as sent differ only in the b= value.
        lines.append(" b=")
        head = "\r\n".join(lines)

        # The signature header is hashed last, canonicalised like the others,
        # with b= empty and without its trailing CRLF (RFC 6376 3.7).
        signature_input = b"".join(line + b"\r\n" for line in signed) + _relaxed_header(
            b"dkim-signature", head[len(_HEADER_NAME) + 1 :].encode("ascii")
        )
        b64 = base64.b64encode(self._sign_bytes(signature_input)).decode()
        # The first chunk completes the " b=" line; the rest are 77 + the leading space.
        b_value = "\r\n ".join(_chunks(b64, _FOLD_AT - 3, _FOLD_AT - 1))
        return (head + b_value + "\r\n").encode("ascii") + message

    def _sign_bytes(self, data: bytes) -> bytes:
        if self._rsa_key is not None:
            return self._rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        assert self._ed25519_key is not None
        # RFC 8463 3: Ed25519 signs the SHA-256 digest of the header data, not
        # the data itself (dkimpy verifies the same way).
        return self._ed25519_key.sign(hashlib.sha256(data).digest())


def load_signer(domain: str, selector: str, key_path: Path) -> DkimSigner:
    """A `DkimSigner` with the PEM private key read from `key_path`."""
    return DkimSigner(domain, selector, key_path.read_bytes())
