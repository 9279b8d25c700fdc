"""Normalisers, with real-world-shaped values (valid and invalid check digits)."""

from __future__ import annotations

import pytest

from services.ingest.normalize import (
    BadIdentifier,
    department_of_insee,
    fold_name,
    h3_cell,
    normalize_entity,
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        ("04 91 12 34 56", "+33491123456"),
        ("0596 12 34 56", "+33596123456"),
        ("+262 692 12 34 56", "+262692123456"),
        ("+34 612 345 678", "+34612345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+212 661 234 567", "+212661234567"),
        ("+31 6 12345678", "+31612345678"),
        ("+1 (202) 555-0143", "+12025550143"),
    ],
)
def test_phones_to_e164(raw: str, e164: str) -> None:
    assert normalize_entity("phone", raw) == e164


@pytest.mark.parametrize("raw", ["12", "06 12 34", "not a phone", "+33 1", "+999 123456789"])
def test_bad_phones(raw: str) -> None:
    with pytest.raises(BadIdentifier, match="phone"):
        normalize_entity("phone", raw)


@pytest.mark.parametrize(
    ("raw", "compact"),
    [
        ("FR76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189"),
        ("fr7630006000011234567890189", "FR7630006000011234567890189"),
        ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("ES91 2100 0418 4502 0005 1332", "ES9121000418450200051332"),
        ("BE68 5390 0754 7034", "BE68539007547034"),
        ("IT60 X054 2811 1010 0000 0123 456", "IT60X0542811101000000123456"),
        ("NL91ABNA0417164300", "NL91ABNA0417164300"),
        ("MC58 1122 2000 0101 2345 6789 030", "MC5811222000010123456789030"),
    ],
)
def test_ibans(raw: str, compact: str) -> None:
    assert normalize_entity("bank_account", raw) == compact


@pytest.mark.parametrize(
    "raw",
    [
        "DE89370400440532013001",  # check digits wrong
        "FR7630006000011234567890188",  # national key wrong
        "GB82WEST1234569876543",  # too short
        "XX82WEST12345698765432",  # no such country
        "12345",
    ],
)
def test_bad_ibans(raw: str) -> None:
    with pytest.raises(BadIdentifier, match="bank_account"):
        normalize_entity("bank_account", raw)


@pytest.mark.parametrize(
    ("raw", "plate"),
    [
        ("ab-123-cd", "AB123CD"),
        ("AB 123 CD", "AB123CD"),
        ("1234 ZX 13", "1234ZX13"),
        ("B-MW 1234", "BMW1234"),
    ],
)
def test_plates(raw: str, plate: str) -> None:
    assert normalize_entity("vehicle", raw) == plate


@pytest.mark.parametrize("raw", ["A", "AB#123", "ÀB-123-CD", "X" * 13])
def test_bad_plates(raw: str) -> None:
    with pytest.raises(BadIdentifier, match="vehicle"):
        normalize_entity("vehicle", raw)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("IMO 9074729", "IMO9074729"),
        ("imo9074729", "IMO9074729"),
        ("9176187", "IMO9176187"),
        ("227006760", "MMSI227006760"),
        ("MSC  Anna", "NAME:anna msc"),
    ],
)
def test_vessels(raw: str, canonical: str) -> None:
    assert normalize_entity("vessel", raw) == canonical


@pytest.mark.parametrize("raw", ["IMO 9074728", "9176188", "IMO 907472", "127006760", "12345"])
def test_bad_vessels(raw: str) -> None:
    with pytest.raises(BadIdentifier, match="vessel"):
        normalize_entity("vessel", raw)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("CSQU 305438 3", "CSQU3054383"),
        ("msku9070323", "MSKU9070323"),
        ("MSCU-123456-6", "MSCU1234566"),
    ],
)
def test_containers(raw: str, canonical: str) -> None:
    assert normalize_entity("container", raw) == canonical


@pytest.mark.parametrize("raw", ["CSQU3054384", "TGHU2345678", "CSQ3054383", "CSQX3054383"])
def test_bad_containers(raw: str) -> None:
    with pytest.raises(BadIdentifier, match="container"):
        normalize_entity("container", raw)


def test_names_fold_case_accents_spacing_and_order() -> None:
    assert fold_name("Élodie  DUPONT") == fold_name("dupont elodie") == "dupont elodie"
    assert fold_name("N'Diaye, Moussa") == fold_name("moussa n diaye")
    assert normalize_entity("organisation", "Société  Générale") == "generale societe"
    with pytest.raises(BadIdentifier):
        fold_name(" - ")


def test_generic_kinds() -> None:
    assert normalize_entity("parcel", "lx 123 456 789 fr") == "LX123456789FR"
    assert normalize_entity("weapon", "ak-47 sn 123") == "AK47SN123"


@pytest.mark.parametrize(
    ("insee", "dept"),
    [
        ("13055", "13"),
        ("75056", "75"),
        ("01001", "01"),
        ("2A004", "2A"),
        ("2b033", "2B"),
        ("97411", "974"),
        ("97209", "972"),
        ("97611", "976"),
        ("98000", None),
        ("20004", None),
    ],
)
def test_department_of_insee(insee: str, dept: str | None) -> None:
    assert department_of_insee(insee) == dept


def test_h3_cell() -> None:
    marseille = h3_cell(43.2965, 5.3698)
    assert marseille is not None and len(marseille) == 15
    assert h3_cell(43.2966, 5.3699) == marseille  # ~15 m away: same cell
    assert h3_cell(48.8566, 2.3522) != marseille
    assert h3_cell(43.0, None) is None
