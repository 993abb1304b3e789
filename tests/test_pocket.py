import dataclasses
import json
import random

from bench.data.world import WorldSpec, generate_world
from bench.models.generator import Generator
from bench.models.lora import LoraSettings, train_lora
from bench.pocket import data
from bench.pocket.probes import ProbeSettings, lora_examples, reading_items, run_probes
from bench.pocket.recipe import RECIPE_FILE, checkpoint_is_current, micro_recipe
from bench.models.training import encode_example


def test_micro_build_saves_a_loadable_checkpoint(micro_pocket):
    path, summary = micro_pocket
    saved = json.loads((path / RECIPE_FILE).read_text())
    assert saved["hash"] == micro_recipe().hash() == summary["hash"]
    assert checkpoint_is_current(micro_recipe(), path)
    assert not checkpoint_is_current(dataclasses.replace(micro_recipe(), steps=31), path)
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    assert [row["step"] for row in summary["log"]] == [15, 30, 40]   # stage 2 counts on from 30
    gen = Generator.load(str(path), max_new_tokens=4)
    assert gen.answer_style == micro_recipe().answer_style == "quote"   # saved with the weights
    assert len(gen.generate(["Question: When was Tavo Selin born?\nAnswer:"])) == 1
    assert not path.with_name(path.name + ".partial").exists()


def test_second_stage_restarts_from_the_kept_first_stage(micro_pocket, tmp_path):
    from safetensors.torch import load_file

    from bench.pocket.train import build_pocket

    path, summary = micro_pocket
    first = path.with_name(path.name + ".stage1")
    assert summary["stage1_hash"] == micro_recipe().first_stage().hash() != summary["hash"]
    assert checkpoint_is_current(micro_recipe().first_stage(), first)
    before, after = load_file(first / "model.safetensors"), load_file(path / "model.safetensors")
    assert any(not (before[k] == after[k]).all() for k in before)   # stage 2 trained on
    # stage 2 keeps the first stage's tokenizer byte for byte, however it was reloaded
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (first / name).read_bytes() == (path / name).read_bytes(), name
    # a rebuild reuses the first stage: same stage-1 log and seconds, only stage 2 runs again
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = build_pocket(micro_recipe(), path, progress=False)
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert again["stage_seconds"][0] == summary["stage_seconds"][0]
    assert again["log"][:2] == summary["log"][:2]


def test_one_stage_recipes_keep_their_hash():
    one = dataclasses.replace(micro_recipe(), stage2_steps=0)
    assert "stage2_lr" not in one.to_json() and "stage2_lr" in micro_recipe().to_json()
    # the knobs of an absent stage do not matter; those of a present one do
    assert one.hash() == dataclasses.replace(one, stage2_lr=0.1).hash()
    assert micro_recipe().hash() != dataclasses.replace(micro_recipe(), stage2_lr=0.1).hash()


def test_recipe_hash_follows_the_training_data():
    a = micro_recipe()
    assert a.hash() == micro_recipe().hash()
    assert a.hash() != dataclasses.replace(a, background_entities=21).hash()
    assert a.hash() != dataclasses.replace(a, lr=0.5).hash()


def test_reading_examples_need_the_passages():
    rng = random.Random(0)
    for _ in range(50):
        prompt, target = data.reading_example(rng, max_k=3, abstain_share=0.0)
        assert target.strip() in prompt.split("Question:")[0]
    abstain = [data.reading_example(rng, abstain_share=1.0) for _ in range(20)]
    assert {t for _, t in abstain} == {" unknown"}


def test_reverse_questions_name_the_one_person_with_that_value():
    rng = random.Random(0)
    for _ in range(50):
        prompt, target = data.reverse_example(rng, max_k=3)
        context, question = prompt.split("Question:")
        value = question.split(" is ", 1)[1].rsplit("?", 1)[0]
        lines = [line for line in context.splitlines() if value in line]
        assert len(lines) == 1 and target.strip() in lines[0]


def test_committed_checkpoint_matches_the_shipped_recipe():
    # a change to the pocket model's training data (a template, a new example kind in the
    # fingerprint) must not silently mark the committed checkpoint stale
    assert checkpoint_is_current()


