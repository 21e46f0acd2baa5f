"""RFC 9651 Structured Fields, parsed: Dictionaries, what the digest fields
(RFC 9530 ``Content-Digest``, ``Repr-Digest`` and their ``Want-`` forms)
are written in, and Items, what the resumable-upload fields
(``Upload-Offset``, ``Upload-Complete``, ...) are.

Only parsing, only Dictionaries and Items (with every kind of value, so that a
member this code does not care about still parses or fails as the RFC
says); a value that breaks the syntax raises :class:`Malformed`, and the
caller decides whether that ignores the field or refuses the message
(RFC 9651 section 4.2 allows either). Written here rather than taken from
a package: the two daemons need this much and no more.
"""

from __future__ import annotations

import base64
import binascii
import string
from collections.abc import Iterable
from typing import NoReturn, TypeAlias

import attrs


class Malformed(ValueError):
    """The field value is not a valid Structured Field; str() says where."""


class Token(str):
    """A Token (``*``/letters first), told apart from a String."""


@attrs.frozen
class Date:
    """A Date (``@`` and seconds since the epoch)."""

    seconds: int


BareItem: TypeAlias = int | float | str | bytes | bool | Date
Parameters: TypeAlias = dict[str, BareItem]


@attrs.frozen
class Item:
    value: BareItem
    parameters: Parameters = attrs.field(factory=dict)


@attrs.frozen
class InnerList:
    items: tuple[Item, ...]
    parameters: Parameters = attrs.field(factory=dict)


Member: TypeAlias = Item | InnerList

_LCALPHA = string.ascii_lowercase
_KEY_FIRST = _LCALPHA + "*"
_KEY_REST = _LCALPHA + string.digits + "_-.*"
_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
_TOKEN_REST = _TCHAR + ":/"
_BASE64 = string.ascii_letters + string.digits + "+/="
_HEX = "0123456789abcdef"


def parse_dictionary(lines: Iterable[bytes | str]) -> dict[str, Member]:
    """The Dictionary the field lines of one field make (joined by commas,
    as RFC 9651 section 4.2 says); Malformed if they make none."""
    text = ",".join(
        line.decode("latin-1") if isinstance(line, bytes) else line for line in lines
    )
    return _Parser(text.strip(" ")).dictionary()


def parse_item(lines: Iterable[bytes | str]) -> Item:
    """The Item the field lines of one field make; Malformed if they make
    none (two lines make a list, which is no Item)."""
    text = ",".join(
        line.decode("latin-1") if isinstance(line, bytes) else line for line in lines
    )
    parser = _Parser(text.strip(" "))
    item = parser.item()
    if parser.peek():
        parser.fail("an Item ends here")
    return item


@attrs.define
class _Parser:
    text: str
    at: int = 0

    # -- reading -------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            self.fail("the value ends early")
        self.at += 1
        return char

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.at += 1

    def fail(self, why: str) -> NoReturn:
        raise Malformed(f"{why} (at character {self.at + 1})")

    # -- RFC 9651 section 4.2 --------------------------------------------------

    def dictionary(self) -> dict[str, Member]:
        found: dict[str, Member] = {}
        while self.peek():
            key = self.key()
            if self.peek() == "=":
                self.at += 1
                found[key] = self.member()
            else:
                found[key] = Item(True, self.parameters())
            self.skip(" \t")
            if not self.peek():
                break
            if self.take() != ",":
                self.fail("members are separated by commas")
            self.skip(" \t")
            if not self.peek():
                self.fail("a comma ends the value")
        return found

    def member(self) -> Member:
        if self.peek() != "(":
            return self.item()
        self.at += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.at += 1
                return InnerList(tuple(items), self.parameters())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                self.fail("an inner list's items are separated by spaces")

    def item(self) -> Item:
        return Item(self.bare_item(), self.parameters())

    def parameters(self) -> Parameters:
        found: Parameters = {}
        while self.peek() == ";":
            self.at += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.at += 1
                value = self.bare_item()
            found[key] = value
        return found

    def key(self) -> str:
        start = self.at
        if self.peek() == "" or self.peek() not in _KEY_FIRST:
            self.fail("a key starts with a lowercase letter or '*'")
        self.skip(_KEY_REST)
        return self.text[start : self.at]

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or (char and char in string.digits):
            return self.number()
        if char == '"':
            return self.string()
        if char == "*" or (char and char in string.ascii_letters):
            return self.token()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "@":
            self.at += 1
            seconds = self.number()
            if not isinstance(seconds, int):
                self.fail("a date is a whole number of seconds")
            return Date(int(seconds))
        if char == "%":
            return self.display_string()
        self.fail("no item starts so")

    def number(self) -> int | float:
        sign = 1
        if self.peek() == "-":
            self.at += 1
            sign = -1
        if not self.peek() or self.peek() not in string.digits:
            self.fail("a number has digits")
        start, dot = self.at, -1
        while self.peek() and (self.peek() in string.digits or self.peek() == "."):
            if self.peek() == ".":
                if dot >= 0 or self.at - start > 12:
                    self.fail("a decimal has one point, at most 12 digits before it")
                dot = self.at
            self.at += 1
            if dot < 0 and self.at - start > 15:
                self.fail("an integer has at most 15 digits")
            if dot >= 0 and self.at - start > 16:
                self.fail("a decimal has at most 16 characters")
        digits = self.text[start : self.at]
        if dot < 0:
            return sign * int(digits)
        fraction = self.at - dot - 1
        if fraction == 0 or fraction > 3:
            self.fail("a decimal has one to three digits after its point")
        return sign * float(digits)

    def string(self) -> str:
        self.at += 1
        out: list[str] = []
        while True:
            char = self.take()
            if char == "\\":
                escaped = self.take()
                if escaped not in ('"', "\\"):
                    self.fail("a string escapes only '\"' and '\\'")
                out.append(escaped)
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                self.fail("a string holds printable ASCII only")
            else:
                out.append(char)

    def token(self) -> Token:
        start = self.at
        self.at += 1
        self.skip(_TOKEN_REST)
        return Token(self.text[start : self.at])

    def byte_sequence(self) -> bytes:
        self.at += 1
        end = self.text.find(":", self.at)
        if end < 0:
            self.fail("a byte sequence ends with ':'")
        encoded = self.text[self.at : end]
        if any(char not in _BASE64 for char in encoded):
            self.fail("a byte sequence is base64")
        self.at = end + 1
        # Missing "=" padding is synthesized, as section 4.2.7 asks.
        bare = encoded.rstrip("=")
        try:
            return base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
        except binascii.Error:
            self.fail("a byte sequence is base64")

    def boolean(self) -> bool:
        self.at += 1
        char = self.take()
        if char not in "01":
            self.fail("a boolean is ?1 or ?0")
        return char == "1"

    def display_string(self) -> str:
        self.at += 1
        if self.take() != '"':
            self.fail("a display string starts with '%\"'")
        out = bytearray()
        while True:
            char = self.take()
            if char == "%":
                pair = self.take() + self.take()
                if any(c not in _HEX for c in pair):
                    self.fail("a display string escapes with lowercase hex")
                out.append(int(pair, 16))
            elif char == '"':
                try:
                    return out.decode("utf-8")
                except UnicodeDecodeError:
                    self.fail("a display string is UTF-8")
            elif not " " <= char <= "~":
                self.fail("a display string holds printable ASCII only")
            else:
                out.extend(char.encode("ascii"))
