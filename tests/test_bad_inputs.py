"""Bad input, as a new user writes it: every case ends in one `error:` line naming the file and
key (or line), exit code 2, before any model loads, and nothing written to the results folder."""

import json
import shutil
from pathlib import Path

import pytest

from bench.cli import main

GOOD = """name: popularity
data: {world: {entities: 8}, eval_splits: [test]}
model: {name: pocket, max_new_tokens: 4, batch_size: 8}
seeds: [0, 1]
arms: [{arm: closed_book}, {arm: lora, lora: {rank: 4, steps: 2}}]
study: {bucket_starts: [1, 2]}
"""

# (case, what replaces/extends the good YAML, the message the error must carry)
CASES = [
    ("unknown top key", GOOD + "colour: red\n", r"p.yaml: config.colour: unknown key"),
    ("name with a path", GOOD.replace("name: popularity", "name: ../x"), r"p.yaml: config.name: expected letters"),
    ("no seeds", GOOD.replace("seeds: [0, 1]", "seeds: []"), r"p.yaml: seeds: expected at least one seed"),
    ("duplicate seeds", GOOD.replace("seeds: [0, 1]", "seeds: [1, 1]"), r"p.yaml: seeds: duplicates"),
    ("seeds not a list", GOOD.replace("seeds: [0, 1]", "seeds: abc"), r"config.seeds: expected a list"),
    ("negative max_items", GOOD.replace("eval_splits: [test]}", "eval_splits: [test], max_items: -3}"),
     r"config.data.max_items: expected >= 1"),
    ("unknown split", GOOD.replace("eval_splits: [test]", "eval_splits: [dev]"), r"data.eval_splits: expected"),
    ("world and corpus", GOOD.replace("{world: {entities: 8},", "{world: {entities: 8}, corpus: c.jsonl, qa: q.jsonl,"),
     r"config.data: `world:` and `corpus:`/`qa:` exclude each other"),
    ("missing corpus file", GOOD.replace("{world: {entities: 8},", "{corpus: nowhere.jsonl, qa: q.jsonl,"),
     r"config.data.corpus: file not found: nowhere.jsonl"),
    ("batch size 0", GOOD.replace("batch_size: 8", "batch_size: 0"), r"config.model.batch_size: expected >= 1"),
    ("max_new_tokens 0", GOOD.replace("max_new_tokens: 4", "max_new_tokens: 0"),
     r"config.model.max_new_tokens: expected >= 1"),
    ("unknown device", GOOD.replace("batch_size: 8}", "batch_size: 8, device: tpu}"), r"config.model.device: expected auto"),
    ("cuda on a CPU machine", GOOD.replace("batch_size: 8}", "batch_size: 8, device: cuda}"),
     r"p.yaml: model.device: cuda asked for, but this machine has none"),
    ("negative temperature", GOOD.replace("batch_size: 8}", "batch_size: 8, temperature: -1}"),
     r"config.model.temperature: expected 0"),
    ("unknown chat mode", GOOD.replace("batch_size: 8}", "batch_size: 8, chat: yes-please}"),
     r"config.model.chat: expected one of \['auto', 'on', 'off'\]"),
    ("chat on without a template", GOOD.replace("batch_size: 8}", "batch_size: 8, chat: 'on'}"),
     r"model.chat: on, but pocket's tokenizer has no chat template"),
    ("too many demonstrations", GOOD.replace("batch_size: 8}", "batch_size: 8, demos: 7}"),
     r"config.model.demos: expected 0 to 4, got 7"),
    ("unknown dtype", GOOD.replace("batch_size: 8}", "batch_size: 8, dtype: fp8}"), r"config.model.dtype: expected one of"),
    ("batch size as text", GOOD.replace("batch_size: 8", "batch_size: big"), r"config.model.batch_size: expected int"),
    ("missing model folder", GOOD.replace("name: pocket", "name: /no/such/model"), r"/no/such/model: no such model folder"),
    ("unknown hub model offline", GOOD.replace("name: pocket", "name: someone/some-model"),
     r"model 'someone/some-model' is not available locally"),
    ("unknown arm kind", GOOD.replace("{arm: closed_book}", "{arm: ragg}"), r"p.yaml: arms\[0\].arm: unknown arm kind 'ragg'"),
    ("unknown arm key", GOOD.replace("{arm: closed_book}", "{arm: closed_book, k: 3}"), r"arms\[0\].k: unknown key"),
    ("duplicate arm names", GOOD.replace("{arm: lora,", "{arm: closed_book}, {arm: lora,"),
     r"arms\[1\].name: duplicate arm name 'closed_book'"),
    ("template placeholder unknown", GOOD.replace("{arm: closed_book}", "{arm: closed_book, template: 'Q: {question} {foo}'}"),
     r"arms\[0\].template: unknown placeholder \{foo\}"),
    ("template without the question", GOOD.replace("{arm: closed_book}", "{arm: closed_book, template: 'Answer:'}"),
     r"arms\[0\].template: missing placeholder"),
    ("rag template without context", GOOD.replace("{arm: closed_book}", "{arm: rag, template: 'Q: {question}'}"),
     r"arms\[0\].template: missing placeholder\(s\) \['\{context\}'\]"),
    ("negative lr", GOOD.replace("steps: 2}", "steps: 2, lr: -0.1}"), r"arms\[1\].lora.lr: expected > 0"),
    ("rank 0", GOOD.replace("rank: 4", "rank: 0"), r"arms\[1\].lora.rank: expected >= 1"),
    ("dropout 1.5", GOOD.replace("steps: 2}", "steps: 2, dropout: 1.5}"), r"arms\[1\].lora.dropout: expected 0 <= x < 1"),
    ("replay share 1", GOOD.replace("steps: 2}", "steps: 2, replay_share: 1}"), r"arms\[1\].lora.replay_share"),
    ("target modules that match nothing", GOOD.replace("steps: 2}", "steps: 2, target_modules: [c_attn]}"),
     r"arms\[1\].lora.target_modules: \['c_attn'\] match no layer of pocket"),
    ("retrieval k 0", GOOD.replace("{arm: closed_book}", "{arm: rag, retrieval: {k: 0}}"), r"arms\[0\].retrieval.k: expected k >= 1"),
    ("unknown search", GOOD.replace("{arm: closed_book}", "{arm: rag, retrieval: {search: fast}}"),
     r"arms\[0\].retrieval.search: expected one of \['auto', 'exact', 'hnsw'\]"),
    ("unknown chunking", GOOD.replace("{arm: closed_book}", "{arm: rag, retrieval: {chunking: pages}}"),
     r"arms\[0\].retrieval: chunking: expected one of"),
    ("overlap as large as a chunk", GOOD.replace("{arm: closed_book}", "{arm: rag, retrieval: {chunking: sentences, chunk_size: 2, overlap: 2}}"),
     r"arms\[0\].retrieval: overlap must be an integer in \[0, chunk_size=2\)"),
    ("unknown overflow rule", GOOD.replace("{arm: closed_book}", "{arm: rag, retrieval: {overflow: drop}}"),
     r"arms\[0\].retrieval.overflow: expected one of \['truncate', 'fail'\]"),
    ("arm_defaults of an unknown kind", GOOD + "arm_defaults: {ragg: {}}\n", r"p.yaml: arm_defaults.ragg: unknown arm kind"),
    ("bad study setting", GOOD.replace("[1, 2]}", "[2, 3]}"), r"p.yaml: study.bucket_starts: expected at least two"),
    ("unknown study key", GOOD.replace("study: {", "study: {bukets: 1, "), r"p.yaml: study.bukets: unknown key"),
    ("unknown quick key", GOOD + "quick: {entites: 4}\n", r"p.yaml: quick.entites: unknown key"),
    ("quick of a bad value", GOOD + "quick: {lora_steps: 0}\n", r"p.yaml: quick.lora_steps: expected >= 1"),
    ("missing include", "include: base/none.yaml\n" + GOOD, r"p.yaml: include: file not found"),
    ("broken YAML", GOOD.replace("seeds: [0, 1]", "seeds: [0, 1"), r"p.yaml:\d+: not valid YAML"),
]


