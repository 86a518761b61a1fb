"""DKIM signing: signatures made with `cryptography`, checked by dkimpy as the verifier."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.canonicalization import Relaxed

from newsletter.delivery.dkim import DkimSigner, load_signer, relaxed_body
from newsletter.delivery.mime import build_message
from tests.delivery.keys import DOMAIN, SELECTOR, Key

UNSUBSCRIBE_URL = "https://news.example.org/u/abc"


@pytest.fixture(scope="module")
def rsa_key() -> Key:
    return Key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ed25519_key() -> Key:
    return Key(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(params=["rsa", "ed25519"])
def key(request: pytest.FixtureRequest, rsa_key: Key, ed25519_key: Key) -> Key:
    return rsa_key if request.param == "rsa" else ed25519_key


def newsletter_message() -> bytes:
    """A campaign message as mime.py builds it: non-ASCII, long lines, ragged ends."""
    paragraph = "Lumbar support and posture: what the évidence says. " * 40
    html = "".join(f'<p style="margin:0 0 12px 0">{paragraph}</p>   \n\t\n' for _ in range(8)) + (
        "<table><tr><td>" + "x" * 1500 + "</td></tr></table>  \t\n\n\n   \n\n"
    )
    text = (paragraph + "  \n") * 8 + "\n\n\n"
    return build_message(
        from_name="Spine & Pain Health Letter — Zoë Müller",
        from_address=f"newsletter@{DOMAIN}",
        to_address="reader@example.net",
        subject="Rückenschmerzen? Ça va mieux: 5 exercices pour le dos — édition de décembre",
        text=text,
        html=html,
        domain=DOMAIN,
        # An https URL also brings List-Unsubscribe-Post (RFC 8058 one-click).
        list_unsubscribe=[UNSUBSCRIBE_URL],
    ).data


def signer_for(key: Key) -> DkimSigner:
    return DkimSigner(DOMAIN, SELECTOR, key.pem)


def header_field(message: bytes, name: str) -> str:
    """The first `name` field of `message`, unfolded, as `Name: value`."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = re.split(r"\r\n(?![ \t])", head)
    matches = [f for f in fields if f.split(":", 1)[0].lower() == name.lower()]
    assert matches, f"no {name} field"
    return matches[0].replace("\r\n", "")


def dkim_tags(message: bytes) -> dict[str, str]:
    """The tags of the first DKIM-Signature field, all whitespace removed from values."""
    value = header_field(message, "DKIM-Signature").split(":", 1)[1]
    tags = {}
    for part in value.split(";"):
        if part.strip():
            tag, _, tag_value = part.partition("=")
            tags[tag.strip()] = re.sub(r"\s+", "", tag_value)
    return tags


def verify(message: bytes, key: Key) -> bool:
    return bool(dkim.verify(message, dnsfunc=key.dnsfunc))


# 1. Signatures verify


def test_campaign_message_signed_with_rsa_2048_verifies(rsa_key: Key) -> None:
    signed = signer_for(rsa_key).sign(newsletter_message())
    assert dkim_tags(signed)["a"] == "rsa-sha256"
    assert verify(signed, rsa_key)


def test_campaign_message_signed_with_ed25519_verifies(ed25519_key: Key) -> None:
    signed = signer_for(ed25519_key).sign(newsletter_message())
    assert dkim_tags(signed)["a"] == "ed25519-sha256"
    assert verify(signed, ed25519_key)


def test_signature_is_prepended_and_message_left_as_is(key: Key) -> None:
    message = newsletter_message()
    signed = signer_for(key).sign(message)
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(b"\r\n" + message)
    assert signed.count(b"DKIM-Signature:") == 1


def test_rsa_and_ed25519_signatures_stack(rsa_key: Key, ed25519_key: Key) -> None:
    # The intended deployment: Ed25519 beside RSA, for receivers that know only RSA.
    both = signer_for(ed25519_key).sign(signer_for(rsa_key).sign(newsletter_message()))
    assert dkim_tags(both)["a"] == "ed25519-sha256"
    assert verify(both, ed25519_key)
    # dkimpy checks the topmost signature; drop it to check the RSA one underneath.
    underneath = both[both.index(b"\r\nDKIM-Signature:") + 2 :]
    assert dkim_tags(underneath)["a"] == "rsa-sha256"
    assert verify(underneath, rsa_key)


# 2. What h= covers


def test_h_tag_lists_the_headers_that_matter(key: Key) -> None:
    tags = dkim_tags(signer_for(key).sign(newsletter_message(), timestamp=1_800_000_000))
    signed_names = [name.lower() for name in tags["h"].split(":")]
    for required in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert signed_names.count(required) == 1, required
    # Listed in the signer's order; absent ones (List-Id, Feedback-ID) are left out.
    assert signed_names == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
    ]
    assert tags["v"] == "1"
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == DOMAIN
    assert tags["s"] == SELECTOR
    assert tags["t"] == "1800000000"


