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
from noded.problems import Problem
from noded.structured import Date, InnerList, Item, Malformed, Token, parse_dictionary
from uploadd.api.digests import body_check, content_check, parse_checksum, repr_check
from uploadd.api.problems import problem_of
from uploadd.errors import ChecksumMismatch
from uploadd.uploads.checks import ReprCheck

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


# -- the checks a request's fields become ------------------------------------


def test_a_content_digest_becomes_a_check_of_the_body_by_its_strongest_digest() -> None:
    """sha-256 alone is checked with sha256; with sha-512 beside it only the
    sha-512 is (a fresh hasher the body runs through); parameters and
    unsupported algorithms are ignored; none supported is no check."""
    only = content_check(headers(Content_Digest=f"sha-256={sf(SHA256)}"))
    assert only is not None
    assert (only.hasher.name, only.expected, only.named) == (
        "sha256",
        SHA256,
        "Content-Digest",
    )
    both = content_check(
        headers(
            Content_Digest=f"md5={sf(b'x' * 16)}, sha-256={sf(SHA256)};p=1, "
            f"sha-512={sf(SHA512)}, crc32c=:AAAAAA==:, unixsum=7"
        )
    )
    assert both is not None
    assert (both.hasher.name, both.expected) == ("sha512", SHA512)
    both.hasher.update(DATA)
    assert both.hasher.digest() == SHA512
    assert content_check(headers(Content_Digest=f"md5={sf(b'x' * 16)}")) is None
    assert content_check(Headers()) is None


def test_a_repr_digest_becomes_a_check_of_the_whole_file() -> None:
    """Repr-Digest makes a whole-file check in hashlib's names."""
    check = repr_check(headers(Repr_Digest=f"sha-512={sf(SHA512)}"))
    assert check == ReprCheck("sha512", SHA512, named="Repr-Digest")
    check = repr_check(headers(Repr_Digest=f"sha-256={sf(SHA256)}, sha=:AAAA:"))
    assert check == ReprCheck("sha256", SHA256, named="Repr-Digest")
    assert repr_check(headers(Content_Digest=f"sha-256={sf(SHA256)}")) is None


@pytest.mark.parametrize(
    "value", ["sha-256=:AAAA", "sha-256=:aGk=:,", "sha-256=1", "sha-512=(:aGk=:)"]
)
def test_a_field_that_is_no_dictionary_of_digests_is_a_400_naming_it(
    value: str,
) -> None:
    """A field that does not parse, or gives a supported algorithm anything
    but a byte sequence, is refused with a 400 that names the field."""
    with pytest.raises(Problem) as refused:
        repr_check(headers(Repr_Digest=value))
    assert refused.value.status == 400
    assert refused.value.type == "about:blank"
    assert "Repr-Digest" in refused.value.detail


def test_a_digest_of_the_wrong_length_is_the_invalid_values_problem() -> None:
    """A digest too short or too long for its algorithm is a 400 of the
    digest-invalid-values type listing each, with the field it came in."""
    with pytest.raises(Problem) as refused:
        content_check(
            headers(Content_Digest=f"sha-512={sf(SHA256)}, sha-256={sf(SHA512)}")
        )
    problem = refused.value
    assert problem.status == 400
    document = problem.document()
    assert document["type"] == (
        "https://iana.org/assignments/http-problem-types#digest-invalid-values"
    )
    assert document["title"] == "Invalid Digest Values"
    assert document["invalid_digests"] == [
        {
            "algorithm": "sha-512",
            "header": "Content-Digest",
            "reason": "digest value is not 64 bytes long",
        },
        {
            "algorithm": "sha-256",
            "header": "Content-Digest",
            "reason": "digest value is not 32 bytes long",
        },
    ]


def test_a_mismatch_of_an_integrity_field_is_the_mismatched_values_problem() -> None:
    """A mismatch of Content-Digest or Repr-Digest is a 400 of the
    digest-mismatched-values type naming the algorithm key, the digest the
    client gave (as a byte sequence) and the field; one of tus's
    Upload-Checksum is tus's 460."""
    error = ChecksumMismatch(
        "no", named="Repr-Digest", algorithm="sha256", provided=SHA256
    )
    problem = problem_of(error)
    assert (problem.status, problem.title) == (400, "Mismatched Digest Values")
    assert problem.document() == {
        "type": "https://iana.org/assignments/http-problem-types"
        "#digest-mismatched-values",
        "title": "Mismatched Digest Values",
        "status": 400,
        "detail": "no",
        "mismatched_digests": [
            {
                "algorithm": "sha-256",
                "provided_digest": sf(SHA256),
                "header": "Repr-Digest",
            }
        ],
    }
    tus = problem_of(ChecksumMismatch("no", named="Upload-Checksum", algorithm="md5"))
    assert (tus.status, tus.type, tus.title) == (
        460,
        "about:blank",
        "Checksum Mismatch",
    )
    assert "algorithm" not in tus.document()


def test_an_upload_checksum_is_a_tus_check_or_a_400() -> None:
    """Upload-Checksum takes sha1, md5 and sha256 in tus's spelling; another
    algorithm or bad base64 is a 400; with Content-Digest too it is a 400,
    and either alone is the body's one check."""
    check = parse_checksum(
        f"sha1 {base64.b64encode(hashlib.sha1(DATA).digest()).decode()}"
    )
    assert check is not None and check.named == "Upload-Checksum"
    assert check.hasher.name == "sha1"
    for bad in ("crc32 AAAA", "sha-256 AAAA", "md5 not!base64"):
        with pytest.raises(Problem) as refused:
            parse_checksum(bad)
        assert refused.value.status == 400
    with pytest.raises(Problem):
        body_check(headers(Content_Digest=f"sha-256={sf(SHA256)}"), "md5 AAAA")
    only = body_check(headers(Content_Digest=f"sha-256={sf(SHA256)}"), None)
    assert only is not None and only.named == "Content-Digest"
    assert body_check(Headers(), None) is None
