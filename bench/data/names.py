"""Invented names and values.

Names are split into two disjoint *partitions* by a stable hash, so the pocket model's
background world (partition 0) can never share an entity with a test world (partition 1),
whatever seeds either uses.
"""

from __future__ import annotations

import hashlib
import random

# A small syllable inventory keeps names short in tokens (a few BPE pieces each): long names
# made of many one-letter pieces are much harder for a tiny model to match across a prompt.
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u"]
_CODAS = ["", "", "n", "r", "l", "s"]

OCCUPATIONS = [
    "baker", "carpenter", "painter", "sailor", "farmer", "teacher", "doctor", "lawyer",
    "tailor", "potter", "weaver", "miner", "fisher", "glassblower", "cartographer", "brewer",
    "jeweler", "librarian", "surveyor", "astronomer", "chemist", "architect", "blacksmith",
    "engineer", "pilot", "nurse", "poet", "sculptor", "gardener", "locksmith", "beekeeper",
    "composer", "translator", "pharmacist", "veterinarian", "geologist", "botanist", "printer",
]
INSTRUMENTS = [
    "cello", "violin", "flute", "harp", "trumpet", "piano", "guitar", "oboe", "clarinet",
    "drums", "banjo", "accordion", "trombone", "mandolin", "bassoon", "saxophone", "lute",
    "harmonica", "ukulele", "tuba",
]
COLORS = [
    "red", "blue", "green", "yellow", "purple", "orange", "teal", "crimson", "amber", "violet",
    "indigo", "scarlet", "olive", "maroon", "silver", "gold", "ivory", "turquoise", "magenta",
    "beige",
]


def word(rng: random.Random, min_syl: int = 2, max_syl: int = 3) -> str:
    n = rng.randint(min_syl, max_syl)
    body = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
    return (body + rng.choice(_CODAS)).capitalize()


def partition_of(name: str) -> int:
    """Stable partition (0 = background, 1 = test worlds) of any invented name."""
    return hashlib.sha256(name.encode()).digest()[0] % 2


def person_name(rng: random.Random, partition: int) -> str:
    while True:
        name = f"{word(rng, 2, 2)} {word(rng, 2, 3)}"
        if partition_of(name) == partition:
            return name


def city_name(rng: random.Random) -> str:
    return word(rng, 2, 3)


def company_name(rng: random.Random) -> str:
    return word(rng, 2, 2) + rng.choice([" Labs", " Works", " Mills", " Foundry", " Trading",
                                         " Shipping", " Press", " Textiles"])


def year(rng: random.Random) -> str:
    return str(rng.randint(1600, 1999))
