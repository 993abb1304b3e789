"""The "quote" answer style: training targets that quote the gold passage, and a generator that
scores only the value after the quote. HF models (no style file) keep the plain style."""
import random

import pytest

from bench.arms.adapter import TrainingData, training_examples
from bench.config import DataConfig, WorldData
from bench.data.dataset import build_dataset
from bench.models.generator import (ANSWER_STYLE_FILE, QUOTE_EXTRA_TOKENS, Generator,
                                    load_answer_style, save_answer_style)
from bench.pocket import data
from bench.pocket.recipe import PocketRecipe
from bench.prompts import quoted_completion, read_answer
from test_models import save_tiny


def test_read_answer_takes_what_follows_the_last_prefix():
    assert read_answer("Mirel Nukavu is employed by Total Textiles. Answer: Total Textiles") == "Total Textiles"
    assert read_answer("a Answer: b Answer: c ") == "c"
    assert read_answer(" unknown ") == "unknown"          # closed-book and abstention: as written


def test_quoted_completion_picks_the_sentence_with_the_answer_from_the_name_on():
    passage = "Tavo Selin was born in 1843. The favorite color of Tavo Selin is teal."
    assert quoted_completion(passage, "teal", "Tavo Selin") == " Tavo Selin is teal. Answer: teal"
    assert quoted_completion(passage, "1843") == " Tavo Selin was born in 1843. Answer: 1843"
    # no sentence holds the answer: the whole passage is quoted
    assert quoted_completion("Nothing here.", "x", "Nobody") == " Nothing here. Answer: x"


def test_quote_examples_are_the_value_examples_with_a_quote_before_the_value():
    a, b = random.Random(7), random.Random(7)
    quoted = 0
    for _ in range(300):
        p0, t0 = data.reading_example(a, max_k=3)
        p1, t1 = data.reading_example(b, max_k=3, answer_style="quote")
        assert p0 == p1                                   # same rng stream, same prompt
        if t0 == " unknown":
            assert t1 == t0                               # abstention is never quoted
            continue
        quoted += 1
        name = p1.split("Question: ")[1]
        quote, value = t1.strip().rsplit(" Answer: ", 1)
        assert value == t0.strip() and quote.split()[0] in name
        assert any(line.endswith(quote) for line in p1.split("Question:")[0].splitlines())
    assert quoted > 200


def test_recipe_style_is_checked_and_old_recipes_keep_their_hash():
    with pytest.raises(ValueError, match="answer_style"):
        PocketRecipe(answer_style="chatty")
    value = PocketRecipe(answer_style="value")
    assert "answer_style" not in value.to_json()
    assert PocketRecipe().to_json()["answer_style"] == "quote"
    assert value.hash() != PocketRecipe().hash()


def test_a_style_file_makes_the_generator_read_past_the_quote(tmp_path):
    path = save_tiny(tmp_path / "m")
    assert Generator.load(str(path)).answer_style == "value"        # an HF folder: no file
    save_answer_style(path, "quote")
    gen = Generator.load(str(path), max_new_tokens=3, batch_size=2)
    assert gen.answer_style == "quote"
    out = gen.generate(["Question: When was Tavo Selin born?\nAnswer:", "Tavo"])
    assert all(o.text == read_answer(o.raw) for o in out)
    assert all(o.completion_tokens <= 3 + QUOTE_EXTRA_TOKENS for o in out)
    assert max(o.completion_tokens for o in out) > 3    # a random tiny model rarely stops early


def test_a_bad_style_file_names_itself(tmp_path):
    (tmp_path / ANSWER_STYLE_FILE).write_text('{"answer_style": "poem"}')
    with pytest.raises(ValueError, match=ANSWER_STYLE_FILE):
        load_answer_style(tmp_path)
    (tmp_path / ANSWER_STYLE_FILE).write_text("not json")
    with pytest.raises(ValueError, match=ANSWER_STYLE_FILE):
        load_answer_style(tmp_path)
    with pytest.raises(ValueError, match="unknown answer style"):
        save_answer_style(tmp_path, "poem")


def test_adapter_reading_replay_quotes_for_a_quote_style_model():
    ds = build_dataset(DataConfig(world=WorldData(entities=12)), 0)
    ex0, replay0 = training_examples(TrainingData(), ds, 0)
    ex1, replay1 = training_examples(TrainingData(), ds, 0, "quote")
    assert ex0 == ex1 and len(replay0) == len(replay1) > 0
    quoted = 0
    for (p0, t0), (p1, t1) in zip(replay0, replay1):
        assert p0 == p1
        if t0 == " unknown":
            assert t1 == t0
            continue
        quoted += 1
        assert t1.endswith(f" Answer: {t0.strip()}") and read_answer(t1) == t0.strip()
        assert t1.strip().rsplit(" Answer: ", 1)[0] in p1
    assert quoted > 0
