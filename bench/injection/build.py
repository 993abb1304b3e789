"""A recipe -> its training examples, as (prompt, target) pairs before any chat wrapping.

Three kinds come back, because they are wrapped differently for an instruct model: plain text
(renderings: language modelling, no prompt), closed-book QA (synthetic_qa, distill) and
context QA (raft).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.data.world import UNKNOWN
from bench.prompts import closed_book_prompt, context_prompt, quoted_completion


@dataclass
class RecipeExamples:
    texts: list[tuple[str, str]] = field(default_factory=list)
    closed_book: list[tuple[str, str]] = field(default_factory=list)
    context: list[tuple[str, str]] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def recipe_examples(recipe, dataset, seed: int, writer, target, *, answer_style: str = "value",
                    teacher=None, k: int = 1) -> RecipeExamples:
    """`target(answer)` writes an answer as the arm's training targets do (format, leading
    space); `teacher(prompts) -> answers` answers with the passage (distill); `k` is the
    retrieval depth RAFT contexts match when `raft.passages` is 0."""
    out = RecipeExamples()
    if recipe.renderings:
        out.texts = [("", t) for t in writer.renderings(dataset, recipe.renderings, seed)]
    if recipe.synthetic_qa:
        qs = writer.questions(dataset, recipe.synthetic_qa, seed, "qa")
        out.closed_book += [(closed_book_prompt(s.question), target(s.answer)) for s in qs]
        out.stats["synthetic_questions"] = len(qs)
    if recipe.distill:
        if teacher is None:
            raise ValueError("training.recipe.distill needs the base model as teacher")
        pairs, dropped = distill_examples(writer.questions(dataset, recipe.distill, seed, "distill"),
                                          dataset, teacher, target)
        out.closed_book += pairs
        out.stats.update(distill_questions=len(pairs) + dropped, teacher_abstained=dropped)
    if recipe.raft is not None:
        qs = writer.questions(dataset, recipe.raft.questions, seed, "raft")
        out.context, out.stats["raft_gold_share"] = raft_examples(
            qs, dataset, recipe.raft, k, seed, target, answer_style)
    return out


def distill_examples(questions, dataset, teacher, target) -> tuple[list[tuple[str, str]], int]:
    """Prompt distillation's targets: what the teacher answers with the fact's passage in its
    prompt becomes the student's closed-book target. A teacher that reads the passage and still
    answers nothing or 'unknown' teaches nothing true: those pairs are dropped (and counted)."""
    by_id = {p.id: p.text for p in dataset.passages}
    answers = teacher([context_prompt(s.question, [by_id[s.passage_id]]) for s in questions])
    pairs, dropped = [], 0
    for s, answer in zip(questions, answers):
        if not answer.strip() or answer.strip().lower() == UNKNOWN:
            dropped += 1
            continue
        pairs.append((closed_book_prompt(s.question), target(answer)))
    return pairs, dropped


def raft_examples(questions, dataset, raft, k: int, seed: int, target,
                  answer_style: str) -> tuple[list[tuple[str, str]], float]:
    """RAFT: each question with `passages` passages, the gold one among them with probability
    p_gold, distractors only otherwise; the target is the answer as the model reads (quoting the
    gold passage for a quote-style model), also when the gold passage is absent, so the adapter
    learns the fact as well as reading. Distractors are what a retriever would confuse: other
    passages about the same attribute where passages say (the synthetic world), else any."""
    rng = random.Random(f"raft:{seed}")
    n = raft.passages or k
    passages = dataset.passages
    by_id = {p.id: p for p in passages}
    by_attr: dict[str, list] = {}
    for p in passages:
        by_attr.setdefault((p.meta or {}).get("attribute", ""), []).append(p)
    out, gold_count = [], 0
    for s in questions:
        gold = by_id[s.passage_id]
        pool = [p for p in by_attr.get((gold.meta or {}).get("attribute", ""), passages)
                if p.id != gold.id and s.answer.lower() not in p.text.lower()]
        if len(pool) < n:
            pool = [p for p in passages if p.id != gold.id and s.answer.lower() not in p.text.lower()]
        with_gold = rng.random() < raft.p_gold
        context = [p.text for p in rng.sample(pool, min(len(pool), n - 1 if with_gold else n))]
        if with_gold:
            context.insert(rng.randrange(len(context) + 1), gold.text)
            gold_count += 1
        reply = target(s.answer)
        if answer_style == "quote":
            reply = quoted_completion(gold.text, reply.strip(), (gold.meta or {}).get("entity"))
        out.append((context_prompt(s.question, context), reply))
    return out, round(gold_count / len(questions), 4) if questions else 0.0
