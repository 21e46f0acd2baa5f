"""S3's XML: the documents the S3 API answers with, and the few it reads.

Answers are built as element trees in S3's namespace and serialised with an
XML declaration, as S3 writes them. Request documents (CompleteMultipartUpload,
Delete, CreateBucketConfiguration, CORSConfiguration) are read with a size
cap and without DTDs (no entity can expand), element names compared without
their namespace (clients send them with or without S3's); a document that
is not what it should be is S3's ``MalformedXML``.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from uploadd.api.s3.errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
CONTENT_TYPE = b"application/xml"
#: The largest request document read (a completion of 10,000 parts with
#: checksums is about 2 MiB).
MAX_DOCUMENT = 8 * 1024 * 1024

Child = tuple[str, Any]


def iso_time(seconds: float) -> str:
    """A time as S3's documents write it: ``2026-01-01T12:00:00.000Z``."""
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def quoted(etag: str) -> str:
    """An entity tag as S3 shows it: in double quotes."""
    return f'"{etag}"'


def _add(parent: ET.Element, name: str, value: Any) -> None:
    """Add ``<name>`` under ``parent``: a list adds one element per item, a
    sequence of pairs nests, None adds nothing, a bool is true/false."""
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _add(parent, name, item)
        return
    element = ET.SubElement(parent, name)
    if isinstance(value, tuple):
        for child_name, child in value:
            _add(element, child_name, child)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)


def document(root: str, children: Iterable[Child], namespace: bool = True) -> bytes:
    """``<root>`` with ``children`` (name, value) as :func:`_add` nests them."""
    element = ET.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    for name, value in children:
        _add(element, name, value)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return body


def text_document(root: str, text: str) -> bytes:
    """``<root>text</root>`` in S3's namespace."""
    element = ET.Element(root, {"xmlns": NAMESPACE})
    element.text = text or None
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return body


def error_document(
    code: str,
    message: str,
    resource: str,
    request_id: str,
    details: Mapping[str, str] | None = None,
) -> bytes:
    """S3's error document (it has no namespace)."""
    return document(
        "Error",
        [
            ("Code", code),
            ("Message", message),
            *((name, value) for name, value in (details or {}).items()),
            ("Resource", resource),
            ("RequestId", request_id),
        ],
        namespace=False,
    )


def encoded(value: str | None, url: bool) -> str | None:
    """A key or prefix as a listing with ``encoding-type=url`` gives it."""
    if value is None or not url:
        return value
    return quote(value, safe="/")


def owner(user_id: int, name: str) -> tuple[Child, ...]:
    return (("ID", str(user_id)), ("DisplayName", name))


# -- reading ---------------------------------------------------------------------


def malformed(detail: str = "") -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against "
        "our published schema" + (f": {detail}" if detail else ""),
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse(body: bytes, root: str) -> ET.Element:
    """The root element of a request document, which must be ``root``."""
    if len(body) > MAX_DOCUMENT:
        raise S3Error(
            "MaxMessageLengthExceeded", "Your request was too big.", status=400
        )
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise malformed("a document type declaration is not taken")
    try:
        element = ET.fromstring(body)
    except ET.ParseError:
        raise malformed() from None
    if _local(element.tag) != root:
        raise malformed(f"the document is not a {root}")
    return element


def children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def text_of(element: ET.Element, name: str) -> str | None:
    """The text of the first child ``name``, if there is one."""
    found = children(element, name)
    return (found[0].text or "") if found else None


def parse_complete(body: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """The parts a CompleteMultipartUpload document lists: number, entity tag
    and the checksums given (algorithm -> value)."""
    root = parse(body, "CompleteMultipartUpload")
    listed = []
    for part in children(root, "Part"):
        number, etag = text_of(part, "PartNumber"), text_of(part, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise malformed("each Part has a PartNumber and an ETag")
        sums = {
            _local(child.tag)[len("Checksum") :].upper(): (child.text or "").strip()
            for child in part
            if _local(child.tag).startswith("Checksum")
        }
        listed.append((int(number.strip()[:6]), etag.strip(), sums))
    if not listed:
        raise malformed("a completion lists at least one Part")
    return listed


#: The most keys one DeleteObjects request names (S3's).
MAX_DELETE = 1000


def parse_delete(body: bytes) -> tuple[bool, list[str]]:
    """Whether a Delete document is quiet, and the keys it names."""
    root = parse(body, "Delete")
    quiet = (text_of(root, "Quiet") or "").strip().lower() == "true"
    keys = []
    for item in children(root, "Object"):
        key = text_of(item, "Key")
        if key is None:
            raise malformed("each Object has a Key")
        keys.append(key)
    if not keys or len(keys) > MAX_DELETE:
        raise malformed(f"a Delete names 1 to {MAX_DELETE} objects")
    return quiet, keys


def parse_location(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucketConfiguration, if any."""
    if not body.strip():
        return None
    root = parse(body, "CreateBucketConfiguration")
    found = text_of(root, "LocationConstraint")
    return found.strip() if found is not None else None


_CORS_LISTS = {
    "AllowedOrigin": "origins",
    "AllowedMethod": "methods",
    "AllowedHeader": "headers",
    "ExposeHeader": "expose",
}
_CORS_METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "DELETE"})
#: The most rules a bucket's CORS configuration holds (S3's).
MAX_CORS_RULES = 100


def parse_cors(body: bytes) -> list[dict[str, Any]]:
    """The rules of a CORSConfiguration, as :mod:`.cors` keeps them."""
    root = parse(body, "CORSConfiguration")
    rules = []
    for element in children(root, "CORSRule"):
        rule: dict[str, Any] = {name: [] for name in _CORS_LISTS.values()}
        for child in element:
            name = _local(child.tag)
            if name in _CORS_LISTS:
                rule[_CORS_LISTS[name]].append((child.text or "").strip())
            elif name == "MaxAgeSeconds":
                try:
                    rule["max_age"] = int((child.text or "").strip())
                except ValueError:
                    raise malformed("MaxAgeSeconds is an integer") from None
            elif name == "ID":
                rule["id"] = (child.text or "").strip()
        if not rule["origins"] or not rule["methods"]:
            raise malformed("a CORSRule has an AllowedOrigin and an AllowedMethod")
        unknown = set(rule["methods"]) - _CORS_METHODS
        if unknown:
            raise S3Error(
                "InvalidRequest",
                "Found unsupported HTTP method in CORS config. Unsupported method "
                f"is {sorted(unknown)[0]}",
            )
        rules.append(rule)
    if not rules or len(rules) > MAX_CORS_RULES:
        raise malformed(f"a CORSConfiguration has 1 to {MAX_CORS_RULES} rules")
    return rules


def cors_document(rules: Sequence[Mapping[str, Any]]) -> bytes:
    names = {kept: given for given, kept in _CORS_LISTS.items()}
    return document(
        "CORSConfiguration",
        [
            (
                "CORSRule",
                (
                    *((("ID", rule["id"]),) if rule.get("id") else ()),
                    *(
                        (names[kept], list(rule.get(kept, [])))
                        for kept in ("headers", "methods", "origins", "expose")
                    ),
                    ("MaxAgeSeconds", rule.get("max_age")),
                ),
            )
            for rule in rules
        ],
    )