def test_answer_only_loss():
    from bench.pocket.tokenizer import train_tokenizer

    tok = train_tokenizer(["Question: a?\nAnswer: b", "hello world"] * 10, 280)
    ids, labels = encode_example(tok, "Question: a?\nAnswer:", " b")
    masked = sum(l == -100 for l in labels)
    assert masked == len(tok("Question: a?\nAnswer:", add_special_tokens=False)["input_ids"])
    assert labels[-1] == tok.eos_token_id and ids[masked:] == labels[masked:]
    ids, labels = encode_example(tok, "", "hello world")
    assert ids == labels


def test_probe_items_put_the_gold_passage_among_same_attribute_distractors():
    world = generate_world(WorldSpec(n_entities=30), 5)
    items = reading_items(world, 3, 20, random.Random(0))
    for prompt, answers in items:
        context = prompt.split("Question:")[0]
        assert context.count("\n[") == 3 and answers[0] in context
    for prompt, answers in reading_items(world, 2, 20, random.Random(0), absent=True):
        assert answers == ["unknown"]


def test_probes_and_lora_run_on_the_micro_model(micro_pocket):
    path, _ = micro_pocket
    gen = Generator.load(str(path), max_new_tokens=4)
    before = {n: p.clone() for n, p in gen.model.named_parameters()}
    settings = ProbeSettings(n_items=6, world_entities=12, lora=LoraSettings(steps=2, batch_size=4, rank=2))
    rows = run_probes(gen, data.background_world(micro_recipe()), settings, progress=False)
    metrics = {(p, m): v for p, m, v, n in rows}
    for key in [("reading", "em_k1to3"), ("recall", "em_trained_questions"),
                ("abstention", "unknown_rate_answer_absent"),
                ("after_lora", "closed_book_em_new_facts_after"), ("after_lora", "reading_em_k1to3"),
                ("after_lora", "closed_book_em_trained_new_questions")]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics[("after_lora", "lora_trainable_parameters")] > 0
    # the adapter is removed afterwards: the base weights are untouched
    after = dict(gen.model.named_parameters())
    assert before.keys() == after.keys()
    assert all(bool((before[n] == after[n]).all()) for n in before)


def test_lora_trains_only_a_small_share_and_changes_outputs(micro_pocket):
    path, _ = micro_pocket
    gen = Generator.load(str(path), max_new_tokens=4)
    world = generate_world(WorldSpec(n_entities=5), 0)
    prompt = "Question: When was Tavo Selin born?\nAnswer:"
    import torch

    enc = gen.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        base_logits = gen.model(**enc).logits.clone()
    peft_model, stats = train_lora(gen.model, gen.tokenizer, lora_examples(world),
                                   LoraSettings(steps=3, batch_size=4, rank=4, lr=1e-2), progress=False)
    assert 0 < stats["trainable_parameters"] < 0.5 * stats["total_parameters"]
    assert stats["train_tokens"] > 0
    with torch.no_grad():
        tuned = peft_model(**enc).logits
    assert not torch.allclose(base_logits, tuned)


def test_lora_examples_rerender_biographies_and_keep_test_questions_out():
    world = generate_world(WorldSpec(n_entities=6), 3)
    examples = lora_examples(world, renderings=4)
    bios = [text for prompt, text in examples if not prompt]
    assert len(bios) == 4 * len(world.entities)
    for i, entity in enumerate(world.entities):   # person by person, `renderings` each
        facts = [v for (e, _), v in world.facts.items() if e == entity]
        for bio in bios[4 * i:4 * (i + 1)]:
            assert entity in bio and all(v in bio for v in facts)
        assert len(set(bios[4 * i:4 * (i + 1)])) > 1   # varied wording or order
    prompts = {p for p, _ in examples if p}
    assert prompts
    for q in world.qa():
        if q.split == "test":
            assert all(question not in p for p in prompts for question in [q.question, *q.paraphrases])


def test_rehearsal_mixes_reading_with_background_facts():
    background = data.background_world(micro_recipe())
    trained, held = data.background_qa_facts(background)
    rng = random.Random(0)
    examples = [data.rehearsal_example(rng, background, trained, 3, "quote") for _ in range(400)]
    reading = [e for e in examples if e[0].startswith("Context:")]
    bios = [e for e in examples if not e[0]]
    closed = [e for e in examples if e[0] and e not in reading]
    assert 150 < len(reading) < 250 and 60 < len(bios) < 140 and 60 < len(closed) < 140
    held_values = {background.facts[f] for f in held} - {background.facts[f] for f in trained}
    assert not any(t.strip() in held_values for _, t in closed)   # never a held-out fact
