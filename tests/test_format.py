"""format: the JSON-schema subset checker, JSON training targets, and the study's tables, claims
and plots from saved tables (plus one end-to-end run on the micro model)."""

import json
import pandas as pd
import pytest

from bench.config import ConfigError, DataConfig, WorldData
from bench.metrics.json_schema import SchemaError, assess, check_schema, parse_json, validate
from bench.report.claims import CONTRADICTED, NOT_RUN, SUPPORTED
from bench.studies.driver import load_study_config, run_study
from bench.studies.format import check_arms
from bench.studies.format import measure as fm
from bench.studies.format import read as fmt
from bench.studies.registry import get_study


def load_study(path, quick=False):
    return load_study_config(get_study("format"), path, quick)

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}},
          "additionalProperties": False}


# -- the checker ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, valid_json, conforms, value", [
    ('{"answer": "Paris"}', True, True, "Paris"),
    ('  {"answer": "unknown"}  ', True, True, "unknown"),
    ('{"answer": ""}', True, True, ""),
    ("Paris", False, False, None),
    ('{"answer": "Paris"', False, False, None),               # truncated
    ('{"answer": "Paris"} trailing', False, False, None),     # more than one value
    ('"Paris"', True, False, None),                           # JSON, but a string
    ('{"answer": 1843}', True, False, None),                  # wrong value type
    ('{"reply": "Paris"}', True, False, None),                # missing key + extra key
    ('{"answer": "Paris", "extra": 1}', True, False, None),   # additionalProperties: false
    ("NaN", False, False, None),                              # Python's json accepts it; JSON does not
])
def test_assess_hand_made_outputs(text, valid_json, conforms, value):
    c = assess(text, SCHEMA, "answer")
    assert (c.valid_json, c.schema_valid, c.value) == (valid_json, conforms, value)
    assert (c.reason == "") == conforms


def test_reasons_name_the_key_path():
    assert validate("Paris", SCHEMA) == ["$: expected object, got string"]
    assert validate({"answer": 1843}, SCHEMA) == ["$.answer: expected string, got integer"]
    assert validate({"reply": "x"}, SCHEMA) == ["$: missing required key 'answer'",
                                                "$.reply: unexpected key (additionalProperties is false)"]
    nested = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}},
                                               "n": {"type": "integer"}, "ok": {"type": "boolean"}}}
    assert validate({"tags": ["a", 2, "c"]}, nested) == ["$.tags[1]: expected string, got integer"]
    assert validate({"n": 2.0, "extra": None}, nested) == []        # 2.0 is an integer; extras allowed
    assert validate({"n": True}, nested) == ["$.n: expected integer, got boolean"]
    assert validate({"ok": 1}, nested) == ["$.ok: expected boolean, got integer"]
    assert parse_json("Paris")[2].startswith("$: not JSON: Expecting value")


@pytest.mark.parametrize("schema, where", [
    ({"type": "object", "properties": {"answer": {"type": "string", "minLength": 1}}},
     "schema.properties.answer.minLength: unsupported keyword"),
    ({"type": "str"}, "schema.type: expected one of"),
    ({"properties": {}}, "schema.type: required"),
    ({"type": "string", "required": ["a"]}, "schema.required: only allowed with type: object"),
    ({"type": "object", "required": ["a"], "additionalProperties": False},
     "schema.required: key 'a' is required but not in properties"),
    ({"type": "array", "items": {"type": "object", "additionalProperties": "no"}},
     "schema.items.additionalProperties: expected true or false"),
])
def test_bad_schemas_are_rejected_with_their_key_path(schema, where):
    with pytest.raises(SchemaError, match=where.replace(".", r"\.").replace("(", r"\(")):
        check_schema(schema)
    check_schema(SCHEMA)   # the shipped one is fine


# -- config -----------------------------------------------------------------------------------
def _study_yaml(tmp_path, study: str, training: str = "{}"):
    path = tmp_path / "f.yaml"
    path.write_text(f"name: f\nstudy: {study}\ndata: {{world: {{entities: 10}}}}\n"
                    f"arms: [{{arm: lora, training: {training}}}]\n")
    return path


def test_study_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"study\.value_key: 'reply' must be a required key"):
        load_study(_study_yaml(tmp_path, "{value_key: reply}"))
    with pytest.raises(ConfigError, match=r"study\.schema\.properties\.answer\.type: expected one of"):
        load_study(_study_yaml(tmp_path, "{schema: {type: object, required: [answer], "
                                         "properties: {answer: {type: text}}}}"))
    with pytest.raises(ConfigError, match=r"arms\[0\]\.training\.answer_format: expected one of"):
        load_study(_study_yaml(tmp_path, "{}", "{answer_format: yaml}"))
    with pytest.raises(ConfigError, match=r"f.yaml: arms\[0\]\.training\.json_key: 'reply' differs"):
        load_study(_study_yaml(tmp_path, "{}", "{answer_format: json, json_key: reply}"))


