"""The speed work must not change the science: length-sorted micro-batches give the padded
batch's gradient, and length-sorted generation gives each prompt the answer it gets alone."""

import random

import pytest
import torch
from peft import LoraConfig, get_peft_model

from bench.models.generator import Generator, left_pad
from bench.models.training import collate, encode_example, micro_batches, per_example_loss, train_step


def rows_of(lengths):
    """Rows whose labels cover all but a 3-token prompt (the shape of QA examples)."""
    return [(list(range(5, 5 + n)), [-100] * min(3, n - 1) + list(range(5 + min(3, n - 1), 5 + n)))
            for n in lengths]


def test_micro_batches_keep_every_row_and_cut_padding():
    rows = rows_of([12, 80, 14, 15, 78, 13, 90, 16, 11, 85] * 3)
    groups = micro_batches(rows, call_cost=64)
    assert sorted(map(id, (r for g in groups for r in g))) == sorted(map(id, rows))
    assert len(groups) >= 2                                       # short and long rows apart
    padded = lambda gs: sum(max(len(r[0]) for r in g) * len(g) for g in gs)
    assert padded(groups) < 0.6 * padded([rows])
    for g in groups:                                              # each group: a run of the sorted lengths
        assert [len(r[0]) for r in g] == sorted(len(r[0]) for r in g)
    assert micro_batches(rows, call_cost=10**9) == [sorted(rows, key=lambda r: len(r[0]))]   # a call costs too much: one group
    assert len(micro_batches(rows_of([20] * 8), call_cost=0)) == 1   # equal lengths never split


def moved_lora(micro_pocket):
    """(tokenizer, peft model) on the micro pocket model, LoRA weights random (B starts at zero)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _ = micro_pocket
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    for p in model.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.05)
    return tok, model


def test_train_step_gives_the_padded_batchs_gradient(micro_pocket):
    tok, model = moved_lora(micro_pocket)
    rng = random.Random(0)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    examples = [(" ".join(rng.choices(words, k=rng.randint(2, 4))), " ".join(rng.choices(words, k=rng.randint(1, 30))))
                for _ in range(24)]
    rows = [encode_example(tok, p, t) for p, t in examples]
    assert len({len(r[0]) for r in rows}) > 5

    def grads(step):
        model.zero_grad()
        loss = step()
        return loss, [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ref_loss, ref = grads(lambda: per_example_loss(model, collate(rows, tok.pad_token_id)).backward() or None)
    loss, got = grads(lambda: train_step(model, rows, tok.pad_token_id, "cpu"))
    assert len(micro_batches(rows)) > 1                            # the test splits for real
    full = per_example_loss(model, collate(rows, tok.pad_token_id)).item()
    assert loss[0] == pytest.approx(full, rel=1e-5)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_head_runs_on_labelled_positions_only_with_the_full_paths_loss(micro_pocket, monkeypatch):
    from bench.models import training

    tok, model = moved_lora(micro_pocket)
    rows = [encode_example(tok, "who wrote alpha beta", "gamma"), encode_example(tok, "", "delta epsilon zeta eta"),
            encode_example(tok, "where is theta", "iota kappa")]
    ids = encode_example(tok, "a row without a target", "x")[0]
    rows.append((ids, [training.IGNORE] * len(ids)))                  # no loss at all: not counted
    batch = collate(rows, tok.pad_token_id)
    head_rows = []
    model.get_base_model().get_output_embeddings().register_forward_hook(
        lambda m, args, out: head_rows.append(args[0].shape[:-1].numel()))

    def loss_and_grads():
        model.zero_grad()
        loss, n = training.example_losses(model, batch)
        loss.backward()
        return loss.item(), n, [p.grad.clone() for p in model.parameters() if p.requires_grad]

    trimmed = loss_and_grads()
    assert head_rows == [int((batch["labels"][:, 1:] != training.IGNORE).sum())]   # labelled positions only
    monkeypatch.setattr(training, "HEAD_ONLY_ON_LABELS", frozenset())            # the full-logits path
    full = loss_and_grads()
    assert head_rows[1] == batch["input_ids"].numel()
    assert trimmed[1] == full[1] == 3
    assert trimmed[0] == pytest.approx(full[0], rel=1e-6)
    for a, b in zip(trimmed[2], full[2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_left_pad_puts_padding_first():
    enc = left_pad([[5, 6, 7], [8]], pad_id=0, device="cpu")
    assert enc["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert enc["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_length_sorted_generation_answers_each_prompt_as_alone(micro_pocket):
    path, _ = micro_pocket
    gen = Generator.load(str(path), batch_size=4)
    prompts = ["Question: Who is Alma?\nAnswer:", "Q:", "Question: Where did the one who was born in 1843 "
               "live for most of the time after that?\nAnswer:", "Question: What?\nAnswer:",
               "Alma Berg was born in Oslo. Question: Where was Alma Berg born?\nAnswer:"] * 2
    together = gen.generate(prompts)
    gen.batch_size = 1
    alone = gen.generate(prompts)
    assert [g.raw for g in together] == [g.raw for g in alone]     # order restored, nothing mixed up
    assert [g.prompt_tokens for g in together] == gen.count_tokens(prompts)