def test_repeated_field_is_signed_once_per_instance_bottom_up(rsa_key: Key) -> None:
    message = (
        b"From: a@example.org\r\nTo: one@example.net\r\nSubject: hi\r\n"
        b"To: two@example.net\r\n\r\nbody\r\n"
    )
    signed = signer_for(rsa_key).sign(message)
    assert dkim_tags(signed)["h"].split(":") == ["From", "To", "To", "Subject"]
    assert verify(signed, rsa_key)
    assert not verify(signed.replace(b"two@", b"tw0@"), rsa_key)


# 3. Tampering breaks the signature


TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "body byte": lambda m: m[:-200] + (b"Y" if m[-200:-199] != b"Y" else b"Z") + m[-199:],
    "subject": lambda m: m.replace(b"\r\nSubject: ", b"\r\nSubject: FREE ", 1),
    "unsubscribe url": lambda m: m.replace(b"/u/abc>", b"/u/abd>", 1),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampering_after_signing_fails_verification(
    key: Key, tamper: Callable[[bytes], bytes]
) -> None:
    signed = signer_for(key).sign(newsletter_message())
    tampered = tamper(signed)
    assert tampered != signed
    assert verify(signed, key)
    assert not verify(tampered, key)


# 4. Relaxed canonicalisation tolerates what relays do


def test_refolded_headers_still_verify(key: Key) -> None:
    signed = signer_for(key).sign(newsletter_message())
    refolded = signed.replace(b"\r\nTo: reader@", b"\r\nto:\r\n\t  reader@", 1).replace(
        b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        b"\r\nList-Unsubscribe-Post:\r\n   List-Unsubscribe=One-Click  \t\r\n",
        1,
    )
    assert refolded != signed
    assert verify(refolded, key)


def test_trailing_whitespace_and_blank_lines_added_to_the_body_still_verify(key: Key) -> None:
    signed = signer_for(key).sign(newsletter_message())
    head, body = signed.split(b"\r\n\r\n", 1)
    loosened = head + b"\r\n\r\n" + body.replace(b"\r\n", b" \t \r\n") + b"\r\n\r\n"
    assert verify(loosened, key)


# 5. Line lengths and ASCII


def test_lines_stay_within_smtp_limits_and_signature_is_ascii(key: Key) -> None:
    signed = signer_for(key).sign(newsletter_message())
    assert all(len(line) <= 998 for line in signed.split(b"\r\n"))
    # The signature field is the first line and the folded lines right after it.
    lines = signed.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    end = next(i for i in range(1, len(lines)) if lines[i][:1] not in (b" ", b"\t"))
    lines = lines[:end]
    assert len(lines) > 1
    assert b"".join(lines).isascii()
    assert all(len(line) <= 78 for line in lines)


# 6. Body hash agrees with dkimpy's


def pkcs1_pem(key: Key) -> bytes:
    # dkimpy's own signer reads only the traditional RSA PEM form.
    assert isinstance(key.private, rsa.RSAPrivateKey)
    return key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def dkimpy_sign(message: bytes, key: Key) -> bytes:
    header = dkim.sign(
        message,
        SELECTOR.encode(),
        DOMAIN.encode(),
        pkcs1_pem(key),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject"],
    )
    return bytes(header) + message


def test_body_hash_matches_dkimpy_for_a_campaign_message(rsa_key: Key) -> None:
    message = newsletter_message()
    ours = dkim_tags(signer_for(rsa_key).sign(message, timestamp=1_800_000_000))
    theirs = dkim_tags(dkimpy_sign(message, rsa_key))
    assert ours["bh"] == theirs["bh"]