def test_shipped_config_loads_in_both_settings():
    cfg, full = load_study("experiments/format.yaml")
    quick_cfg, quick = load_study("experiments/format.yaml", quick=True)
    check_arms(cfg, full, "format.yaml")
    assert quick_cfg != cfg and quick_cfg.seeds == (0, 1) and full.schema == SCHEMA == quick.schema
    sources = {a.name: fm.format_source(a) for a in cfg.arms}
    assert sources["rag_prompt"] == "prompt" and sources["lora_taught"] == "fine-tuning"
    # the prompt-only template renders with literal JSON braces
    arm = next(a for a in cfg.arms if a.name == "rag_prompt")
    prompt = arm.settings.template.format(question="Q?", context="[1] C.")
    assert '{"answer": "Halvorsen Mills"}' in prompt and prompt.endswith("Question: Q?\nAnswer:")


def test_json_training_targets_keep_documents_and_the_plain_default():
    from bench.arms.adapter import TrainingData, training_examples
    from bench.data.dataset import build_dataset

    ds = build_dataset(DataConfig(world=WorldData(entities=12)), 0)
    plain_ex, plain_replay = training_examples(TrainingData(), ds, 0)
    json_ex, json_replay = training_examples(TrainingData(answer_format="json"), ds, 0)
    assert len(plain_ex) == len(json_ex) and len(plain_replay) == len(json_replay)
    for (p0, t0), (p1, t1) in zip(plain_ex + plain_replay, json_ex + json_replay):
        assert p0 == p1
        if p0 == "":                 # a document: plain text either way
            assert t0 == t1
        else:
            assert t1 == " " + json.dumps({"answer": t0.strip()})
            assert assess(t1.strip(), SCHEMA, "answer").value == t0.strip()


# -- tables, claims, plots --------------------------------------------------------------------
def _items(seed_outputs: dict) -> pd.DataFrame:
    rows = []
    for (arm, kind, source), by_seed in seed_outputs.items():
        for seed, outputs in by_seed.items():
            for i, out in enumerate(outputs):
                rows.append({"arm": arm, "arm_kind": kind, "format_source": source, "seed": seed,
                             "item_id": f"q{i}", "prediction": out, "answers": ["Paris"]})
    return pd.DataFrame(rows)


def test_score_items_and_cells_on_hand_made_outputs():
    items = _items({("rag_prompt", "rag", "prompt"): {0: ["Paris", '{"answer": "Paris"}', '"Paris"', "x"]}})
    scored = fm.score_items(items, SCHEMA, "answer")
    assert scored["valid_json"].tolist() == [0, 1, 1, 0]
    assert scored["schema_valid"].tolist() == [0, 1, 0, 0]
    assert scored["value_em"].tolist() == [0, 1, 0, 0]
    assert scored["em_plain"].tolist() == [1, 0, 1, 0]       # '"Paris"' normalises to paris
    assert scored["reason"].tolist()[:3] == ["$: not JSON: Expecting value", "conforms",
                                             "$: expected object, got string"]
    cells = fm.cell_table(scored)
    assert cells[["valid_json", "schema_valid", "value_em", "em_plain", "n_items"]].values.tolist() == \
        [[0.5, 0.25, 0.25, 0.5, 4]]
    assert cells["split"].tolist() == ["test"]


def test_cells_saved_with_six_digits_read_back_exactly(tmp_path):
    items = _items({("rag_prompt", "rag", "prompt"): {0: ["Paris", '{"answer": "Paris"}', "x"],
                                                     1: ['{"answer": "Paris"}'] * 2 + ["x"] * 5}})
    cells = fm.cell_table(fm.score_items(items, SCHEMA, "answer"))
    cells.to_csv(tmp_path / "cells.csv", index=False, float_format="%.6g")    # as runs before the driver
    rounded = pd.read_csv(tmp_path / "cells.csv")
    assert rounded["valid_json"].tolist() != cells["valid_json"].tolist()      # 1/3 and 2/7 lost digits
    pd.testing.assert_frame_equal(fmt.exact_cells(rounded), cells, check_exact=True)


