"""`python -m bench COMMAND`: the entry points the Makefile calls."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from bench.config import ConfigError
from bench.data.loaders import DataError, load_dataset, write_jsonl
from bench.io import atomic_write, write_json


def cmd_world(args) -> int:
    from bench.data.world import WorldSpec, generate_world, next_version

    world = generate_world(WorldSpec(n_entities=args.entities), args.seed)
    v2 = next_version(world)
    out = Path(args.out)
    write_jsonl(out / "corpus.jsonl", (p.to_json() for p in world.passages()))
    write_jsonl(out / "qa.jsonl", (q.to_json() for q in world.qa()))
    write_jsonl(out / "corpus_v2.jsonl", (p.to_json() for p in v2.passages()))
    write_jsonl(out / "qa_v2.jsonl", (q.to_json() for q in v2.qa()))
    write_jsonl(out / "changes.jsonl", v2.changes)
    print(f"wrote {len(world.passages())} passages, {len(world.qa())} questions and "
          f"{len(v2.changes)} v2 changes to {out}/")
    return 0


def cmd_validate(args) -> int:
    passages, items = load_dataset(args.corpus, args.qa)
    print(f"ok: {len(passages)} passages, {len(items)} QA items "
          f"({sum(q.split == 'train' for q in items)} train, "
          f"{sum(not q.answerable for q in items)} unanswerable)")
    return 0


def cmd_import_squad(args) -> int:
    from bench.config import ConfigError
    from bench.data.squad import import_squad, parse_split

    try:
        share = parse_split(args.split) if args.split else None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    passages, items, skipped = import_squad(args.file, share, args.seed)
    out = Path(args.out)
    write_jsonl(out / "corpus.jsonl", (p.to_json() for p in passages))
    write_jsonl(out / "qa.jsonl", (q.to_json() for q in items))
    load_dataset(out / "corpus.jsonl", out / "qa.jsonl")   # what was written loads
    train = sum(q.split == "train" for q in items)
    print(f"wrote {len(passages)} passages and {len(items)} QA items ({train} train, "
          f"{len(items) - train} test) to {out}/")
    for reason, n in sorted(skipped.items()):
        print(f"skipped {n} question(s): {reason}", file=sys.stderr)
    return 0


def cmd_pocket_model(args) -> int:
    from bench.pocket.recipe import CHECKPOINT_DIR, PocketRecipe, checkpoint_hash
    from bench.pocket.train import build_pocket

    recipe = PocketRecipe()
    want, have = recipe.hash(), checkpoint_hash()
    if want == have and not args.force:
        print(f"pocket model is current (recipe {want}) at {CHECKPOINT_DIR}")
        return 0
    print(f"building the pocket model (recipe {want}; committed: {have or 'none'})", flush=True)
    summary = build_pocket(recipe, CHECKPOINT_DIR)
    print(f"built in {summary['train_seconds']:.0f} s: {summary['parameters']:,} parameters")
    return 0


def cmd_probes(args) -> int:
    from bench.models.generator import Generator
    from bench.pocket.data import background_world
    from bench.pocket.probes import ProbeSettings, run_probes
    from bench.pocket.recipe import PocketRecipe, checkpoint_hash
    from bench.report.manifest import hardware, versions

    settings = ProbeSettings(n_items=args.n)
    start = time.perf_counter()
    gen = Generator.load(args.model, batch_size=64)
    rows = run_probes(gen, background_world(PocketRecipe()), settings)
    gen.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    def write_rows(path):
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["probe", "metric", "value", "n"])
            for probe, metric, value, n in rows:
                w.writerow([probe, metric, round(float(value), 4), n])
    atomic_write(out / "summary.csv", write_rows)
    manifest = {"model": args.model, "recipe_hash": checkpoint_hash(),
                "settings": {"n_items": settings.n_items, "max_k": settings.max_k,
                             "world_entities": settings.world_entities, "seed": settings.seed,
                             "renderings": settings.renderings, "lora": settings.lora.to_json()},
                "seconds": round(time.perf_counter() - start, 1), "hardware": hardware(),
                "versions": versions()}
    write_json(manifest, out / "manifest.json")
    print(f"{'probe':<12} {'metric':<36} {'value':>8} {'n':>5}")
    for probe, metric, value, n in rows:
        print(f"{probe:<12} {metric:<36} {float(value):>8.3f} {n:>5}")
    print(f"wrote {out}/summary.csv in {manifest['seconds']:.0f} s")
    return 0


def cmd_run(args) -> int:
    """An experiment YAML of your own through the accuracy study (the head-to-head)."""
    import pandas as pd

    from bench.config import load_experiment
    from bench.studies.driver import results_folder, run_study

    cfg = load_experiment(args.config, model=args.model)   # every config error surfaces here
    out = Path(args.out) if args.out else results_folder(cfg.name, cfg.model.name)
    start = time.perf_counter()
    report = run_study("accuracy", args.config, out, args.model, report_only=args.report_only,
                       progress=not args.quiet)
    summary = pd.read_csv(out / "summary.csv")
    print(summary.pivot(index="metric", columns="arm", values="mean").round(4).to_string())
    print(f"wrote {out}/ (report: {report}) in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_study(args) -> int:
    from bench.studies.driver import run_study
    from bench.studies.registry import study_names

    if args.name not in study_names():
        raise ConfigError(f"unknown study '{args.name}'; registered: {study_names()}")
    start = time.perf_counter()
    report = run_study(args.name, args.config, args.out, args.model, args.quick, args.report_only,
                       progress=not args.quiet, folder=args.folder)
    print(f"wrote {report.parent}/ (report: {report}) in {time.perf_counter() - start:.0f} s")
    return 0


# the real-model profile: the accuracy head-to-head and the studies that reuse its adapters and
# indexes, plus forgetting on general knowledge; sized per model by experiments/models/<model>.yaml
PROFILE_STUDIES = ("accuracy", "hallucination", "forgetting", "popularity", "consistency", "cost", "latency")


def cmd_profile(args) -> int:
    """Every profile study on one model, in order, then its wall time per study in
    results/<model>/profile.json (resumable: a rerun replays finished studies from their logs)."""
    from bench.studies.driver import results_folder, run_study
    from bench.studies.suite import Stopwatch, check as check_studies

    studies = args.studies.split(",") if args.studies else list(PROFILE_STUDIES)
    check_studies(studies, quick=False, model=args.model)   # before the first model loads
    clock = Stopwatch()
    for name in studies:
        with clock.timing(name):
            run_study(name, model=args.model, progress=not args.quiet)
        print(f"profile {args.model}: {name} in {clock.seconds[name]:.0f} s", flush=True)
    out = results_folder("profile.json", args.model)
    clock.write(out, model=args.model)
    print(f"wrote {out}: {sum(clock.seconds.values()):.0f} s in all")
    return 0


def cmd_suite(args) -> int:
    """Every study (or --studies) into one results root, timed, then its claims report."""
    from bench.studies.suite import run_suite

    names = args.studies.split(",") if args.studies else None
    root = Path(args.root or ("results/quick" if args.quick else "results"))
    run_suite(root, names, quick=args.quick, model=args.model, probes=not args.no_probes,
              progress=not args.quiet)
    return 0


def cmd_compare(args) -> int:
    from bench.report.compare import run_compare

    def slug(folder: str) -> str:
        parts = Path(folder).resolve().parts
        parts = parts[parts.index("results") + 1:] if "results" in parts else parts[-2:]
        return "_".join(parts) or "results"

    out = Path(args.out) if args.out else Path("results/compare") / f"{slug(args.a)}--{slug(args.b)}"
    folder, md = run_compare(Path(args.a), Path(args.b), out)
    print(md + f"\nwrote {folder}/compare.csv, compare.md, compare.png")
    return 0


def cmd_studies(args) -> int:
    from bench.studies.registry import get_study, study_names

    for name in study_names():
        print(f"{name:<14} {get_study(name).summary}")
    return 0


def cmd_perf(args) -> int:
    """Generation, LoRA step, retrieval and `make all` timings beside bare baselines (bench/perf)."""
    from bench.perf import SECTIONS, settings_for
    from bench.perf.run import run_perf

    sections = args.sections.split(",") if args.sections else list(SECTIONS)
    unknown = [x for x in sections if x not in SECTIONS]
    if unknown:
        raise ConfigError(f"--sections: unknown section '{unknown[0]}'; expected some of {list(SECTIONS)}")
    if args.chunks is not None and args.chunks < 1:
        raise ConfigError(f"--chunks: expected >= 1, got {args.chunks}")
    settings = settings_for(args.quick, model=args.model, chunks=args.chunks, threads=args.threads)
    if args.speed:   # one number on stdout, for scripts/time_make_all.sh to log beside each target
        from bench.perf.run import lora_step_ms

        print(f"{lora_step_ms(settings):.1f}")
        return 0
    start = time.perf_counter()
    report = run_perf(Path(args.out), settings, sections, quick=args.quick, progress=not args.quiet)
    print(f"wrote {report.parent}/ (report: {report}) in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_report(args) -> int:
    from bench.report.claims_report import build_report

    start = time.perf_counter()
    md, page, tally = build_report(Path(args.results), Path(args.out or args.results))
    print(f"{tally}\nwrote {md} and {page} in {time.perf_counter() - start:.1f} s")
    return 0


def add_executor(s) -> None:
    # checked in main, not by argparse choices: a bad name is one line and exit 2, as a bad
    # BENCH_EXECUTOR is (argparse would print its usage too)
    s.add_argument("--executor", metavar="{local,processes,ray}",
                   help="where jobs run: local (here, in order; the default), processes (worker "
                        "processes here, several jobs at once, each on its share of the cores) or ray "
                        "(Ray tasks on the cluster RAY_ADDRESS names, else a local one); default: "
                        "$BENCH_EXECUTOR or local")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("world", help="write a synthetic world (v1, v2, changes) as JSONL")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--entities", type=int, default=200)
    s.set_defaults(func=cmd_world)

    s = sub.add_parser("validate", help="check a corpus and QA file pair")
    s.add_argument("--corpus", required=True)
    s.add_argument("--qa", required=True)
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("import-squad", help="convert SQuAD-style JSON (nested or Hugging Face rows) "
                                             "to corpus/QA JSONL")
    s.add_argument("file")
    s.add_argument("--out", required=True)
    s.add_argument("--split", help="train=SHARE: that share of the articles (whole articles, chosen "
                                   "by a seeded hash of the title) goes to the train split; default: all test")
    s.add_argument("--seed", type=int, default=0, help="seed of the article split (default 0)")
    s.set_defaults(func=cmd_import_squad)

    s = sub.add_parser("pocket-model", help="build the pocket model if its recipe changed")
    s.add_argument("--force", action="store_true", help="rebuild even if the checkpoint is current")
    s.set_defaults(func=cmd_pocket_model)

    s = sub.add_parser("probes", help="measure the pocket model's reading/recall/abstention/LoRA")
    s.add_argument("--model", default="pocket")
    s.add_argument("--out", default="results/probes")
    s.add_argument("--n", type=int, default=150, help="questions per probe cell")
    s.set_defaults(func=cmd_probes)

    s = sub.add_parser("run", help="run an experiment YAML: predictions, table, summary, plots, report")
    s.add_argument("config")
    s.add_argument("--out", help="results folder (default: results/<experiment name>)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--model", help="run with this model instead of the YAML's")
    s.add_argument("--report-only", action="store_true",
                   help="only rewrite summary, plots and report from the saved items.csv")
    add_executor(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("study", help="run a study by name (see `bench studies`)")
    s.add_argument("name")
    s.add_argument("--config", help="default: experiments/<name>.yaml")
    s.add_argument("--out", help="default: results/<name>, or results/<model>/<name> for another model")
    s.add_argument("--model", help="run with this model instead of the YAML's (pocket, a folder, a hub name)")
    s.add_argument("--folder", help="results folder name under results/ (or results/<model>/); default: <name>")
    s.add_argument("--quick", action="store_true", help="the study's small setting (its `quick:` patch)")
    s.add_argument("--report-only", action="store_true",
                   help="rewrite derived tables, plots and report.md from the saved tables; no model runs")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor(s)
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("profile", help="the real-model profile: the profile studies on one model, timed")
    s.add_argument("model", help="a model name (smollm2-135m), folder or hub name")
    s.add_argument("--studies", help=f"comma-separated (default: {','.join(PROFILE_STUDIES)})")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor(s)
    s.set_defaults(func=cmd_profile)

    s = sub.add_parser("suite", help="every study in one go (make quick: --quick into results/quick), "
                                     "timed, then the claims report")
    s.add_argument("--quick", action="store_true", help="each study's small setting; verdicts marked (quick)")
    s.add_argument("--root", help="results root (default: results/quick with --quick, else results)")
    s.add_argument("--studies", help="comma-separated (default: every study of make all)")
    s.add_argument("--model", help="run with this model instead of each YAML's")
    s.add_argument("--no-probes", action="store_true", help="skip the pocket model's probes (a quick suite always does)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor(s)
    s.set_defaults(func=cmd_suite)

    s = sub.add_parser("compare", help="two results folders of one study: per-arm, per-metric "
                                       "differences B - A with paired 95%% intervals, table and plot")
    s.add_argument("a", help="results folder A (e.g. results/accuracy)")
    s.add_argument("b", help="results folder B (e.g. results/smollm2-135m/accuracy)")
    s.add_argument("--out", help="default: results/compare/<A>--<B>")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("studies", help="list the registered studies")
    s.set_defaults(func=cmd_studies)

    s = sub.add_parser("report", help="the claims report from saved results (no model runs)")
    s.add_argument("--results", default="results", help="folder with one results folder per experiment")
    s.add_argument("--out", help="where report.md and report.html go (default: --results)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("perf", help="where the bench spends its time: generation, LoRA step, retrieval "
                                    "and make all by target, beside bare baselines")
    s.add_argument("--out", default="results/perf")
    s.add_argument("--quick", action="store_true",
                   help="smoke-run sizes: 10k chunks instead of 100k, fewer prompts, steps and repeats")
    s.add_argument("--sections", help="comma-separated, some of generation,lora,retrieval,make (default: all)")
    s.add_argument("--model", help="default: pocket")
    s.add_argument("--chunks", type=int, help="chunks in the retrieval index (default 100000; --quick 10000)")
    s.add_argument("--threads", type=int, help="torch threads for generation and training (default: torch's)")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument("--speed", action="store_true",
                   help="only time the bench's LoRA step (ms, the median of three fits, one line on "
                        "stdout; nothing written): this machine's speed, which time_make_all.sh logs "
                        "beside make all's timings")
    s.set_defaults(func=cmd_perf)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.config import ConfigError
    from bench.executors import using
    from bench.models.resolve import ModelNotFound

    try:
        if not hasattr(args, "executor"):   # commands that run no jobs ignore BENCH_EXECUTOR
            return args.func(args)
        with using(args.executor):   # checked (flag, else BENCH_EXECUTOR) before anything loads
            return args.func(args)
    except (DataError, ModelNotFound, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
