"""SQuAD-style JSON -> corpus and QA records, held to the validator's rules.

Two layouts are read: the official nested one (v1.1 / v2.0: data -> paragraphs -> qas) and the
flattened Hugging Face one (one row per question with title, context, question and answers
{text: [...]}), as a JSON list, JSON lines, or under "data". Each distinct paragraph becomes a
passage (id "<article>-<paragraph>", doc_id = the article title).

A question the validator would refuse (no id, empty text, a repeated id) is skipped and counted,
not written: the files `import-squad` writes always load. `split_train` puts whole articles in
the train split, chosen by a seeded hash of the title, so the same file and seed give the same
split on any machine, and no test question shares an article with a training one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from bench.data.loaders import DataError
from bench.data.schema import Passage, QAItem


def parse_split(text: str) -> float:
    """'train=0.5' -> 0.5 (the share of articles whose questions go to the train split)."""
    key, _, value = text.partition("=")
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if key.strip() != "train" or not 0 < share < 1:
        raise ValueError(f"--split: expected train=<share of articles, between 0 and 1>, got {text!r}")
    return share


def _rows(path: Path) -> tuple[str, list]:
    """('nested', articles) or ('flat', question rows)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(path, None, f"not UTF-8 text (byte {e.start + 1})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        try:    # JSON lines: one flattened row per line
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise DataError(path, e.lineno, f"malformed JSON ({e.msg}, column {e.colno})") from None
    rows = data.get("data") if isinstance(data, dict) else data
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        if all("paragraphs" in r for r in rows):
            return "nested", rows
        if all("context" in r and "question" in r for r in rows):
            return "flat", rows
    raise DataError(path, None, "expected SQuAD JSON (an object whose 'data' lists articles with "
                                "'paragraphs') or flattened rows with 'context' and 'question' "
                                "(the Hugging Face layout)")


def _flat_to_nested(rows: list) -> list:
    """Hugging Face rows -> the nested layout (articles and paragraphs in first-seen order)."""
    articles: dict[str, dict] = {}
    for r in rows:
        title = str(r.get("title") or "")
        paras = articles.setdefault(title, {"title": title, "paragraphs": {}})["paragraphs"]
        para = paras.setdefault(r["context"], {"context": r["context"], "qas": []})
        answers = r.get("answers") or {}
        texts = answers.get("text", []) if isinstance(answers, dict) else [a.get("text") for a in answers]
        para["qas"].append({"id": r.get("id"), "question": r.get("question"),
                            "answers": [{"text": t} for t in texts]})
    return [{"title": a["title"], "paragraphs": list(a["paragraphs"].values())} for a in articles.values()]


def _train_titles(titles: list[str], share: float, seed: int) -> set[str]:
    ranked = sorted(titles, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    n = min(max(round(share * len(titles)), 1), len(titles) - 1) if len(titles) > 1 else 0
    return set(ranked[:n])


def import_squad(path: Path | str, split_train: float | None = None,
                 seed: int = 0) -> tuple[list[Passage], list[QAItem], Counter]:
    """(passages, QA items, what was skipped and why: reason -> count)."""
    path = Path(path)
    layout, rows = _rows(path)
    articles = rows if layout == "nested" else _flat_to_nested(rows)
    titles = [str(a.get("title", i)) for i, a in enumerate(articles)]
    train = _train_titles(list(dict.fromkeys(titles)), split_train, seed) if split_train else set()
    passages, items, skipped, seen = [], [], Counter(), set()
    for a, (article, title) in enumerate(zip(articles, titles)):
        for p, para in enumerate(article.get("paragraphs") or []):
            where = f"data[{a}].paragraphs[{p}]"
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise DataError(path, None, f"{where}: missing or empty 'context'")
            pid = f"{a}-{p}"
            passages.append(Passage(id=pid, doc_id=title, text=context))
            for qa in para.get("qas") or []:
                qid, question = str(qa.get("id") or "").strip(), str(qa.get("question") or "").strip()
                reason = ("no id" if not qid else "empty question text" if not question
                          else "repeated question id" if qid in seen else None)
                if reason:
                    skipped[reason] += 1
                    continue
                seen.add(qid)
                texts = [] if qa.get("is_impossible") else [str(x.get("text", "")).strip()
                                                            for x in qa.get("answers") or []]
                answers = list(dict.fromkeys(t for t in texts if t))
                if texts and not answers:
                    skipped["only empty answers"] += 1
                    continue
                items.append(QAItem(id=qid, question=question, answers=answers,
                                    gold_ids=[pid] if answers else [],
                                    split="train" if title in train else "test"))
    if not passages:
        raise DataError(path, None, "no paragraphs with a 'context'")
    if not items:
        raise DataError(path, None, "no usable questions" + (f" (skipped: {dict(skipped)})" if skipped else ""))
    return passages, items, skipped
