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
`claims()` and `redraw()` read only the saved CSVs.

A finding of the pocket model, not of the method: byte-level BPE tokenises a word after `"`
differently from the same word after a space, and the pocket model only ever saw answers
after a space, so a JSON string value asks it for token sequences it has (almost) never
produced.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.config import CACHE_DIR, ConfigError, ExperimentConfig
from bench.metrics.json_schema import SchemaError, assess, check_schema
from bench.metrics.scores import exact_match
from bench.report.claims import INCONCLUSIVE, Claim, fmt_ci, interval_verdict, markdown_rows, not_run, results_present
from bench.report.manifest import write_manifest
from bench.report.plots import _save
from bench.report.tables import mean_ci, paired, seed_ci, summarize_wide
from bench.studies.common import load_study, write_csv, write_text
from bench.studies.shrink import shrink


EXPERIMENT = "format"
CLAIM_TEXT = "Fine-tuning gives format-adherent output"
CELLS_CSV, SUMMARY_CSV, REASONS_CSV, EXAMPLES_CSV, PLOT = (
    "cells.csv", "summary.csv", "reasons.csv", "examples.csv", "format.png")
METRICS = ("valid_json", "schema_valid", "value_em", "em_plain")
DEFAULT_SCHEMA = {"type": "object", "required": ["answer"],
                  "properties": {"answer": {"type": "string"}}, "additionalProperties": False}