BODIES = {
    "empty": b"",
    "only blank lines": b"\r\n\r\n\r\n",
    "only whitespace lines": b"  \r\n\t\r\n \t \r\n",
    "trailing whitespace": b"one  \r\ntwo\t\r\n",
    "inner whitespace runs": b"a \t  b\t\tc\r\n  leading kept as one space\r\n",
    "blank lines at the end": b"text\r\n\r\n\r\n\r\n",
    "blank lines inside": b"one\r\n\r\n\r\ntwo\r\n",
    "8-bit": "naïve café\r\n".encode(),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_body_hash_matches_dkimpy_on_edge_cases(rsa_key: Key, body: bytes) -> None:
    message = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: edge\r\n\r\n" + body
    signed = signer_for(rsa_key).sign(message)
    assert dkim_tags(signed)["bh"] == dkim_tags(dkimpy_sign(message, rsa_key))["bh"]
    assert verify(signed, rsa_key)


def test_relaxed_body_matches_dkimpy_on_random_bodies() -> None:
    # Short random bodies from the characters that canonicalisation cares about
    # reach the corner cases (runs across tabs, spaces before CRLF, bare CR,
    # blank lines at the end) far more often than real text does.
    rng = random.Random(6376)
    alphabet = [b"a", b"b", b" ", b" ", b"\t", b"\r\n", b"\r\n", b"\r"]
    for _ in range(3000):
        body = b"".join(rng.choices(alphabet, k=rng.randrange(0, 24)))
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"  # sign() guarantees the final CRLF
        assert relaxed_body(body) == Relaxed.canonicalize_body(body), body


def test_relaxed_body_examples() -> None:
    # RFC 6376 3.4.6, example body, relaxed.
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert relaxed_body(b"\r\n\r\n") == b""
    assert relaxed_body(b"") == b""


# Input that SMTP would change on the way is signed as SMTP sends it


def test_bare_lf_line_endings_are_signed_as_crlf(rsa_key: Key) -> None:
    signed = signer_for(rsa_key).sign(b"From: a@example.org\nSubject: lf\n\nline one\nline two\n")
    assert signed.count(b"\n") == signed.count(b"\r\n")
    assert signed.endswith(b"\r\n\r\nline one\r\nline two\r\n")
    assert verify(signed, rsa_key)


def test_missing_final_crlf_is_added(rsa_key: Key) -> None:
    signed = signer_for(rsa_key).sign(b"From: a@example.org\r\nSubject: x\r\n\r\nno newline  ")
    assert signed.endswith(b"\r\n\r\nno newline  \r\n")
    assert verify(signed, rsa_key)


def test_message_without_a_body_verifies(rsa_key: Key) -> None:
    signed = signer_for(rsa_key).sign(b"From: a@example.org\r\nSubject: nothing\r\n")
    assert verify(signed, rsa_key)


# Refusals


def test_rsa_key_below_2048_bits_is_refused() -> None:
    # A weak key on purpose: refusing it is what is tested.
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="2048"):
        DkimSigner(DOMAIN, SELECTOR, pem)


def test_ec_key_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="RSA or Ed25519"):
        DkimSigner(DOMAIN, SELECTOR, pem)


@pytest.mark.parametrize(
    ("domain", "selector"),
    [("example.org; x=1", SELECTOR), (DOMAIN, "sel ector"), ("bücher.example", SELECTOR)],
)
def test_malformed_domain_or_selector_is_refused(
    ed25519_key: Key, domain: str, selector: str
) -> None:
    with pytest.raises(ValueError):
        DkimSigner(domain, selector, ed25519_key.pem)


def test_headers_to_sign_must_include_from(ed25519_key: Key) -> None:
    with pytest.raises(ValueError, match="From"):
        DkimSigner(DOMAIN, SELECTOR, ed25519_key.pem, headers_to_sign=("To", "Subject"))


def test_message_without_from_is_refused(ed25519_key: Key) -> None:
    with pytest.raises(ValueError, match="From"):
        signer_for(ed25519_key).sign(b"To: b@example.net\r\n\r\nbody\r\n")


def test_custom_header_list_is_deduplicated_case_insensitively(ed25519_key: Key) -> None:
    signer = DkimSigner(
        DOMAIN, SELECTOR, ed25519_key.pem, headers_to_sign=("From", "from", "Subject")
    )
    assert signer.headers_to_sign == ("From", "Subject")
    signed = signer.sign(b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n")
    assert dkim_tags(signed)["h"] == "From:Subject"
    assert verify(signed, ed25519_key)


def test_load_signer_reads_the_key_file(tmp_path: Path, ed25519_key: Key) -> None:
    key_path = tmp_path / "dkim.pem"
    key_path.write_bytes(ed25519_key.pem)
    signer = load_signer(DOMAIN, SELECTOR, key_path)
    assert signer.algorithm == "ed25519-sha256"
    assert verify(signer.sign(newsletter_message()), ed25519_key)


def test_a_templates_precomputed_body_hash_matches_and_verifies(key: Key) -> None:
    from newsletter.delivery.mime import field_marker, prepare_message

    template = prepare_message(
        from_name="Spine & Pain Health Letter",
        from_address="newsletter@example.org",
        subject="3 new articles on Spine & MRI",
        text=f"Hello{field_marker('greeting_name')},\n\n  spaced   words\t\there  \n"
        + "x" * 200
        + f"\nUnsubscribe: {field_marker('unsubscribe_url')}\n",
        html=f"<p>Hello{field_marker('greeting_name')},</p>\n<p>  a  b  </p>"
        + f'<a href="{field_marker("unsubscribe_url")}">unsubscribe</a>\n\n',
        domain=DOMAIN,
    )
    message = template.render(
        to_address="zoe@example.org",
        fields={"greeting_name": " Zoë  <b>", "unsubscribe_url": UNSUBSCRIBE_URL},
        list_unsubscribe=[UNSUBSCRIBE_URL],
    )
    signer = DkimSigner(DOMAIN, SELECTOR, key.pem)
    fast = signer.sign(message.data, timestamp=1_700_000_000, body_hash=message.body_hash)
    slow = signer.sign(message.data, timestamp=1_700_000_000)
    bh = re.compile(rb"bh=([^;]+);")
    assert bh.search(fast).group(1) == bh.search(slow).group(1)  # type: ignore[union-attr]
    assert dkim.verify(fast, dnsfunc=key.dnsfunc)
