import json
from collections import Counter

from bench.data import names
from bench.data.world import UNKNOWN, WorldSpec, generate_world, next_version

SPEC = WorldSpec(n_entities=60, unknown_entities=10, missing_attribute_questions=10)


def dump(world):
    return json.dumps([p.to_json() for p in world.passages()] + [q.to_json() for q in world.qa()])


def test_same_seed_same_world_other_seed_other_world():
    assert dump(generate_world(SPEC, 3)) == dump(generate_world(SPEC, 3))
    assert dump(generate_world(SPEC, 3)) != dump(generate_world(SPEC, 4))


def test_every_gold_passage_states_its_answer():
    world = generate_world(SPEC, 0)
    text = {p.id: p.text for p in world.passages()}
    answerable = [q for q in world.qa() if q.answerable]
    assert answerable
    for q in answerable:
        assert q.gold_ids, q
        for gid in q.gold_ids:
            assert q.answers[0] in text[gid] and q.meta["entity"] in text[gid]
    # and no other passage states that person's attribute
    for q in answerable:
        others = [p for p in world.passages() if p.id not in q.gold_ids
                  and p.meta["entity"] == q.meta["entity"] and p.meta["attribute"] == q.meta["attribute"]]
        assert not others


def test_unanswerable_items_have_no_answer_and_no_gold():
    qa = generate_world(SPEC, 0).qa()
    kinds = Counter(q.meta["kind"] for q in qa)
    assert kinds["unknown_entity"] == 10 and kinds["missing_attribute"] == 10
    entities = set(generate_world(SPEC, 0).entities)
    for q in qa:
        if q.meta["kind"] != "answerable":
            assert q.answers == [] and q.gold_ids == [] and q.split == "test"
        if q.meta["kind"] == "unknown_entity":
            assert q.meta["entity"] not in entities
    assert UNKNOWN == "unknown"


def test_splits_paraphrases_and_popularity_skew():
    world = generate_world(WorldSpec(n_entities=300), 0)
    qa = [q for q in world.qa() if q.answerable]
    splits = Counter(q.split for q in qa)
    assert abs(splits["train"] - splits["test"]) <= 1
    assert all(len(q.paraphrases) >= 2 and q.question not in q.paraphrases for q in qa)
    pops = sorted(world.popularity.values())
    assert pops[len(pops) // 2] == 1 and pops[-1] >= 5   # most rare, a few popular


def test_v2_changes_exactly_the_declared_facts():
    v1 = generate_world(SPEC, 0)
    v2 = next_version(v1)
    assert v2.version == 2 and len(v2.changes) == round(len(v1.facts) * SPEC.changed_share)
    changed_ids = {pid for c in v2.changes for pid in c["passage_ids"]}
    before = {p.id: p.text for p in v1.passages()}
    after = {p.id: p.text for p in v2.passages()}
    assert before.keys() == after.keys()
    assert {pid for pid in before if before[pid] != after[pid]} == changed_ids
    for c in v2.changes:
        assert c["old"] != c["new"]
        for pid in c["passage_ids"]:
            assert c["old"] in before[pid] and c["new"] in after[pid]
    changed = {(c["entity"], c["attribute"]): c["new"] for c in v2.changes}
    for q1, q2 in zip(v1.qa(), v2.qa()):
        key = (q1.meta["entity"], q1.meta["attribute"])
        assert q2.answers == ([changed[key]] if key in changed else q1.answers)


def test_background_and_test_worlds_never_share_a_name():
    test_world = generate_world(SPEC, 0)
    background = generate_world(WorldSpec(n_entities=60, partition=0), 0)
    assert not set(test_world.entities) & set(background.entities)
    assert {names.partition_of(e) for e in test_world.entities} == {1}
    assert {names.partition_of(e) for e in background.entities} == {0}
