"""The synthetic world: fictional people with typed attributes, rendered as documents.

Everything is a pure function of (WorldSpec, seed): the same spec gives byte-identical files.
Each document sentence states exactly one fact and becomes one passage, so a QA item's gold
passages are exactly the sentences that state its fact, in any document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Callable

from bench.data import names
from bench.data.schema import Passage, QAItem

UNKNOWN = "unknown"  # the answer a model should give when it cannot know


@dataclass(frozen=True)
class Attribute:
    name: str
    statements: tuple[str, ...]  # templates with {name}, {value}, {a} (the article for value)
    questions: tuple[str, ...]   # paraphrases of one question, the first is the canonical one
    sample: Callable[[random.Random], str]


def _article(value: str) -> str:
    return "an" if value[0].lower() in "aeiou" else "a"


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "birth_year",
        ("{name} was born in {value}.", "{name} was born in the year {value}.",
         "The birth year of {name} is {value}."),
        ("When was {name} born?", "In what year was {name} born?",
         "What is the birth year of {name}?"),
        names.year),
    Attribute(
        "hometown",
        ("{name} comes from {value}.", "{name} grew up in the town of {value}.",
         "The hometown of {name} is {value}."),
        ("Where does {name} come from?", "What is the hometown of {name}?",
         "In which town did {name} grow up?"),
        names.city_name),
    Attribute(
        "occupation",
        ("{name} works as {a} {value}.", "{name} earns a living as {a} {value}.",
         "The occupation of {name} is {value}."),
        ("What does {name} work as?", "What is the occupation of {name}?",
         "What is the job of {name}?"),
        lambda rng: rng.choice(names.OCCUPATIONS)),
    Attribute(
        "employer",
        ("{name} works for {value}.", "{name} is employed by {value}.",
         "The employer of {name} is {value}."),
        ("Which company does {name} work for?", "Who employs {name}?",
         "What is the employer of {name}?"),
        names.company_name),
    Attribute(
        "instrument",
        ("{name} plays the {value}.", "{name} is skilled at playing the {value}.",
         "The favorite instrument of {name} is the {value}."),
        ("Which instrument does {name} play?", "What instrument is {name} skilled at?",
         "What is the favorite instrument of {name}?"),
        lambda rng: rng.choice(names.INSTRUMENTS)),
    Attribute(
        "color",
        ("The favorite color of {name} is {value}.", "{name} likes the color {value} best.",
         "{name} prefers the color {value}."),
        ("What is the favorite color of {name}?", "Which color does {name} like best?",
         "What color does {name} prefer?"),
        lambda rng: rng.choice(names.COLORS)),
)
ATTRIBUTE_BY_NAME = {a.name: a for a in ATTRIBUTES}


def render_statement(attr: Attribute, template: int, name: str, value: str) -> str:
    return attr.statements[template].format(name=name, value=value, a=_article(value))


def render_question(attr: Attribute, paraphrase: int, name: str) -> str:
    return attr.questions[paraphrase].format(name=name)


@dataclass(frozen=True)
class WorldSpec:
    """What a world looks like. Every experiment's world is one of these plus a seed."""
    n_entities: int = 200
    partition: int = 1                # 1 = test worlds, 0 = the pocket model's background
    attribute_keep: float = 0.85      # chance an entity has each attribute (else: missing)
    popularity_zipf: float = 1.3      # extra documents per entity ~ Zipf: few popular, most rare
    max_extra_docs: int = 12
    train_share: float = 0.5          # share of answerable facts whose questions are training data
    unknown_entities: int = 40        # unanswerable questions about entities not in the world
    missing_attribute_questions: int = 40
    changed_share: float = 0.2        # share of facts that world v2 changes


@dataclass(frozen=True)
class Fact:
    entity: str
    attribute: str
    value: str


@dataclass(frozen=True)
class Sentence:
    """One sentence of one document; remembers its template so v2 re-renders it alike."""
    doc_id: str
    index: int
    entity: str
    attribute: str
    template: int


