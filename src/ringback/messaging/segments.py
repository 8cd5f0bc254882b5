"""SMS encoding: GSM-7 or UCS-2, how many segments, and keeping texts in GSM-7 when we can.

One GSM-7 segment holds 160 characters; a single character outside GSM-7 (a curly quote,
an accented "á", an emoji) turns the whole text into UCS-2, 70 characters a segment, which
can double or triple what a text costs and how it is split on the phone.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters GSM-7 sends as an escape plus one septet.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# Look-alikes that keep a text in GSM-7. Accents GSM-7 lacks lose them (Spanish reads fine
# without them in a text message); punctuation becomes its plain form.
_GSM7_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "á": "a",
        "í": "i",
        "ó": "o",
        "ú": "u",
        "Á": "A",
        "Í": "I",
        "Ó": "O",
        "Ú": "U",
        "ê": "e",
        "â": "a",
        "ç": "c",
    }
)


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def message_segments(body: str) -> tuple[Encoding, int]:
    """How a carrier encodes ``body`` and into how many SMS segments it splits.

    GSM-7 fits 160 septets in one segment and 153 per segment once split (extension
    characters such as ``€`` take two); anything else goes as UCS-2, 70 UTF-16 code units
    alone or 67 per segment, and an emoji (a surrogate pair) is never split.
    """
    if is_gsm7(body):
        costs = [2 if character in GSM7_EXTENSION else 1 for character in body]
        return "GSM-7", _segments_needed(costs, single=160, per_segment=153)
    costs = [2 if ord(character) > 0xFFFF else 1 for character in body]
    return "UCS-2", _segments_needed(costs, single=70, per_segment=67)


def _segments_needed(costs: list[int], *, single: int, per_segment: int) -> int:
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            segments, used = segments + 1, 0
        used += cost
    return segments


def prefer_gsm7(text: str) -> str:
    """``text`` with look-alikes swapped in when that makes it GSM-7 and no longer.

    Text the swap cannot make GSM-7 (an emoji, another script) is left exactly as it is.
    """
    if is_gsm7(text):
        return text
    plain = text.translate(_GSM7_LOOKALIKES)
    if is_gsm7(plain) and message_segments(plain)[1] <= message_segments(text)[1]:
        return plain
    return text
