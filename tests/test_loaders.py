import json

import pytest

from bench.data.loaders import DataError, load_dataset, read_passages, read_qa, write_jsonl
from bench.data.world import WorldSpec, generate_world

GOOD_P = {"id": "p1", "text": "Tavo Selin was born in 1843.", "doc_id": "d1"}
GOOD_Q = {"id": "q1", "question": "When was Tavo Selin born?", "answers": ["1843"], "gold_ids": ["p1"]}


def write_lines(path, lines):
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def test_round_trip_of_a_generated_world(tmp_path):
    world = generate_world(WorldSpec(n_entities=20), 1)
    write_jsonl(tmp_path / "c.jsonl", (p.to_json() for p in world.passages()))
    write_jsonl(tmp_path / "q.jsonl", (q.to_json() for q in world.qa()))
    passages, items = load_dataset(tmp_path / "c.jsonl", tmp_path / "q.jsonl")
    assert passages == world.passages() and items == world.qa()


@pytest.mark.parametrize("lines, line_no, reason", [
    ([GOOD_P, "{not json"], 2, "malformed JSON"),
    ([GOOD_P, {"id": "p2"}], 2, "missing field 'text'"),
    ([{"id": 7, "text": "x"}], 1, "field 'id' must be str"),
    ([GOOD_P, dict(GOOD_P)], 2, "duplicate passage id 'p1' (first on line 1)"),
    ([{**GOOD_P, "colour": "red"}], 1, "unknown field(s) ['colour']"),
    ([{"id": "p1", "text": "  "}], 1, "must be non-empty"),
    (["[1, 2]"], 1, "expected a JSON object"),
])
def test_bad_corpus_lines_name_file_line_and_reason(tmp_path, lines, line_no, reason):
    path = write_lines(tmp_path / "corpus.jsonl", lines)
    with pytest.raises(DataError) as e:
        read_passages(path)
    assert f"corpus.jsonl:{line_no}: " in str(e.value) and reason in str(e.value)


def test_empty_or_missing_corpus(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl: empty corpus"):
        read_passages(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_passages(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("bad, reason", [
    ({**GOOD_Q, "gold_ids": ["p9"]}, "gold_ids ['p9'] name no passage"),
    ({**GOOD_Q, "answers": "1843"}, "field 'answers' must be list"),
    ({**GOOD_Q, "answers": [1843]}, "'answers' must be a list of non-empty strings"),
    ({**GOOD_Q, "split": "dev"}, "field 'split' must be one of"),
    ({k: v for k, v in GOOD_Q.items() if k != "question"}, "missing field 'question'"),
])
def test_bad_qa_lines(tmp_path, bad, reason):
    path = write_lines(tmp_path / "qa.jsonl", [GOOD_Q, {**bad, "id": "q2"}])
    with pytest.raises(DataError) as e:
        read_qa(path, ["p1"])
    assert "qa.jsonl:2: " in str(e.value) and reason in str(e.value)


def test_duplicate_question_ids(tmp_path):
    path = write_lines(tmp_path / "qa.jsonl", [GOOD_Q, GOOD_Q])
    with pytest.raises(DataError, match=r"qa.jsonl:2: duplicate question id 'q1' \(first on line 1\)"):
        read_qa(path)


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])

    def records():
        yield {"a": 2}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert path.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
