"""SQuAD files, as a user brings them: a real SQuAD v1.1 sample (tests/data, 5 articles of the
dev set) goes through import -> validate -> run; the nested and Hugging Face layouts, the
article split, and the validator's rules applied by the importer."""

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.data.loaders import DataError, load_dataset
from bench.data.squad import import_squad, parse_split

SAMPLE = Path(__file__).parent / "data" / "squad_sample.json"
POCKET_WINDOW = 512        # max_position_embeddings of the committed pocket model


def test_nested_layout(tmp_path):
    squad = {"data": [{"title": "T", "paragraphs": [{
        "context": "Tavo Selin was born in 1843.",
        "qas": [{"id": "a", "question": "When?", "answers": [{"text": "1843", "answer_start": 23}]},
                {"id": "b", "question": "Where?", "answers": [], "is_impossible": True}]}]}]}
    (tmp_path / "s.json").write_text(json.dumps(squad))
    passages, items, skipped = import_squad(tmp_path / "s.json")
    assert [p.text for p in passages] == ["Tavo Selin was born in 1843."] and passages[0].doc_id == "T"
    assert items[0].answers == ["1843"] and items[0].gold_ids == [passages[0].id]
    assert items[1].answers == [] and not items[1].answerable
    assert not skipped and {q.split for q in items} == {"test"}


def test_hugging_face_rows_give_the_same_records_as_the_nested_file(tmp_path):
    nested = json.loads(SAMPLE.read_text())
    rows = [{"id": qa["id"], "title": a["title"], "context": p["context"], "question": qa["question"],
             "answers": {"text": [x["text"] for x in qa["answers"]],
                         "answer_start": [x["answer_start"] for x in qa["answers"]]}}
            for a in nested["data"] for p in a["paragraphs"] for qa in p["qas"]]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    want = import_squad(SAMPLE, 0.4, seed=3)
    for name in ("rows.json", "rows.jsonl"):
        assert import_squad(tmp_path / name, 0.4, seed=3) == want


def test_article_split_is_whole_articles_and_reproducible():
    passages, items, _ = import_squad(SAMPLE, 0.4, seed=0)
    doc = {p.id: p.doc_id for p in passages}
    split_of = {}
    for q in items:
        assert split_of.setdefault(doc[q.gold_ids[0]], q.split) == q.split   # one split per article
    assert sorted(split_of.values()).count("train") == 2 and len(split_of) == 5   # round(0.4 * 5)
    assert import_squad(SAMPLE, 0.4, seed=0) == (passages, items, _)
    other = {doc[q.gold_ids[0]] for q in import_squad(SAMPLE, 0.4, seed=1)[1] if q.split == "train"}
    assert other != {a for a, s in split_of.items() if s == "train"}   # the seed chooses the articles
    for bad in ("train=0", "train=1.5", "test=0.5", "train=half"):
        with pytest.raises(ValueError, match="--split: expected train="):
            parse_split(bad)


def test_the_importer_skips_what_the_validator_refuses(tmp_path):
    squad = {"data": [{"title": "T", "paragraphs": [{"context": "Ada was born in 1815.", "qas": [
        {"id": "a", "question": "When was Ada born?", "answers": [{"text": "1815"}, {"text": " 1815 "}]},
        {"id": "b", "question": "   ", "answers": [{"text": "1815"}]},
        {"id": "a", "question": "Again?", "answers": [{"text": "1815"}]},
        {"id": "c", "question": "Blank answer?", "answers": [{"text": " "}]},
        {"question": "No id?", "answers": [{"text": "1815"}]}]}]}]}
    (tmp_path / "s.json").write_text(json.dumps(squad))
    out = tmp_path / "out"
    assert main(["import-squad", str(tmp_path / "s.json"), "--out", str(out)]) == 0
    passages, items = load_dataset(out / "corpus.jsonl", out / "qa.jsonl")
    assert [q.id for q in items] == ["a"] and items[0].answers == ["1815"]
    _, _, skipped = import_squad(tmp_path / "s.json")
    assert skipped == {"empty question text": 1, "repeated question id": 1, "only empty answers": 1, "no id": 1}
    (tmp_path / "t.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="t.json: expected SQuAD JSON"):
        import_squad(tmp_path / "t.json")
    (tmp_path / "u.json").write_text('{"data": [{"paragraphs": [{"qas": []}]}]}')
    with pytest.raises(DataError, match=r"data\[0\].paragraphs\[0\]: missing or empty 'context'"):
        import_squad(tmp_path / "u.json")


def _experiment(tmp_path: Path, data: Path, retrieval: str) -> Path:
    path = tmp_path / "squad.yaml"
    path.write_text(f"""name: squad-sample
data: {{corpus: {data}/corpus.jsonl, qa: {data}/qa.jsonl, eval_splits: [test], max_items: 12}}
model: {{name: pocket, max_new_tokens: 8, batch_size: 16}}
seeds: [0]
arms:
  - {{name: closed_book, arm: closed_book}}
  - {{name: rag, arm: rag, retrieval: {retrieval}}}
""")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    data = tmp_path_factory.mktemp("squad")
    assert main(["import-squad", str(SAMPLE), "--out", str(data), "--split", "train=0.4"]) == 0
    return data


def test_real_squad_sample_import_validate_run_with_sentence_chunks(imported, tmp_path, capsys):
    capsys.readouterr()
    assert main(["validate", "--corpus", str(imported / "corpus.jsonl"), "--qa", str(imported / "qa.jsonl")]) == 0
    assert capsys.readouterr().out.startswith("ok: 15 passages, 75 QA items")
    # windows of two sentences: the longest is 362 tokens of the pocket vocabulary (a whole
    # paragraph: up to 869), so one fits the 512 positions with the question and the answer
    config = _experiment(tmp_path, imported, "{k: 1, chunking: sentences, chunk_size: 2, overlap: 1}")
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err, err                               # no context overflow, no long chunks
    items = pd.read_csv(tmp_path / "out" / "items.csv")
    rag = items[items["arm"] == "rag"]
    assert len(rag) == 12 and rag["recall_at_k"].notna().all()
    # budget: 8 new tokens + the pocket model's 40 for its quote
    assert (rag["prompt_tokens"] + 8 + 40).max() <= POCKET_WINDOW
    assert rag["prompt_tokens"].mean() > 2 * items.loc[items["arm"] == "closed_book", "prompt_tokens"].mean()


def test_whole_paragraphs_overflow_and_are_truncated_or_refused(imported, tmp_path, capsys):
    capsys.readouterr()
    config = _experiment(tmp_path, imported, "{k: 3}")
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "exceeds the model's 512-token context" in err and "prompts were truncated" in err
    rag = pd.read_csv(tmp_path / "out" / "items.csv").query("arm == 'rag'")
    assert (rag["prompt_tokens"] + 8 + 40).max() <= POCKET_WINDOW
    config.write_text(config.read_text().replace("{k: 3}", "{k: 3, overflow: fail}"))
    assert main(["run", str(config), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "tokens; the model's context holds 512 positions" in err[0]
    assert "retrieval.overflow: truncate" in err[0]
