"""Normalise identifiers so that the same thing from two agencies compares equal.

:func:`normalize_entity` returns the canonical string for an entity value or
raises :class:`BadIdentifier` (the event is then dead-lettered with reason
``bad_identifier``).
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers


class BadIdentifier(ValueError):
    """An identifier that fails its format or check digit."""


_SPACES = re.compile(r"\s+")
_PLATE_SEP = re.compile(r"[\s\-._]")


def fold_name(value: str) -> str:
    """Case-, accent- and spacing-insensitive, word-order-insensitive."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    words = _SPACES.sub(" ", re.sub(r"[^\w\s]", " ", text)).split()
    if not words:
        raise BadIdentifier("empty name")
    return " ".join(sorted(words))


def normalize_phone(value: str, region: str = "FR") -> str:
    """E.164 (``+33612345678``); national numbers are read in ``region``."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise BadIdentifier(f"phone: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise BadIdentifier("phone: not a possible number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_entity(kind: str, value: str) -> str:
    """The canonical form of ``value`` for entity ``kind``."""
    value = value.strip()
    if kind in {"person", "organisation"}:
        return fold_name(value)
    if kind == "phone":
        return normalize_phone(value)
    if kind == "vehicle":
        plate = _PLATE_SEP.sub("", value).upper()
        if not plate.isalnum():
            raise BadIdentifier("vehicle plate has characters other than letters and digits")
        return plate
    return _SPACES.sub("", value).upper()
