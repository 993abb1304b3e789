"""Read and write corpus / QA files, rejecting bad input with file:line and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from bench.data.schema import PASSAGE_FIELDS, QA_FIELDS, SPLITS, Passage, QAItem


# a passage is a paragraph or a section; a line past this is a whole document pasted in
MAX_PASSAGE_CHARS = 1_000_000


class DataError(ValueError):
    """Bad input data; the message starts with `file:line:`."""

    def __init__(self, path: Path | str, line: int | None, reason: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


def write_jsonl(path: Path | str, records: Iterable[dict]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    from bench.io import atomic_write

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    atomic_write(path, write)


def _read_objects(path: Path) -> Iterable[tuple[int, dict]]:
    if not path.exists():
        raise DataError(path, None, "file not found")
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, line_no, f"not UTF-8 text (byte {e.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, line_no, f"malformed JSON: {e.msg}, column {e.colno}") from None
            if not isinstance(obj, dict):
                raise DataError(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def _check_fields(path: Path, line_no: int, obj: dict, fields: dict) -> None:
    for key, (typ, required, what) in fields.items():
        if key not in obj:
            if required:
                raise DataError(path, line_no, f"missing field '{key}' ({what})")
            continue
        if not isinstance(obj[key], typ):
            raise DataError(path, line_no, f"field '{key}' must be {typ.__name__} ({what}), "
                                           f"got {type(obj[key]).__name__}")
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise DataError(path, line_no, f"unknown field(s) {unknown}; allowed: {sorted(fields)}")


def _check_str_list(path: Path, line_no: int, obj: dict, key: str) -> None:
    if not all(isinstance(x, str) and x.strip() for x in obj.get(key, [])):
        raise DataError(path, line_no, f"field '{key}' must be a list of non-empty strings")


def read_passages(path: Path | str) -> list[Passage]:
    path = Path(path)
    passages: list[Passage] = []
    first_line: dict[str, int] = {}
    for line_no, obj in _read_objects(path):
        _check_fields(path, line_no, obj, PASSAGE_FIELDS)
        if not obj["id"].strip() or not obj["text"].strip():
            raise DataError(path, line_no, "'id' and 'text' must be non-empty")
        if len(obj["text"]) > MAX_PASSAGE_CHARS:
            raise DataError(path, line_no, f"passage text of {len(obj['text']):,} characters; at most "
                                           f"{MAX_PASSAGE_CHARS:,}: split the document into passages "
                                           f"(one per paragraph), then chunk with retrieval.chunking")
        if obj["id"] in first_line:
            raise DataError(path, line_no, f"duplicate passage id '{obj['id']}' "
                                           f"(first on line {first_line[obj['id']]})")
        first_line[obj["id"]] = line_no
        passages.append(Passage(**obj))
    if not passages:
        raise DataError(path, None, "empty corpus: expected at least one passage")
    return passages


def read_qa(path: Path | str, passage_ids: Iterable[str] | None = None) -> list[QAItem]:
    """Read QA items; with `passage_ids`, every gold id must name a known passage."""
    path = Path(path)
    known = set(passage_ids) if passage_ids is not None else None
    items: list[QAItem] = []
    first_line: dict[str, int] = {}
    for line_no, obj in _read_objects(path):
        _check_fields(path, line_no, obj, QA_FIELDS)
        if not obj["id"].strip() or not obj["question"].strip():
            raise DataError(path, line_no, "'id' and 'question' must be non-empty")
        for key in ("answers", "gold_ids", "paraphrases"):
            _check_str_list(path, line_no, obj, key)
        if obj.get("split", "test") not in SPLITS:
            raise DataError(path, line_no, f"field 'split' must be one of {SPLITS}, got {obj['split']!r}")
        if obj["id"] in first_line:
            raise DataError(path, line_no, f"duplicate question id '{obj['id']}' "
                                           f"(first on line {first_line[obj['id']]})")
        first_line[obj["id"]] = line_no
        if known is not None:
            unknown = [g for g in obj.get("gold_ids", []) if g not in known]
            if unknown:
                raise DataError(path, line_no, f"gold_ids {unknown} name no passage of the corpus")
        items.append(QAItem(**obj))
    if not items:
        raise DataError(path, None, "no QA items")
    return items


def load_dataset(corpus: Path | str, qa: Path | str) -> tuple[list[Passage], list[QAItem]]:
    passages = read_passages(corpus)
    return passages, read_qa(qa, [p.id for p in passages])