@dataclass(frozen=True)
class Settings:
    schema: dict = field(default_factory=lambda: dict(DEFAULT_SCHEMA))
    value_key: str = "answer"           # the schema key that carries the answer
    examples_per_arm: int = 2           # sample outputs shown in the report, per split
    # overrides of the experiment sections (None = as in the YAML; used by `quick:`)
    entities: int | None = None
    lora_steps: int | None = None
    seeds: tuple[int, ...] | None = None
    max_items: int | None = None

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
        for key in ("entities", "lora_steps", "max_items"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: expected >= 1, got {getattr(self, key)}")


def format_source(arm) -> str:
    """'fine-tuning' when the adapter is trained on JSON targets, 'prompt' when a custom
    template asks for it, 'none' otherwise."""
    training = getattr(arm.settings, "training", None)
    if training is not None and training.answer_format != "plain":
        return "fine-tuning"
    return "prompt" if arm.settings.template != "default" else "none"


def check_arms(cfg: ExperimentConfig, s: Settings) -> None:
    """Before any model loads: taught arms must write the schema's answer key."""
    for i, arm in enumerate(cfg.arms):
        training = getattr(arm.settings, "training", None)
        if training is not None and training.answer_format == "json" and training.json_key != s.value_key:
            raise ConfigError(f"{cfg.source}: arms[{i}].training.json_key: '{training.json_key}' "
                              f"differs from study.value_key '{s.value_key}'")


# -- arithmetic (pure, on tables) -------------------------------------------------------------
_JSON_DETAIL = re.compile(r": line \d+ column \d+ \(char \d+\)$")


def reason_class(reason: str) -> str:
    """A failure reason without its position detail, to count failures by kind."""
    return _JSON_DETAIL.sub("", reason) if reason else "conforms"


def score_items(items: pd.DataFrame, schema: dict, value_key: str) -> pd.DataFrame:
    """Per-item rows (prediction, answers) -> the format columns added."""
    rows = []
    for pred, answers in zip(items["prediction"], items["answers"]):
        c = assess(pred, schema, value_key)
        value = c.value if isinstance(c.value, str) else None
        rows.append({"valid_json": float(c.valid_json), "schema_valid": float(c.schema_valid),
                     "value_em": exact_match(value, answers) if value is not None else 0.0,
                     "em_plain": exact_match(pred, answers), "reason": reason_class(c.reason)})
    return pd.concat([items.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


CELL_KEYS = ["arm", "arm_kind", "format_source", "split", "seed"]
SPLITS = {"test": "held-out facts (test split)", "train": "facts in the fine-tuning data (train split)"}


def cell_table(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, split, seed): the item metrics averaged (a table without `split` is
    taken as all 'test')."""
    if "split" not in scored:
        scored = scored.assign(split="test")
    cells = scored.groupby(CELL_KEYS, sort=False)[list(METRICS)].mean().reset_index()
    cells["n_items"] = scored.groupby(CELL_KEYS, sort=False).size().values
    return cells


def _splits(cells: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(cells["split"]))
    return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    """Long form (arm, metric, mean, ci_low, ci_high, n), metric = '<split>:<metric>'."""
    out = pd.concat([summarize_wide(cells[cells["split"] == split], METRICS, name=lambda m, s=split: f"{s}:{m}")
                     for split in _splits(cells)], ignore_index=True)
    order = {arm: i for i, arm in enumerate(dict.fromkeys(cells["arm"]))}
    return out.sort_values("arm", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


# -- claims and plots from saved tables -------------------------------------------------------
def _arm(cells: pd.DataFrame, kind: str, source: str) -> str | None:
    hit = cells[(cells["arm_kind"] == kind) & (cells["format_source"] == source)]["arm"]
    return hit.iloc[0] if len(hit) else None


def _ci(cells: pd.DataFrame, arm: str, metric: str) -> str:
    return fmt_ci(*seed_ci(cells, arm, metric)[:3])


def claims(results_dir: Path) -> list[Claim]:
    """The format claim on held-out (test) questions, from cells.csv alone."""
    results_dir = Path(results_dir)
    if not results_present(results_dir, CELLS_CSV):
        return [not_run(EXPERIMENT, CLAIM_TEXT, EXPERIMENT)]
    all_cells = pd.read_csv(results_dir / CELLS_CSV)
    cells = all_cells[all_cells["split"] == "test"]
    taught, prompted = _arm(cells, "lora", "fine-tuning"), _arm(cells, "rag", "prompt")
    if not (taught and prompted):
        return [not_run(EXPERIMENT, CLAIM_TEXT, EXPERIMENT)]
    m, lo, hi, n = paired(cells, taught, prompted, "schema_valid")
    measured = (f"held-out questions, schema-valid output: {taught} {_ci(cells, taught, 'schema_valid')}% "
                f"vs {prompted} {_ci(cells, prompted, 'schema_valid')}%; difference {fmt_ci(m, lo, hi)} pp "
                f"(n={n} seeds). Value exact match: {taught} {_ci(cells, taught, 'value_em')}% vs "
                f"{prompted} {_ci(cells, prompted, 'value_em')}% (its raw output as a plain answer: "
                f"{_ci(cells, prompted, 'em_plain')}%)")
    hybrid = _arm(cells, "hybrid", "fine-tuning")
    if hybrid:
        measured += (f"; {hybrid} (taught adapter + retrieval) schema-valid {_ci(cells, hybrid, 'schema_valid')}%, "
                     f"value EM {_ci(cells, hybrid, 'value_em')}%")
    train = all_cells[(all_cells["split"] == "train") & (all_cells["arm"] == taught)]
    if len(train):
        measured += (f"; on facts in its training data {taught} value EM "
                     f"{_ci(train, taught, 'value_em')}%")
    return [Claim(EXPERIMENT, CLAIM_TEXT, EXPERIMENT, measured,
                  interval_verdict(lo, hi) if n >= 2 else INCONCLUSIVE,
                  f"95% CI over seeds of ({taught}, format taught by LoRA on JSON targets) minus "
                  f"({prompted}, format asked for in the prompt) schema-conforming output rate on "
                  f"held-out questions: above 0 -> supported, below 0 -> contradicted, else (or with "
                  f"fewer than 2 seeds) inconclusive")]


LABELS = {"valid_json": "valid JSON", "schema_valid": "schema-valid",
          "value_em": "value exact match", "em_plain": "raw output as plain answer (EM)"}


def redraw(results_dir: Path) -> list[Path]:
    results_dir = Path(results_dir)
    if not results_present(results_dir, CELLS_CSV):
        return []
    cells = pd.read_csv(results_dir / CELLS_CSV)
    arms = list(dict.fromkeys(cells["arm"]))
    source = cells.drop_duplicates("arm").set_index("arm")["format_source"]
    splits = _splits(cells)
    fig, axes = plt.subplots(len(splits), 1, figsize=(1.6 * len(arms) + 3, 4.2 * len(splits)), squeeze=False)
    width = 0.8 / len(METRICS)
    for ax, split in zip(axes[:, 0], splits):
        part = cells[cells["split"] == split]
        for i, metric in enumerate(METRICS):
            st = [mean_ci(part.loc[part["arm"] == a, metric].tolist()) for a in arms]
            mean = np.array([s[0] for s in st])
            err = np.array([[s[0] - s[1] for s in st], [s[2] - s[0] for s in st]])
            xs = np.arange(len(arms)) + (i - (len(METRICS) - 1) / 2) * width
            ax.bar(xs, np.nan_to_num(mean), width, yerr=np.nan_to_num(err), capsize=3, label=LABELS[metric],
                   hatch="//" if metric == "em_plain" else None, alpha=0.6 if metric == "em_plain" else 1.0)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels([f"{a}\n(format: {source[a]})" for a in arms], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of items (95% CI)")
        ax.set_title(f"JSON answers, format in the prompt vs taught by fine-tuning: "
                     f"{SPLITS.get(split, split)}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(hspace=0.4)
    return [_save(fig, results_dir / PLOT)]


# -- the run ----------------------------------------------------------------------------------
def _table_md(summary: pd.DataFrame, cells: pd.DataFrame, split: str) -> str:
    source = cells.drop_duplicates("arm").set_index("arm")["format_source"]
    head = ["valid JSON", "schema-valid", "value EM", "raw EM (plain)"]
    lines = ["| arm | format from | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for arm in dict.fromkeys(summary["arm"]):
        s = summary[summary["arm"] == arm].set_index("metric")
        vals = [fmt_ci(*s.loc[f"{split}:{m}", ["mean", "ci_low", "ci_high"]]) if f"{split}:{m}" in s.index
                else "n/a" for m in METRICS]
        lines.append(f"| {arm} | {source.get(arm, '?')} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _examples_md(results_dir: Path) -> list[str]:
    path = results_dir / EXAMPLES_CSV
    if not path.exists():
        return []
    ex = pd.read_csv(path, keep_default_na=False)
    lines = ["| arm | split | question | gold | output | reason |", "|---|---|---|---|---|---|"]
    for r in ex.itertuples():
        out = str(r.prediction).replace("|", "\\|") or "(empty)"
        lines.append(f"| {r.arm} | {r.split} | {r.question} | {r.gold} | `{out}` | {r.reason} |")
    return ["## Sample outputs (seed " + str(ex["seed"].min()) + ")", "", *lines, ""]


def report(results_dir: Path, cfg, s: Settings, timings: dict) -> Path:
    results_dir = Path(results_dir)
    summary = pd.read_csv(results_dir / SUMMARY_CSV)
    cells = pd.read_csv(results_dir / CELLS_CSV)
    reasons = pd.read_csv(results_dir / REASONS_CSV) if (results_dir / REASONS_CSV).exists() else None
    n_items = {split: int(c["n_items"].median()) for split, c in cells.groupby("split")}
    md = [f"# format: {CLAIM_TEXT.lower()}?", "", cfg.description.strip(), "",
          f"Model `{cfg.model.name}`, seeds {list(cfg.seeds)}, questions per split and seed: "
          f"{n_items} (answerable and unanswerable; the gold of an unanswerable one is `unknown`), "
          f"up to {cfg.model.max_new_tokens} new tokens. Schema `{json.dumps(s.schema)}`, answer "
          f"key `{s.value_key}`. Numbers are % of items, mean over seeds [95% t-interval; with 2 "
          f"seeds the t quantile is 12.7, so intervals are wide].", "",
          f"![format]({PLOT})", ""]
    for split in _splits(cells):
        md += [f"## {SPLITS.get(split, split).capitalize()}", "", _table_md(summary, cells, split), ""]
    md += ["*valid JSON*: the whole output parses as one JSON value (a bare year such as `1843` "
           "is valid JSON, which is most of the prompt-only arms' share); *schema-valid*: it conforms "
           "to the schema; *value EM*: exact match of the value under the answer key (0 when not "
           "conforming); *raw EM (plain)*: the raw output scored as a plain answer, i.e. the "
           "knowledge without the format.", ""]
    if reasons is not None and len(reasons):
        md += ["## Why outputs fail (share of items, both splits, all seeds; top 3 per arm)", "",
               "| arm | reason | share |", "|---|---|---|"]
        for r in reasons.itertuples():
            md.append(f"| {r.arm} | {str(r.reason).replace('|', '/')} | {100 * r.share:.1f}% |")
        md.append("")
    md += _examples_md(results_dir)
    trained = timings.get("adapter_training_seconds")
    md += ["## Verdict", "", markdown_rows(claims(results_dir)), "",
           f"Run time {timings.get('total', float('nan')):.0f} s"
           + (f"; LoRA training of the adapters this config uses took {trained:.0f} s when each was "
              f"trained ({timings.get('adapters_trained_now', 0)} trained in this run, the others "
              f"came from the cache)." if trained is not None else ".")]
    return write_text("\n".join(md) + "\n", results_dir / "report.md")


def adapter_timings(stats: pd.DataFrame) -> dict:
    """Training seconds of every distinct adapter the run used (as measured when it was
    trained) and how many were trained by this run rather than loaded from the cache."""
    if "adapter_key" not in stats:
        return {}
    a = stats.dropna(subset=["adapter_key"]).drop_duplicates("adapter_key")
    fresh = stats.dropna(subset=["adapter_key"])
    fresh = fresh[fresh["adapter_cached"] == False].drop_duplicates("adapter_key")  # noqa: E712
    return {"adapter_training_seconds": round(float(a["train_seconds"].sum()), 1),
            "adapters_used": int(len(a)), "adapters_trained_now": int(len(fresh))}


def run(config: Path, out: Path, quick: bool = False, progress: bool = True,
        cache_dir: Path = CACHE_DIR) -> Path:
    from bench.runner import run_experiment

    cfg, s = load_study(config, Settings, quick)
    cfg = shrink(cfg, entities=s.entities, lora_steps=s.lora_steps, seeds=s.seeds, max_items=s.max_items)
    check_arms(cfg, s)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    table, stats = run_experiment(cfg, out / "runs", cache_dir, progress=progress)
    source = {a.name: format_source(a) for a in cfg.arms}
    table = table.assign(format_source=table["arm"].map(source))
    scored = score_items(table, s.schema, s.value_key)
    cells = cell_table(scored)
    write_csv(cells, out / CELLS_CSV)
    write_csv(summarize(cells), out / SUMMARY_CSV)
    reasons = (scored.groupby(["arm", "reason"], sort=False).size() / scored.groupby("arm", sort=False).size())
    reasons = reasons.rename("share").reset_index().sort_values(["arm", "share"], ascending=[True, False])
    reasons = reasons.groupby("arm", sort=False).head(3)
    order = {a.name: i for i, a in enumerate(cfg.arms)}
    write_csv(reasons.sort_values("arm", key=lambda c: c.map(order), kind="stable"), out / REASONS_CSV)
    first = scored[scored["seed"] == scored["seed"].min()]
    examples = first.groupby(["arm", "split"], sort=False).head(s.examples_per_arm)
    examples = examples.assign(gold=examples["answers"].map(lambda a: a[0] if len(a) else "unknown"))
    write_csv(examples[["arm", "split", "seed", "question", "gold", "prediction", "reason"]], out / EXAMPLES_CSV)
    redraw(out)
    timings = {"total": round(time.perf_counter() - start, 1),
               **adapter_timings(stats)}
    write_manifest(out / "manifest.json", cfg.name, {"experiment": cfg.to_json(), "study": asdict(s)},
                   cfg.source, timings)
    return report(out, cfg, s, timings)