def _saved(tmp_path, taught_better: bool = True):
    good, bad = ['{"answer": "Paris"}'] * 4, ["Paris"] * 4
    # schema-valid rates per seed: rag_prompt 0, 0, 0.25; lora_taught 1, 0.75, 1
    outputs = {("rag_prompt", "rag", "prompt"): {0: bad, 1: bad, 2: bad[:3] + good[:1]},
               ("lora_taught", "lora", "fine-tuning"): {0: good, 1: good[:3] + ["x"], 2: good}}
    if not taught_better:
        outputs = {("rag_prompt", "rag", "prompt"): outputs[("lora_taught", "lora", "fine-tuning")],
                   ("lora_taught", "lora", "fine-tuning"): outputs[("rag_prompt", "rag", "prompt")]}
    items = _items(outputs)
    items = pd.concat([items.assign(split="test"), items.assign(split="train")])
    cells = fm.cell_table(fm.score_items(items, SCHEMA, "answer"))
    cells.to_csv(tmp_path / fmt.CELLS_CSV, index=False)
    summary = fmt.summarize(cells)
    summary.to_csv(tmp_path / fmt.SUMMARY_CSV, index=False)
    return summary


def test_claims_and_redraw_from_saved_tables_alone(tmp_path):
    summary = _saved(tmp_path)
    assert list(summary.columns) == ["arm", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(summary["n"]) == {3}
    got = summary.set_index(["arm", "metric"])["mean"]
    assert got[("rag_prompt", "test:schema_valid")] == pytest.approx(0.25 / 3)
    assert got[("lora_taught", "train:value_em")] == pytest.approx((1 + 0.75 + 1) / 3)
    [claim] = fmt.claims(tmp_path)
    assert claim.verdict == SUPPORTED and "lora_taught" in claim.measured and "rag_prompt" in claim.rule
    paths = fmt.redraw(tmp_path)
    assert [p.name for p in paths] == ["format.png"] and paths[0].stat().st_size > 0
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    _saved(flipped, taught_better=False)
    assert fmt.claims(flipped)[0].verdict == CONTRADICTED


def test_an_empty_folder_is_not_run(tmp_path):
    [claim] = fmt.claims(tmp_path)
    assert claim.verdict == NOT_RUN and claim.experiment == "format"
    assert fmt.redraw(tmp_path) == []


# -- end to end on the micro model ------------------------------------------------------------
def test_a_micro_run_writes_every_table_and_a_report(micro_pocket, tmp_path):
    import yaml

    lora = {"rank": 4, "alpha": 8, "steps": 3, "batch_size": 4}
    template = 'Reply in JSON {{"answer": "x"}}\n{context}\nQuestion: {question}\nAnswer:'
    (tmp_path / "format.yaml").write_text(yaml.safe_dump({
        "name": "format",
        "data": {"world": {"entities": 12}, "eval_splits": ["test"], "max_items": 4},
        "model": {"name": str(micro_pocket[0]), "max_new_tokens": 6, "batch_size": 4},
        "seeds": [0],
        "arms": [{"name": "rag_prompt", "arm": "rag", "template": template},
                 {"name": "lora_taught", "arm": "lora", "training": {"answer_format": "json"},
                  "lora": lora}]}))
    out = tmp_path / "out"
    report = run_study("format", tmp_path / "format.yaml", out, progress=False, cache_dir=tmp_path / "cache")
    for name in ("summary.csv", "cells.csv", "reasons.csv", "examples.csv", "format.png", "manifest.json"):
        assert (out / name).exists(), name
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells["arm"]) == {"rag_prompt", "lora_taught"} and set(cells["n_items"]) == {4}
    assert set(cells["split"]) == {"test"}
    assert cells[["valid_json", "schema_valid", "value_em"]].stack().between(0, 1).all()
    [claim] = fmt.claims(out)
    assert claim.verdict != NOT_RUN
    assert "## Verdict" in report.read_text()
    # the reading half alone rewrites summary.csv and report.md to the same bytes, manifest untouched
    saved = {name: (out / name).read_bytes() for name in ("summary.csv", "report.md", "manifest.json")}
    (out / "summary.csv").unlink()
    (out / "report.md").unlink()
    run_study("format", tmp_path / "format.yaml", out, report_only=True, progress=False)
    assert {name: (out / name).read_bytes() for name in saved} == saved


def test_adapter_timings_count_each_adapter_once():
    stats = pd.DataFrame([
        {"arm": "closed_book_prompt"},
        {"arm": "lora_prompt", "adapter_key": "a", "adapter_cached": True, "train_seconds": 100.0},
        {"arm": "hybrid_prompt", "adapter_key": "a", "adapter_cached": True, "train_seconds": 100.0},
        {"arm": "lora_taught", "adapter_key": "b", "adapter_cached": False, "train_seconds": 120.0},
        {"arm": "hybrid_taught", "adapter_key": "b", "adapter_cached": True, "train_seconds": 120.0}])
    assert fm.adapter_timings(stats) == {"adapter_training_seconds": 220.0, "adapters_used": 2,
                                          "adapters_trained_now": 1}
    assert fm.adapter_timings(pd.DataFrame([{"arm": "rag"}])) == {}
