"""RFC 9530 integrity fields at the HTTP edge: Structured Field Dictionaries
parsed as RFC 9651 says, ``Want-Repr-Digest`` read as a hint, the
``Repr-Digest`` answered, and the checks a request's ``Content-Digest``,
``Repr-Digest`` or tus ``Upload-Checksum`` become."""

from __future__ import annotations

import base64
import hashlib

import pytest
from twisted.web.http_headers import Headers

from noded.digests import repr_digest_field, wanted, wants_repr_digest
from noded.structured import Date, InnerList, Item, Malformed, Token, parse_dictionary

DATA = b'{"hello": "world"}\n'
SHA256 = hashlib.sha256(DATA).digest()
SHA512 = hashlib.sha512(DATA).digest()


def sf(raw: bytes) -> str:
    """``raw`` as a Structured Field Byte Sequence."""
    return ":" + base64.b64encode(raw).decode() + ":"


def headers(**fields: str) -> Headers:
    return Headers(
        {
            name.replace("_", "-").encode(): [value.encode()]
            for name, value in fields.items()
        }
    )


# -- RFC 9651 Dictionaries -------------------------------------------------------


def test_a_dictionary_holds_every_kind_of_member_with_its_parameters() -> None:
    """Byte sequences, integers, decimals, strings, tokens, booleans, dates,
    display strings and inner lists parse, parameters kept beside them; a
    key without a value is True."""
    found = parse_dictionary(
        [
            'a=:aGk=:;p=1, b=-12, c=1.5, d="x\\"y", e=tok/en:1, f=?0, g=@1659578233',
            'h=%"caf%c3%a9", i=(1 "two";q);z, j;flag',
        ]
    )
    assert found["a"] == Item(b"hi", {"p": 1})
    assert found["b"] == Item(-12) and found["c"] == Item(1.5)
    assert found["d"] == Item('x"y')
    assert found["e"] == Item("tok/en:1") and isinstance(found["e"].value, Token)
    assert found["f"] == Item(False) and found["g"] == Item(Date(1659578233))
    assert found["h"] == Item("café")
    assert found["i"] == InnerList((Item(1), Item("two", {"q": True})), {"z": True})
    assert found["j"] == Item(True, {"flag": True})


def test_byte_sequences_may_leave_out_their_padding() -> None:
    """Missing '=' padding is synthesized (RFC 9651 section 4.2.7)."""
    assert parse_dictionary(["sha-256=:aGk:"])["sha-256"] == Item(b"hi")


@pytest.mark.parametrize(
    "value",
    [
        "sha-256=:not base64!:",
        "sha-256=:aGk=",
        "Sha-256=:aGk=:",
        "sha-256=:aGk=:,",
        "sha-256=:aGk=: sha-512=:aGk=:",
        "a=1.2345",
        "a=1234567890123456",
        'a="tab\there"',
        "a=?2",
        "a=(1 2",
        'a=%"%C3"',
        "a=@1.5",
        "=1",
    ],
)
def test_what_breaks_the_syntax_is_malformed(value: str) -> None:
    """Bad base64, an unclosed byte sequence, an uppercase key, a trailing
    comma, a missing comma, too many digits, a control character in a
    string, a bad boolean, an unclosed inner list, uppercase hex in a
    display string, a decimal date, a missing key: all Malformed."""
    with pytest.raises(Malformed):
        parse_dictionary([value])


def test_several_field_lines_make_one_dictionary() -> None:
    """Field lines of one field are joined with commas; spaces around
    members are allowed."""
    found = parse_dictionary([b"  sha-256=1 ", b"sha-512=2,\tmd5=0  "])
    assert [(k, v.value) for k, v in found.items() if isinstance(v, Item)] == [
        ("sha-256", 1),
        ("sha-512", 2),
        ("md5", 0),
    ]


# -- Want-Repr-Digest and the answer -------------------------------------------


def test_want_fields_are_weights_from_0_to_10_or_ignored() -> None:
    """A Want field gives each algorithm a weight; one that does not parse,
    or whose weights are not integers from 0 to 10, is ignored (None)."""
    weights = wanted(
        headers(Want_Repr_Digest="sha-512=3, sha-256=10, unixsum=0"),
        b"want-repr-digest",
    )
    assert weights == {"sha-512": 3, "sha-256": 10, "unixsum": 0}
    for broken in ("sha-256=11", "sha-256=-1", "sha-256=?1", "sha-256=1.0", "sha-256"):
        assert wanted(headers(Want_Repr_Digest=broken), b"want-repr-digest") is None
    assert wanted(headers(Want_Repr_Digest="SHA=1"), b"want-repr-digest") is None
    assert wanted(Headers(), b"want-repr-digest") is None


def test_sha256_is_answered_unless_the_client_calls_it_unacceptable() -> None:
    """Any valid Want-Repr-Digest gets sha-256, even when it prefers sha-512
    or names only algorithms uploadd does not answer; sha-256=0 gets none,
    and so does a field that is not valid, or none at all."""
    for asked in ("sha-256=1", "sha-512=10", "sha-512=10, sha-256=1", "md5=3"):
        assert wants_repr_digest(headers(Want_Repr_Digest=asked)), asked
    for refused in ("sha-512=10, sha-256=0", "sha-256=0", "sha-256=x"):
        assert not wants_repr_digest(headers(Want_Repr_Digest=refused)), refused
    assert not wants_repr_digest(Headers())
    assert not wants_repr_digest(headers(Want_Content_Digest="sha-256=1"))


def test_the_answer_is_the_sha256_as_a_byte_sequence() -> None:
    """Repr-Digest: sha-256=:base64 of the digest:, from the hex uploadd keeps."""
    field = repr_digest_field(hashlib.sha256(DATA).hexdigest())
    assert field == f"sha-256={sf(SHA256)}".encode()
    assert parse_dictionary([field])["sha-256"] == Item(SHA256)
