"""No evaluation wording may reach an adapter's training set.

The evaluation wordings of a dataset are its test-split questions and every paraphrase of them
(the consistency study asks those too). A leak is any of them inside a training example's prompt
or target, compared after lower-casing and collapsing whitespace. Checked before every adapter
trains (bench.arms.adapter), so a recipe that leaks stops with an error instead of scoring
memorised test questions.
"""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def evaluation_wordings(dataset) -> set[str]:
    return {_norm(w) for q in dataset.split("test") for w in [q.question, *q.paraphrases] if w.strip()}


def find_leaks(examples, wordings: set[str]) -> list[str]:
    """The evaluation wordings found in (prompt, target) examples, in order of first sight.

    Every wording ends in its own last character (most in '?'); only substrings ending at such a
    character in the text, of a length some wording has, are looked up: linear in the text."""
    if not wordings:
        return []
    ends = re.compile("[" + re.escape("".join(sorted({w[-1] for w in wordings}))) + "]")
    lengths = sorted({len(w) for w in wordings})
    found: dict[str, None] = {}
    for example in examples:
        for part in example:
            text = _norm(part)
            for m in ends.finditer(text):
                i = m.start()
                for n in lengths:
                    if n > i + 1:
                        break
                    piece = text[i + 1 - n:i + 1]
                    if piece in wordings:
                        found.setdefault(piece)
    return list(found)


class LeakError(ValueError):
    pass


def check_no_leak(examples, dataset) -> None:
    leaks = find_leaks(examples, evaluation_wordings(dataset))
    if leaks:
        raise LeakError(f"{dataset.name}: {len(leaks)} evaluation question(s) appear in the adapter's "
                        f"training set, e.g. {leaks[0]!r}: a recipe must not train on test wordings")