def _run(tmp_path: Path, text: str | bytes, *extra: str):
    path = tmp_path / "p.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return main(["study", "popularity", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet", *extra])


@pytest.fixture
def no_model(monkeypatch):
    from bench.models.generator import Generator

    monkeypatch.setattr(Generator, "load", classmethod(lambda cls, *a, **k: pytest.fail("a model loaded")))
    monkeypatch.chdir(Path(__file__).parents[1])


def _assert_refused(rc, capsys, pattern, tmp_path):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert __import__("re").search(pattern, err[0]), err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case,text,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_config(case, text, pattern, tmp_path, capsys, no_model):
    if case.startswith("cuda") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    _assert_refused(_run(tmp_path, text), capsys, pattern, tmp_path)


def test_a_file_that_is_not_utf8(tmp_path, capsys, no_model):
    _assert_refused(_run(tmp_path, GOOD.encode() + b"# caf\xe9\n"), capsys, r"p.yaml: not UTF-8 text", tmp_path)


@pytest.mark.parametrize("case,change,pattern", [
    ("no safetensors weights", "weights", r": no \*.safetensors weights"),
    ("remote code without trust", "remote", r"config.json: the model runs code of its own \(auto_map\)"),
])
def test_a_model_folder_that_would_fail_to_load(case, change, pattern, micro_pocket, tmp_path, capsys, no_model):
    folder = Path(shutil.copytree(micro_pocket[0], tmp_path / "m"))
    if change == "weights":
        for f in folder.glob("*.safetensors"):
            f.unlink()
    else:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "x.Y"}}))
    _assert_refused(_run(tmp_path, GOOD.replace("name: pocket", f"name: {folder}")), capsys, pattern, tmp_path)


