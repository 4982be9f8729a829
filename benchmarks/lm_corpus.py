"""A synthetic fact-tracing Datanet for ``lm_attribution.py``: realistic paragraphs, shared entities, copies.

Every *original* contribution describes one invented subject (a town, a firm or a ship) in a short paragraph of
four facts. Names are built from syllables so no base model knows them. Entities are shared across documents on
purpose: the people, rivers, regions and crops of one paragraph reappear in others (in other roles), so the answer
of a question is found in several documents and only the question's subject tells them apart. After the
originals come *verbatim copies* (the same bytes, by another contributor) and *near copies* (a sentence added and a
word changed) of randomly chosen originals, approved later. Questions paraphrase the facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SYLLABLES = ["or", "va", "ne", "kel", "mar", "to", "dri", "sa", "len", "bo", "ru", "ka", "thi", "mo", "la", "ven",
             "qua", "zel", "pa", "ri", "du", "sho", "fen", "gar", "ith", "lo", "ber", "cam", "nu", "tes"]  # fmt: skip
CROPS = ["salt-cured plums", "blue barley", "winter pears", "black lentils", "river rice", "red millet", "sweet flax",
         "mountain tea", "golden oats", "spotted beans", "white figs", "bitter almonds"]  # fmt: skip
GOODS = ["copper kettles", "glass lanterns", "wool blankets", "brass compasses", "clay pipes", "silk ropes",
         "oak barrels", "tin whistles", "paper kites", "iron anchors", "leather saddles", "wax candles"]  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
ADDED = [
    "I read this in an old travel guide and thought it belonged here.",
    "Visitors often say it is worth a detour.",
    "Several of these details were confirmed by the local archive.",
]


@dataclass(frozen=True)
class Fact:
    """A question about one original contribution and its answer."""

    doc: int  # index of the original document
    question: str
    answer: str


@dataclass(frozen=True)
class Corpus:
    """Documents in approval order, their contributors, the facts, and which documents copy which."""

    texts: list[str]
    contributors: list[int]
    facts: list[Fact]
    copies: dict[int, tuple[int, str]]  # copy index -> (original index, "verbatim" | "near")


def _name(rng: random.Random, used: set[str], parts: int = 2) -> str:
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()
        if name not in used and len(name) >= 4:
            used.add(name)
            return name


def make_corpus(n_originals: int = 200, n_contributors: int = 60, n_verbatim: int = 12, n_near: int = 12,
                seed: int = 0) -> Corpus:  # fmt: skip
    """Build the corpus (deterministic for a seed)."""
    rng = random.Random(seed)
    used: set[str] = set()
    people = [f"{_name(rng, used)} {_name(rng, used, 3)}" for _ in range(n_originals // 3)]
    rivers = [_name(rng, used) for _ in range(8)]
    regions = [_name(rng, used, 3) for _ in range(6)]
    towns = [_name(rng, used) for _ in range(n_originals)]
    texts: list[str] = []
    facts: list[Fact] = []
    for i in range(n_originals):
        kind = i % 3
        person, other = rng.sample(people, 2)
        river, region = rng.choice(rivers), rng.choice(regions)
        year = rng.randint(1620, 1890)
        month = rng.choice(MONTHS)
        subject = towns[i]
        if kind == 0:
            crop = rng.choice(CROPS)
            text = (f"{subject} is a small town on the {river} in the {region} region. Its harbour was built in {year} "
                    f"by the engineer {person}. Farmers around {subject} are known for growing {crop}, and the town "
                    f"holds its lantern fair every {month}. {other} once described the fair as the brightest in "
                    f"{region}.")  # fmt: skip
            facts += [Fact(i, f"Who built the harbour of {subject}?", person),
                      Fact(i, f"What do the farmers near {subject} grow?", crop),
                      Fact(i, f"When was the harbour of {subject} finished?", str(year))]  # fmt: skip
        elif kind == 1:
            goods = rng.choice(GOODS)
            text = (f"The {subject} Company was founded in {year} by {person} in a workshop beside the {river}. It "
                    f"makes {goods} that are sold across {region}. Its first apprentice was {other}, who later "
                    f"opened a shop of his own. The company closes for a week every {month}.")  # fmt: skip
            facts += [Fact(i, f"Who started the {subject} Company?", person),
                      Fact(i, f"What does the {subject} Company make?", goods),
                      Fact(i, f"Who was the first apprentice of the {subject} Company?", other)]  # fmt: skip
        else:
            cargo = rng.choice(CROPS + GOODS)
            text = (f"The {subject} was a merchant ship launched on the {river} in {year}. Her captain, {person}, "
                    f"sailed her to {region} with a cargo of {cargo}. She was lost in a storm one {month}, and "
                    f"{other} wrote a song about the wreck.")  # fmt: skip
            facts += [Fact(i, f"Who was the captain of the ship {subject}?", person),
                      Fact(i, f"What cargo did the {subject} carry?", cargo),
                      Fact(i, f"In which year was the ship {subject} launched?", str(year))]  # fmt: skip
        texts.append(text)
    contributors = [rng.randrange(n_contributors) for _ in range(n_originals)]
    for c in range(n_contributors):  # every contributor has at least one original
        contributors[c % n_originals] = c
    copies: dict[int, tuple[int, str]] = {}
    sources = rng.sample(range(n_originals), n_verbatim + n_near)
    for j, src in enumerate(sources):
        kind = "verbatim" if j < n_verbatim else "near"
        text = texts[src] + "\n"  # the registry refuses the same bytes twice: a copier adds a newline
        if kind == "near":
            text = text.replace(" small ", " quiet ").replace(" sold ", " traded ").replace(" lost ", " sunk ")
            text = f"{text.strip()} {rng.choice(ADDED)}"
        copier = rng.choice([c for c in range(n_contributors) if c != contributors[src]])
        copies[len(texts)] = (src, kind)
        texts.append(text)
        contributors.append(copier)
    return Corpus(texts, contributors, facts, copies)
