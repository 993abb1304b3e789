"""format: answers required as JSON of a given schema; format asked for in the prompt only vs
taught by fine-tuning.

Claim tested: fine-tuning gives format-adherent output. The schema (a JSON-schema subset, see
bench/metrics/json_schema.py) and the key that carries the answer are defined in the YAML's
`study:` section. Two ways to get the format:

- prompt only: an instruction and a one-shot example in the prompt (a custom `template:`), for
  closed_book, rag and the plain lora/hybrid adapters of the accuracy experiment;
- taught by fine-tuning: LoRA (and hybrid, sharing the adapter) trained on the same data as
  the accuracy adapters, but with every QA target written as the JSON object
  (`training: {answer_format: json}`); asked with the default prompt, no instruction.

Per item: valid_json (the whole output parses as one JSON value), schema_valid (it conforms to
the schema), value_em (exact match of the value under the answer key; 0 when not conforming)
and em_plain (exact match of the raw output as a plain answer: the knowledge without the
format). Held-out (test) questions are the comparison; train questions (facts the adapters saw
as QA targets) show whether the taught adapter can write a fact it was trained on inside the
JSON. Cell means per (arm, split, seed), then means over seeds with 95% t-intervals.

A finding of the pocket model, not of the method: byte-level BPE tokenises a word after `"`
differently from the same word after a space, and the pocket model only ever saw answers
after a space, so a JSON string value asks it for token sequences it has (almost) never
produced.

measure.py runs the arms and scores the format (model code) and keeps the cells, failure
reasons and sample outputs; read.py turns them into the summary, claim, plot and report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.config import ConfigError, ExperimentConfig
from bench.metrics.json_schema import SchemaError, check_schema
from bench.studies.format import read
from bench.studies.registry import Study, register_study

DEFAULT_SCHEMA = {"type": "object", "required": ["answer"],
                  "properties": {"answer": {"type": "string"}}, "additionalProperties": False}


@dataclass(frozen=True)
class Settings:
    schema: dict = field(default_factory=lambda: dict(DEFAULT_SCHEMA))
    value_key: str = "answer"           # the schema key that carries the answer
    examples_per_arm: int = 2           # sample outputs shown in the report, per split

    def validate(self, where: str) -> None:
        try:
            check_schema(self.schema, f"{where}.schema")
        except SchemaError as e:
            raise ConfigError(str(e)) from None
        if self.schema["type"] != "object" or self.value_key not in self.schema.get("required", []):
            raise ConfigError(f"{where}.value_key: '{self.value_key}' must be a required key of the "
                              f"schema (an object)")
        if self.schema.get("properties", {}).get(self.value_key, {}).get("type") != "string":
            raise ConfigError(f"{where}.schema.properties.{self.value_key}.type: the answer key "
                              f"must be declared as type: string")


def check_arms(cfg: ExperimentConfig, s: Settings, source: str) -> None:
    """Before any model loads: taught arms must write the schema's answer key."""
    for i, arm in enumerate(cfg.arms):
        training = getattr(arm.settings, "training", None)
        if training is not None and training.answer_format == "json" and training.json_key != s.value_key:
            raise ConfigError(f"{source}: arms[{i}].training.json_key: '{training.json_key}' "
                              f"differs from study.value_key '{s.value_key}'")


@register_study("format")
class Format(Study):
    order = 60
    Settings = Settings
    topics = (("format", "fine-tuning gives format-adherent output"),)
    summary = "JSON answers, format in the prompt vs taught by fine-tuning"
    measure = "bench.studies.format.measure"
    base_tables = (read.CELLS_CSV, read.REASONS_CSV, read.EXAMPLES_CSV)
    claims = staticmethod(read.claims)       # verdicts, from the saved tables
    redraw = staticmethod(read.redraw)       # plots, from the saved tables

    def check(self, cfg, settings, source):
        check_arms(cfg, settings, source)

    def derive(self, folder: Path, run):
        return read.derived_tables(folder)

    def report(self, folder: Path, run) -> str:
        return read.report(folder, run.cfg, run.settings, run.timings)
