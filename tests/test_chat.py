"""Instruct models: prompts through the chat template, answers read robustly, training
examples wrapped exactly as the arm asks, and the containment metric."""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bench.models.chat import (CLOSED_BOOK_DEMOS, CONTEXT_DEMOS, SYSTEM, chat_identity,
                               read_chat_answer, template_in_folder)
from bench.metrics.scores import contains, exact_match

ROOT = Path(__file__).resolve().parents[1]
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def chat_model(micro_pocket, tmp_path_factory):
    """The micro pocket model with a ChatML template: a tiny instruct model."""
    src, _ = micro_pocket
    folder = tmp_path_factory.mktemp("chat") / "micro-chat"
    shutil.copytree(src, folder)
    (folder / "chat_template.jinja").write_text(CHATML)
    return folder


@pytest.mark.parametrize("reply, answer", [
    ("Paris", "Paris"),
    ("Paris.", "Paris"),
    ("The answer is: Paris", "Paris"),
    ("The answer to the question is Paris.", "Paris"),
    ("Answer: 1874\nQuestion: more", "1874"),
    ("A: teal", "teal"),
    ('"Coldridge Works"', "Coldridge Works"),
    ("Sure! The answer is Kesh.", "Kesh"),
    ("Buban Taze is a painter.", "Buban Taze is a painter"),    # a sentence stays a sentence
    ("Washington, D.C.", "Washington, D.C"),
    ("", ""),
])
def test_chat_replies_are_read_to_the_answer(reply, answer):
    assert read_chat_answer(reply) == answer


def test_containment_counts_whole_words_of_a_gold_answer():
    assert contains("Buban Taze is a painter.", ["painter"]) == 1.0
    assert exact_match("Buban Taze is a painter.", ["painter"]) == 0.0
    assert contains("reddish", ["red"]) == 0.0              # not a word of the prediction
    assert contains("The Coldridge Works", ["coldridge works"]) == 1.0
    assert contains("I don't know", []) == 0.0 and contains("unknown", []) == 1.0
    assert contains("", ["a"]) == 0.0                        # a gold that normalises to nothing


def test_a_template_model_answers_through_its_chat_turns(chat_model, micro_pocket):
    from bench.models.generator import Generator

    gen = Generator.load(str(chat_model), max_new_tokens=3, batch_size=2)
    assert gen.chat is not None and template_in_folder(chat_model)
    text = gen.wrap("Question: Who?\nAnswer:", with_context=False)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    assert text.endswith("<|im_start|>user\nQuestion: Who?\nAnswer:<|im_end|>\n<|im_start|>assistant\n")
    assert text.count("<|im_start|>assistant") == len(CLOSED_BOOK_DEMOS) + 1
    assert CLOSED_BOOK_DEMOS[0][0] in text and CONTEXT_DEMOS[0][1] not in text
    assert CONTEXT_DEMOS[0][1] in gen.wrap("Context:\n[1] x\nQuestion: Who?\nAnswer:", True)
    assert Generator.load(str(chat_model), demos=0).wrap("Q", False).count("<|im_start|>") == 3
    outs = gen.generate([gen.wrap("Question: Who?\nAnswer:", False)])
    assert outs[0].prompt_tokens > 50                       # the turns were read, not the bare question
    off = Generator.load(str(chat_model), chat="off")
    assert off.chat is None and off.wrap("Q", False) == "Q"
    plain, _ = micro_pocket
    assert Generator.load(str(plain)).chat is None           # no template: plain text, as before
    with pytest.raises(ValueError, match="no chat template"):
        Generator.load(str(plain), chat="on")


def _arm(kind, generator, dataset):
    from bench.arms.base import ArmEnv
    from bench.arms.registry import get_arm_class
    from bench.config import parse_experiment

    cfg = parse_experiment({"name": "x", "arms": [{"arm": kind}]}, "x.yaml")
    arm = get_arm_class(kind)(cfg.arms[0].settings, ArmEnv(cfg.model, dataset, 0, Path(".")))
    arm.generator = generator
    return arm


