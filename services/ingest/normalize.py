"""Normalise identifiers and locations so the same thing from two agencies compares equal.

:func:`normalize_entity` returns the canonical string for an entity value or
raises :class:`BadIdentifier` (the event is then dead-lettered with reason
``bad_identifier``): an identifier that fails its format or check digit is an
error, never silently kept. Maintained libraries do the checking where one
exists: ``phonenumbers`` (E.164), ``schwifty`` (IBAN), ``python-stdnum`` (IMO
and ISO 6346 check digits), ``h3`` (location cells).

Canonical forms (what is hashed by :mod:`.pseudonymize`):

* ``person``, ``organisation``: folded name: accents stripped, case-folded,
  punctuation and spacing collapsed, words sorted (``"Dupont Jean"`` equals
  ``"JEAN  DUPONT"``);
* ``phone``: E.164, national numbers read in region FR;
* ``bank_account``: compact IBAN (checked: country, length, check digits, and
  the national BBAN check where schwifty knows it);
* ``vehicle``: plate upper case without separators, 2-12 letters or digits;
* ``vessel``: ``IMO<7 digits>`` (check digit) for ``IMO 9074729`` or 7 digits,
  ``MMSI<9 digits>`` for 9 digits with a maritime identification digit 2-7,
  otherwise the folded vessel name as ``NAME:<folded>``;
* ``container``: ISO 6346 (owner, category U/J/Z, serial, check digit);
* ``weapon``, ``parcel``: upper case without spaces or dashes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

import h3
import phonenumbers
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from stdnum import imo, iso6346
from stdnum.exceptions import ValidationError as StdnumError

#: H3 resolution of ``location.h3``: resolution 8 cells are about 0.74 km²
#: (edge about 460 m), the scale of a neighbourhood or a port terminal.
H3_RESOLUTION: Final = 8


class BadIdentifier(ValueError):
    """An identifier that fails its format or check digit. The message never holds the value."""


_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[^\w\s]")
_PLATE_SEP = re.compile(r"[\s\-._/]")
_PLATE = re.compile(r"^[A-Z0-9]{2,12}$")
_IMO = re.compile(r"^(?:IMO)?(\d{7})$")
_MMSI = re.compile(r"^[2-7]\d{8}$")
_GENERIC_SEP = re.compile(r"[\s\-]")


def fold_name(value: str) -> str:
    """Case-, accent-, punctuation- and spacing-insensitive, word-order-insensitive."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    words = _SPACES.sub(" ", _NOT_WORD.sub(" ", text)).replace("_", " ").split()
    if not words:
        raise BadIdentifier("name: no letter or digit")
    return " ".join(sorted(words))


def normalize_phone(value: str, region: str = "FR") -> str:
    """E.164 (``+33612345678``); national numbers are read in ``region``."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise BadIdentifier("phone: not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise BadIdentifier("phone: not a valid number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_iban(value: str) -> str:
    """The compact IBAN; raises on bad country, length, format or check digits."""
    try:
        return IBAN(value).compact
    except SchwiftyException as exc:
        raise BadIdentifier(f"bank_account: {type(exc).__name__}") from None


def normalize_plate(value: str) -> str:
    """Upper case without separators: ``ab-123-cd`` → ``AB123CD``."""
    plate = _PLATE_SEP.sub("", unicodedata.normalize("NFKC", value)).upper()
    if not _PLATE.match(plate):
        raise BadIdentifier("vehicle: a plate is 2-12 letters or digits")
    return plate


def normalize_vessel(value: str) -> str:
    """``IMO<digits>`` (checked), ``MMSI<digits>``, or ``NAME:<folded name>``."""
    compact = _GENERIC_SEP.sub("", value).upper()
    m = _IMO.match(compact)
    if m:
        try:
            return "IMO" + imo.validate(m.group(1))
        except StdnumError:
            raise BadIdentifier("vessel: IMO number fails its check digit") from None
    if compact.isdigit():
        if _MMSI.match(compact):
            return "MMSI" + compact
        raise BadIdentifier("vessel: a number is an IMO (7 digits) or an MMSI (9 digits)")
    if compact.startswith("IMO") and compact[3:].isdigit():
        raise BadIdentifier("vessel: an IMO number has 7 digits")
    return "NAME:" + fold_name(value)


def normalize_container(value: str) -> str:
    """ISO 6346 container number, check digit verified: ``CSQU3054383``."""
    try:
        return str(iso6346.validate(_GENERIC_SEP.sub("", value)))
    except StdnumError:
        raise BadIdentifier("container: not an ISO 6346 number with a valid check digit") from None


def _generic(value: str) -> str:
    out = _GENERIC_SEP.sub("", value).upper()
    if not out:
        raise BadIdentifier("identifier is empty")
    return out


_BY_KIND: Final[dict[str, Callable[[str], str]]] = {
    "person": fold_name,
    "organisation": fold_name,
    "phone": normalize_phone,
    "bank_account": normalize_iban,
    "vehicle": normalize_plate,
    "vessel": normalize_vessel,
    "container": normalize_container,
    "weapon": _generic,
    "parcel": _generic,
}


def normalize_entity(kind: str, value: str) -> str:
    """The canonical form of ``value`` for entity ``kind``; raises :class:`BadIdentifier`."""
    fn = _BY_KIND.get(kind)
    if fn is None:
        raise BadIdentifier(f"unknown entity kind {kind!r}")
    return fn(value.strip())


def department_of_insee(insee: str) -> str | None:
    """The département an INSEE commune code belongs to, or ``None``.

    Metropolitan codes start with the département (``13055`` → ``13``,
    ``2A004`` → ``2A``); overseas ones with three digits (``97411`` → ``974``).
    ``20xxx`` (pre-1976 Corsica) and ``98xxx`` (Monaco, overseas collectivities)
    belong to no département.
    """
    code = insee.strip().upper()
    if len(code) != 5:
        return None
    if code.startswith("97"):
        dept = code[:3]
        return dept if dept in {"971", "972", "973", "974", "976"} else None
    dept = code[:2]
    if dept in {"00", "20", "96", "98", "99"}:
        return None
    return dept


def h3_cell(lat: float | None, lon: float | None) -> str | None:
    """The H3 cell at :data:`H3_RESOLUTION` of a point, ``None`` without both coordinates."""
    if lat is None or lon is None:
        return None
    return str(h3.latlng_to_cell(lat, lon, H3_RESOLUTION))