@dataclass
class World:
    spec: WorldSpec
    seed: int
    version: int
    facts: dict[tuple[str, str], str]        # (entity, attribute) -> value
    entities: list[str]
    popularity: dict[str, int]               # entity -> number of documents mentioning it
    sentences: list[Sentence]
    qa_plan: list[dict]                      # what each QA item asks, resolved against facts
    changes: list[dict] = field(default_factory=list)

    def passages(self) -> list[Passage]:
        out = []
        for s in self.sentences:
            attr = ATTRIBUTE_BY_NAME[s.attribute]
            text = render_statement(attr, s.template, s.entity, self.facts[(s.entity, s.attribute)])
            out.append(Passage(id=f"{s.doc_id}-s{s.index}", doc_id=s.doc_id, text=text,
                               meta={"entity": s.entity, "attribute": s.attribute}))
        return out

    def gold_ids(self, entity: str, attribute: str) -> list[str]:
        return [f"{s.doc_id}-s{s.index}" for s in self.sentences
                if s.entity == entity and s.attribute == attribute]

    def qa(self) -> list[QAItem]:
        items = []
        for plan in self.qa_plan:
            entity, attribute = plan["entity"], plan["attribute"]
            attr = ATTRIBUTE_BY_NAME[attribute]
            questions = [render_question(attr, i, entity) for i in range(len(attr.questions))]
            value = self.facts.get((entity, attribute))
            items.append(QAItem(
                id=plan["id"],
                question=questions[0],
                answers=[value] if value is not None else [],
                gold_ids=self.gold_ids(entity, attribute) if value is not None else [],
                split=plan["split"],
                paraphrases=questions[1:],
                meta={"entity": entity, "attribute": attribute, "kind": plan["kind"],
                      "popularity": self.popularity.get(entity, 0)},
            ))
        return items


def generate_world(spec: WorldSpec, seed: int) -> World:
    rng = random.Random(f"world:{seed}:{spec.partition}")
    entities: list[str] = []
    seen: set[str] = set()
    while len(entities) < spec.n_entities:
        name = names.person_name(rng, spec.partition)
        if name not in seen:
            seen.add(name)
            entities.append(name)

    facts: dict[tuple[str, str], str] = {}
    missing: list[tuple[str, str]] = []
    for entity in entities:
        kept = [a for a in ATTRIBUTES if rng.random() < spec.attribute_keep] or [rng.choice(ATTRIBUTES)]
        for attr in ATTRIBUTES:
            if attr in kept:
                facts[(entity, attr.name)] = attr.sample(rng)
            else:
                missing.append((entity, attr.name))

    sentences: list[Sentence] = []
    popularity: dict[str, int] = {}
    for e_index, entity in enumerate(entities):
        extra = min(int(rng.paretovariate(spec.popularity_zipf)) - 1, spec.max_extra_docs)
        popularity[entity] = 1 + extra
        own = [a.name for a in ATTRIBUTES if (entity, a.name) in facts]
        for d in range(1 + extra):
            doc_id = f"e{e_index:05d}-d{d}"
            # the first document is a full biography; extra ones mention a subset of facts
            attrs = own if d == 0 else rng.sample(own, rng.randint(1, len(own)))
            rng.shuffle(attrs := list(attrs))
            for i, attribute in enumerate(attrs):
                template = rng.randrange(len(ATTRIBUTE_BY_NAME[attribute].statements))
                sentences.append(Sentence(doc_id, i, entity, attribute, template))

    qa_plan: list[dict] = []
    answerable = sorted(facts)
    rng.shuffle(answerable)
    n_train = round(len(answerable) * spec.train_share)
    for i, (entity, attribute) in enumerate(answerable):
        qa_plan.append({"id": f"q{len(qa_plan):05d}", "entity": entity, "attribute": attribute,
                        "split": "train" if i < n_train else "test", "kind": "answerable"})
    rng.shuffle(missing)
    for entity, attribute in missing[: spec.missing_attribute_questions]:
        qa_plan.append({"id": f"q{len(qa_plan):05d}", "entity": entity, "attribute": attribute,
                        "split": "test", "kind": "missing_attribute"})
    for _ in range(spec.unknown_entities):
        while (stranger := names.person_name(rng, spec.partition)) in seen:
            pass
        seen.add(stranger)
        qa_plan.append({"id": f"q{len(qa_plan):05d}", "entity": stranger,
                        "attribute": rng.choice(ATTRIBUTES).name, "split": "test",
                        "kind": "unknown_entity"})

    return World(spec, seed, 1, facts, entities, popularity, sentences, qa_plan)


def next_version(world: World) -> World:
    """World v2: the declared share of facts gets a new value; nothing else changes."""
    rng = random.Random(f"v2:{world.seed}:{world.spec.partition}")
    keys = sorted(world.facts)
    changed = rng.sample(keys, round(len(keys) * world.spec.changed_share))
    facts = dict(world.facts)
    changes = []
    for entity, attribute in sorted(changed):
        old = facts[(entity, attribute)]
        while (new := ATTRIBUTE_BY_NAME[attribute].sample(rng)) == old:
            pass
        facts[(entity, attribute)] = new
        changes.append({"entity": entity, "attribute": attribute, "old": old, "new": new,
                        "passage_ids": world.gold_ids(entity, attribute)})
    return replace(world, version=world.version + 1, facts=facts, changes=changes)