QA_LINE = '{"id": "q1", "question": "a?", "answers": ["a"], "gold_ids": ["p1"]}'


@pytest.mark.parametrize("case,lines,qa_line,arms,pattern", [
    ("malformed JSON line", ['{"id": "p1", "text": "a"}', "{not json"], QA_LINE, None, r"corpus.jsonl:2: malformed JSON"),
    ("not UTF-8", [b'{"id": "p1", "text": "caf\xe9"}'], QA_LINE, None, r"corpus.jsonl:1: not UTF-8 text"),
    ("a whole book on one line", ['{"id": "p1", "text": "%s"}' % ("word " * 220_000)], QA_LINE, None,
     r"corpus.jsonl:1: passage text of 1,100,000 characters; at most 1,000,000"),
    ("k larger than the corpus", ['{"id": "p1", "text": "a"}', '{"id": "p2", "text": "b"}'], QA_LINE,
     "[{arm: rag, retrieval: {k: 3}}]", r"arms: rag: retrieval.k: 3 is more than the 2 chunks of .*corpus.jsonl"),
    ("no items in the evaluated split", ['{"id": "p1", "text": "a"}'], QA_LINE[:-1] + ', "split": "train"}',
     None, r"qa.jsonl: no QA items in data.eval_splits \['test'\] \(its splits: \['train'\]\)"),
])
def test_bad_data_files(case, lines, qa_line, arms, pattern, tmp_path, capsys, no_model):
    corpus, qa = tmp_path / "corpus.jsonl", tmp_path / "qa.jsonl"
    corpus.write_bytes(b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines) + b"\n")
    qa.write_text(qa_line + "\n")
    text = GOOD.replace("{world: {entities: 8},", f"{{corpus: {corpus}, qa: {qa},").replace("study: {bucket_starts: [1, 2]}\n", "")
    if arms:
        text = text.replace("arms: [{arm: closed_book}, {arm: lora, lora: {rank: 4, steps: 2}}]", f"arms: {arms}")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    rc = main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    _assert_refused(rc, capsys, pattern, tmp_path)


def test_a_bad_split_for_the_squad_importer(tmp_path, capsys, no_model):
    rc = main(["import-squad", str(Path(__file__).parent / "data" / "squad_sample.json"),
               "--out", str(tmp_path / "out"), "--split", "train=2"])
    _assert_refused(rc, capsys, r"error: --split: expected train=<share of articles", tmp_path)


def test_a_results_folder_name_that_is_a_path(tmp_path, capsys, no_model):
    rc = main(["study", "popularity", "--folder", "../outside", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --folder: expected a folder name")
    assert not (Path(__file__).parents[1] / "outside").exists()
