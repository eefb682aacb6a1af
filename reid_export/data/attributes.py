"""The 27 Market-1501 pedestrian attributes and their codes.

Names, order and codes follow the official ``market_attribute.mat`` (Lin et al., "Improving
person re-identification by attribute and identity learning"). Every field is an integer:
``age`` runs 1-4, every other field is 1 or 2 (1 = no, 2 = yes for the yes/no fields).
The colour fields are one flag per colour; the synthetic generator sets exactly one upper and
exactly one lower colour to 2.
"""

from __future__ import annotations

from ..errors import DataError

__all__ = [
    "ATTRIBUTE_NAMES",
    "UPPER_COLOURS",
    "LOWER_COLOURS",
    "ATTRIBUTE_CODES",
    "ATTRIBUTE_DOCS",
    "attribute_codes",
]

UPPER_COLOURS: tuple[str, ...] = (
    "upblack", "upwhite", "upred", "uppurple", "upyellow", "upgray", "upblue", "upgreen",
)
LOWER_COLOURS: tuple[str, ...] = (
    "downblack", "downwhite", "downpink", "downpurple", "downyellow",
    "downgray", "downblue", "downgreen", "downbrown",
)
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "gender", "hair", "up", "down", "clothes", "hat", "backpack", "bag", "handbag", "age",
) + UPPER_COLOURS + LOWER_COLOURS

_NO_YES = {1: "no", 2: "yes"}

# code -> meaning, for every field
ATTRIBUTE_CODES: dict[str, dict[int, str]] = {
    "gender": {1: "male", 2: "female"},
    "hair": {1: "short hair", 2: "long hair"},
    "up": {1: "long sleeves", 2: "short sleeves"},
    "down": {1: "long lower-body clothing", 2: "short lower-body clothing"},
    "clothes": {1: "dress", 2: "pants"},
    "hat": dict(_NO_YES),
    "backpack": dict(_NO_YES),
    "bag": dict(_NO_YES),
    "handbag": dict(_NO_YES),
    "age": {1: "young", 2: "teenager", 3: "adult", 4: "old"},
    **{name: dict(_NO_YES) for name in UPPER_COLOURS + LOWER_COLOURS},
}

# one line per field: what the field describes
ATTRIBUTE_DOCS: dict[str, str] = {
    "gender": "gender of the person",
    "hair": "length of the hair",
    "up": "sleeve length of the upper-body clothing",
    "down": "length of the lower-body clothing",
    "clothes": "type of the lower-body clothing",
    "hat": "wears a hat",
    "backpack": "carries a backpack",
    "bag": "carries a shoulder bag",
    "handbag": "carries a handbag",
    "age": "age group",
    **{name: f"upper-body clothing is {name[2:]}" for name in UPPER_COLOURS},
    **{name: f"lower-body clothing is {name[4:]}" for name in LOWER_COLOURS},
}


def attribute_codes(name: str) -> tuple[int, ...]:
    """The codes a field may take, e.g. ``(1, 2, 3, 4)`` for ``age``."""
    if name not in ATTRIBUTE_CODES:
        raise DataError(f"unknown Market-1501 attribute {name!r}; expected one of {', '.join(ATTRIBUTE_NAMES)}")
    return tuple(ATTRIBUTE_CODES[name])
