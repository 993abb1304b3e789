"""injection, report.md from the saved per_seed.csv alone (no model code)."""

from __future__ import annotations

from pathlib import Path

from bench.report.claims import interval_text, markdown_rows
from bench.studies.injection import read

COLUMNS = (("test_em", "held-out EM %", 100, ".1f"), ("test_contains", "held-out contains %", 100, ".1f"),
           ("reworded_em", "trained, reworded EM %", 100, ".1f"),
           ("background_recall", "background recall %", 100, ".1f"),
           ("background_drop", "forgot (points)", 100, ".1f"),
           ("train_seconds", "LoRA s", 1, ".0f"), ("recipe_seconds", "data s", 1, ".1f"),
           ("train_tokens", "tokens (k)", 1e-3, ".0f"), ("train_examples", "examples", 1, ".0f"),
           ("steps", "steps", 1, ".0f"))


def table_markdown(summary, per_seed) -> list[str]:
    recipes = dict(zip(per_seed["arm"], per_seed["recipe"]))
    lines = ["| arm | recipe | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for arm in dict.fromkeys(per_seed["arm"]):
        cells = []
        for metric, _, scale, spec in COLUMNS:
            hit = summary[(summary["arm"] == arm) & (summary["metric"] == metric)]
            if not len(hit) or hit["mean"].isna().all():
                cells.append("")
                continue
            r = hit.iloc[0]
            cells.append(interval_text(r["mean"], r["ci_low"], r["ci_high"], scale, spec)
                         if metric.startswith(("test", "reworded", "background")) else f"{r['mean'] * scale:{spec}}")
        lines.append(f"| {arm} | {recipes.get(arm, '')} | " + " | ".join(cells) + " |")
    return lines


def describe_arms(cfg) -> list[str]:
    out = []
    for a in cfg.arms:
        t, lo = getattr(a.settings, "training", None), getattr(a.settings, "lora", None)
        if t is None:
            out.append(f"- `{a.name}` ({a.arm}): no adapter.")
            continue
        r = t.recipe
        parts = (["the raw documents"] if t.documents else []) + \
                (["the train split's questions" + (" in every wording but the held-out one" if t.paraphrases else "")]
                 if t.train_questions else []) + \
                ([f"{r.renderings} fresh renderings of every document"] if r.renderings else []) + \
                ([f"{r.synthetic_qa} generated questions per fact"] if r.synthetic_qa else []) + \
                ([f"{r.distill} generated questions per fact answered by the base model reading the fact's "
                  f"passage (prompt distillation)"] if r.distill else []) + \
                ([f"RAFT: a generated question per fact with its passage among distractors "
                  f"(p_gold {r.raft.p_gold}, {r.raft.passages or 'retrieval.k'} passages)"] if r.raft else [])
        replay = f", reading replay {lo.replay_share:.0%} of each batch" if t.reading_replay else ""
        out.append(f"- `{a.name}` ({a.arm}): " + "; ".join(parts) + f"{replay}; LoRA r={lo.rank}, "
                   f"alpha {lo.alpha}, {lo.steps} steps of batch {lo.batch_size}, lr {lo.lr}.")
    return out


def report_md(cfg, s: dict, folder: Path, quick: bool) -> str:
    per_seed = read.load(folder)
    summary = read.summary_table(per_seed)
    metric = "exact match" if read.metric_column(s) == "test_em" else "answer containment"
    md = [f"# injection: {cfg.claim.strip()}", "", cfg.description.strip(), "",
          "## What was measured", "",
          f"- Model `{cfg.model.name}`, world of {cfg.data.world.entities} people, seeds {list(cfg.seeds)} "
          f"(each a fresh world and fresh adapters){', --quick' if quick else ''}.",
          f"- Held-out facts: {s['test_items']} answerable test-split facts per seed, only inside the documents. "
          f"Trained facts reworded: {s['reworded_items']} train-split facts per seed asked in the wording never "
          f"trained (each train item's last paraphrase is held out of every training set).",
          f"- Background: {'general-knowledge questions the base model answers (containment)' if s['background'] == 'general_knowledge' or (s['background'] == 'auto' and cfg.model.name != 'pocket') else 'the pocket model pretraining world, a fixed sample of %d questions per split (EM)' % s['background_items']}, "
          "asked of the base model and of every closed-book adapter; forgot = base recall - adapter recall.",
          "- Cost: LoRA training seconds and tokens, plus the seconds spent generating the recipe's data (the "
          "writer's renderings and questions, the distillation teacher's answers), as measured when the adapter "
          "was trained (a cached adapter keeps its original figures).",
          "- Generated questions use templates disjoint from every evaluation wording; every training set is "
          "checked for evaluation questions before its adapter trains (bench/injection/leaks.py).",
          "- Percentages: mean over seeds with a 95% t-interval (n = seeds).", "",
          "## The arms", "", *describe_arms(cfg), "",
          f"## Results ({metric} for the claims)", "", *table_markdown(summary, per_seed), "",
          f"![accuracy against training cost]({read.PLOT})", "",
          "## Verdicts", "", markdown_rows(read.claims(folder, s)), ""]
    return "\n".join(md) + "\n"