def test_lora_trains_on_exactly_the_turns_the_arm_asks(chat_model):
    from bench.arms.adapter import TrainingData, training_examples
    from bench.config import DataConfig, WorldData
    from bench.data.dataset import build_dataset
    from bench.models.generator import Generator
    from bench.prompts import context_prompt

    gen = Generator.load(str(chat_model))
    ds = build_dataset(DataConfig(world=WorldData(entities=12)), 0)
    examples, replay = training_examples(TrainingData(), ds, 0, chat=gen.chat)
    plain, plain_replay = training_examples(TrainingData(), ds, 0)
    closed, rag = _arm("closed_book", gen, ds), _arm("rag", gen, ds)
    qa = [(p, t) for p, t in examples if p]
    docs = [(p, t) for p, t in examples if not p]
    assert docs == [(p, t) for p, t in plain if not p]       # documents stay plain text
    train = ds.split("train")[0]
    assert (closed.prompt(train.question, None), train.answers[0]) in qa   # target: no leading space
    # a replay example is the rag arm's prompt for its passages
    prompt, target = replay[0]
    question = re.search(r"Question: (.*)\nAnswer:<\|im_end\|>\n<\|im_start\|>assistant\n$", prompt).group(1)
    passages = re.findall(r"^\[\d\] (.*)$", prompt.split("<|im_start|>user\n")[-1], flags=re.M)
    assert prompt == rag.prompt(question, passages)
    assert plain_replay[0] == (context_prompt(question, passages), " " + target)
    assert len(qa) == len([p for p, _ in plain if p]) and len(replay) == len(plain_replay)


def test_saved_answers_of_a_chat_model_are_keyed_by_the_chat_format(chat_model, micro_pocket, monkeypatch):
    from bench.config import ModelConfig
    from bench.models import chat

    plain, _ = micro_pocket
    on = ModelConfig(name=str(chat_model))
    assert chat_identity(on) == chat.format_id()
    assert chat_identity(replace(on, chat="off")) is None
    assert chat_identity(ModelConfig(name=str(plain))) is None        # pocket keys unchanged
    before = chat.format_id()
    monkeypatch.setattr(chat, "SYSTEM", "Answer in French.")
    assert chat.format_id() != before                          # a new system message: answers redone


def test_a_chat_model_runs_every_arm_end_to_end(chat_model, tmp_path):
    from bench.config import parse_experiment
    from bench.runner import run_experiment

    lora = {"rank": 2, "alpha": 4, "steps": 2, "batch_size": 4}
    cfg = parse_experiment({
        "name": "chat", "data": {"world": {"entities": 10}, "max_items": 3},
        # one demonstration: the micro model's 512 positions hold no more
        "model": {"name": str(chat_model), "max_new_tokens": 3, "batch_size": 4, "demos": 1},
        "seeds": [0],
        "arms": [{"arm": "closed_book"}, {"arm": "rag"}, {"arm": "lora", "lora": lora},
                 {"arm": "hybrid", "lora": lora}]}, "chat.yaml")
    table, _ = run_experiment(cfg, tmp_path / "out", tmp_path / "cache", progress=False)
    assert len(table) == 12 and "contains" in table.columns
    assert table["prompt_tokens"].min() > 60                   # every arm asked through the turns
    tokens = table.groupby("arm")["prompt_tokens"].mean()
    # adapted arms are asked without the demonstration (their training taught the format)
    assert tokens["closed_book"] > tokens["lora"] and tokens["rag"] > tokens["hybrid"]


def test_demonstrations_are_no_question_of_a_shipped_dataset():
    from bench.data.world import ATTRIBUTES

    demos = [q for q, _, _ in CONTEXT_DEMOS] + [q for q, _ in CLOSED_BOOK_DEMOS]
    shipped = {json.loads(line)["question"].lower()
               for line in (ROOT / "bench/data/general_knowledge.jsonl").read_text().splitlines()}
    squad = json.loads((ROOT / "tests/data/squad_sample.json").read_text())
    shipped |= {qa["question"].lower() for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"]}
    templates = [re.compile(re.escape(t).replace(re.escape("{name}"), ".+") + "$", re.I)
                 for a in ATTRIBUTES for t in a.questions]
    for q in demos:
        assert q.lower() not in shipped
        assert not any(t.match(q) for t in templates), q


def test_dtype_auto_is_float32_on_cpu_and_bf16_only_where_a_gpu_supports_it(monkeypatch):
    import torch

    from bench.config import ConfigError, parse_experiment
    from bench.models.generator import pick_dtype

    assert pick_dtype("auto", "cpu") is None                  # the model's own float32
    assert pick_dtype("bfloat16", "cpu") is torch.bfloat16    # asked for: given
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert pick_dtype("auto", "cuda") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert pick_dtype("auto", "cuda") is torch.bfloat16
    for key, value, message in (("dtype", "int8", "model.dtype: expected one of"),
                                ("chat", "maybe", "model.chat: expected one of"),
                                ("demos", 9, "model.demos: expected 0 to 4")):
        with pytest.raises(ConfigError, match=message):
            parse_experiment({"name": "x", "model": {key: value}, "arms": [{"arm": "rag"}]}, "x.yaml")
