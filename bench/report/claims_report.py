"""The claims report (`make report`): every claim of the articles beside what the saved results
measured, per model, with a verdict computed by each registered study's own `claims()` and its
plots redrawn by its own `redraw()`. Only saved tables are read: no model loads, and nothing of
the model stack (torch, transformers) is imported: a study's reading half lives apart from its
measuring half. A claim belongs to the topic named by the first part of its id (`hybrid.raft`
-> hybrid), else to its study's first topic. The default model's folders are results/<study>/,
any other model's results/<model>/<study>/.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.config import DEFAULT_MODEL
from bench.report.claims import QUICK_MARK, VERDICTS, Claim, experiment_config, not_run, read_manifest


def topics() -> list[tuple[str, str, str]]:
    """(topic, claim as the articles state it, study) for every registered study, in report order."""
    from bench.studies.registry import STUDIES, study_names

    return [(t, c, name) for name in study_names() for t, c in STUDIES[name].topics]


INTRO = ("Each row is one claim of the articles, the experiment that tests it, the numbers it measured "
         "(means over seeds with 95% CIs) and a verdict computed by code from the saved tables by the "
         "rule shown in the experiment's section: supported, contradicted, inconclusive at this model "
         "scale, inconclusive (n=1) (one seed: no interval), or not run (no saved results). Every plot below was redrawn from the saved tables; "
         "no model ran to write this report.")
COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "inconclusive at this model scale": "#9a6700",
           "inconclusive (n=1)": "#9a6700", "not run": "#6e7781"}
CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #d0d7de;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f6f8fa}.v{font-weight:600;white-space:nowrap}
img{max-width:100%;border:1px solid #d0d7de;margin:.5em 0}code{background:#f6f8fa;padding:0 3px}"""


@dataclass
class Section:
    experiment: str
    claims: list[Claim] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    stale: str | None = None     # why its results may not describe the current pocket model
    model: str = DEFAULT_MODEL
    folder: Path | None = None   # the results folder read (None: nothing saved)


def staleness(folder: Path) -> str | None:
    """Set when the saved results came from another pocket checkpoint than the current one
    (or from before manifests recorded it), for experiments that ran on the pocket model."""
    from bench.pocket.recipe import checkpoint_hash

    manifest = read_manifest(folder)
    if (experiment_config(folder).get("model") or {}).get("name", "pocket") != "pocket":
        return None
    made, current = manifest.get("pocket_checkpoint"), checkpoint_hash()
    if made == current:
        return None
    return (f"made with pocket checkpoint {made or 'unrecorded (manifest older than the record)'}, "
            f"not the current {current}: rerun to refresh (`make {folder.name}`)")


def experiments() -> list[str]:
    return list(dict.fromkeys(experiment for _, _, experiment in topics()))


def claims_module(experiment: str):
    """What has the experiment's claims() and redraw(): its registered study."""
    from bench.studies.registry import get_study

    return get_study(experiment)


def folders_of(experiment: str) -> tuple[str, ...]:
    """The results folders a study may have written, most telling first (`make scale-100k`
    writes the >= 100k-chunk setting beside the --quick one): its claims come from the first."""
    from bench.studies.registry import STUDIES

    return STUDIES[experiment].folders or (experiment,)


def results_folder(results: Path, experiment: str) -> Path:
    candidates = [results / name for name in folders_of(experiment)]
    return next((f for f in candidates if f.is_dir()), candidates[-1])


# where `make quick` writes its studies (results/quick/<study>/): a report of its own, never a model
QUICK_FOLDER = "quick"


def model_roots(results: Path) -> list[tuple[str, Path]]:
    """(model, folder holding its study folders): the default model's is `results` itself, any
    other model's a subfolder `results/<model>/` (as `--model` writes them)."""
    known = {f for e in experiments() for f in (e, *folders_of(e))} | {"probes", QUICK_FOLDER}
    roots = [(DEFAULT_MODEL, results)]
    if results.is_dir():
        for d in sorted(p for p in results.iterdir() if p.is_dir() and p.name not in known):
            if any((d / e).is_dir() for e in experiments()):
                roots.append((d.name, d))
    return roots


def read_section(experiment: str, folder: Path, model: str) -> Section:
    module = claims_module(experiment) if folder.is_dir() else None
    section = Section(experiment, stale=staleness(folder) if folder.is_dir() else None, model=model,
                      folder=folder if folder.is_dir() else None)
    if module is not None and hasattr(module, "claims"):
        try:
            quick = bool(read_manifest(folder).get("quick"))   # a --quick run's verdicts say so
            section.claims = [replace(c, quick=quick) for c in module.claims(folder)]
            section.plots = list(module.redraw(folder)) if hasattr(module, "redraw") else []
        except Exception as e:
            raise RuntimeError(f"{experiment}: reading {folder} failed: {e}") from e
    return section


def gather(results: Path) -> list[Section]:
    """Claims and redrawn plots of every study, for the default model (a section each, run or
    not) and for every other model that has results (its studies that ran)."""
    sections = []
    for model, root in model_roots(Path(results)):
        for experiment in experiments():
            folder = results_folder(root, experiment)
            if model == DEFAULT_MODEL or folder.is_dir():
                sections.append(read_section(experiment, folder, model))
    return sections


def topic_of(claim: Claim, experiment: str) -> str:
    prefix = claim.id.split(".")[0].replace("_", "-")
    known = topics()
    if prefix in [t for t, _, _ in known]:
        return prefix
    return next(t for t, _, e in known if e in (claim.experiment, experiment))


def ordered(sections: list[Section]) -> list[tuple[str, Claim, str]]:
    """(topic, claim, model) for every topic in report order, the default model's first; a
    topic the default model has no result for shows as not run."""
    rows = []
    for model in dict.fromkeys(s.model for s in sections):
        by_topic: dict[str, list[Claim]] = {t: [] for t, _, _ in topics()}
        for section in (s for s in sections if s.model == model):
            for claim in section.claims:
                by_topic[topic_of(claim, section.experiment)].append(claim)
        rows += [(topic, claim, model) for topic, text, experiment in topics()
                 for claim in by_topic[topic] or ([not_run(topic, text, experiment)]
                                                  if model == DEFAULT_MODEL else [])]
    return rows


def by_model(rows) -> tuple[list[str], list[tuple[str, Claim, dict[str, str]]]]:
    """(models, one row per claim: topic, the claim as first listed, {model: verdict}), in the
    default model's order; a claim a model has no result for is 'not run' for it."""
    models = list(dict.fromkeys(m for _, _, m in rows))
    table: dict[tuple[str, str], tuple[str, Claim, dict[str, str]]] = {}
    for topic, claim, model in rows:
        entry = table.setdefault((topic, claim.id, claim.text), (topic, claim, {}))
        entry[2][model] = claim.shown
    return models, [(t, c, {m: v.get(m, "not run") for m in models}) for t, c, v in table.values()]


def held_on(verdicts: dict[str, str]) -> str:
    """Where the claim held: 'all' models, the ones that supported it, or 'none'."""
    ran = [m for m, v in verdicts.items() if v != "not run"]
    held = [m for m in ran if base_verdict(verdicts[m]) == "supported"]
    if not held:
        return "none"
    return "all" if len(held) == len(ran) > 1 else ", ".join(held)


def differs(verdicts: dict[str, str]) -> bool:
    """Whether models that ran the claim reached different verdicts."""
    return len({v for v in verdicts.values() if v != "not run"}) > 1


def base_verdict(shown: str) -> str:
    """A verdict without its quick mark."""
    return shown.removesuffix(f" {QUICK_MARK}")


def tally(rows) -> str:
    counts = {v: sum(row[1].verdict == v for row in rows) for v in VERDICTS}
    quick = sum(row[1].quick for row in rows)
    return (f"{len(rows)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
            + (f" ({quick} of them from quick runs)" if quick else ""))


def quick_note(sections: list[Section]) -> list[str]:
    quick = [_title(s) for s in sections if s.claims and s.claims[0].quick]
    if not quick:
        return []
    return [f"**Quick runs (make quick):** {', '.join(quick)}. Each ran its small `quick:` setting (a "
            "small world, short LoRA training, fewer seeds and items): a first look at the whole report "
            "in minutes, not the measurement; verdicts marked (quick) can differ from `make all`'s.", ""]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _title(section: Section) -> str:
    return section.experiment if section.model == DEFAULT_MODEL else f"{section.experiment} ({section.model})"


def markdown(rows, sections: list[Section], results: Path, out: Path) -> str:
    def rel(path: Path) -> str:   # links and images are relative to the report's folder
        return Path(os.path.relpath(path, out)).as_posix()

    folders = {(s.experiment, s.model): s.folder for s in sections}

    def link(experiment: str, model: str) -> str:
        folder = folders.get((experiment, model))
        report = folder / "report.md" if folder else None
        return f"[{folder.name}]({rel(report)})" if report and report.exists() else experiment

    models, per_model = by_model(rows)
    lines = ["# Claims report: what the articles say, what this bench measured", "",
             INTRO, "", f"**{tally(rows)}.**", "", *quick_note(sections), *stale_note(sections),
             "## Verdicts per model", "",
             f"One row per claim, one verdict column per model that has results; *held on* names the "
             f"models where it was supported (all: every model that ran it); **differs** marks a "
             f"claim whose verdict is not the same on every model that ran it "
             f"({sum(differs(v) for _, _, v in per_model)} of {len(per_model)}). The numbers behind "
             f"each verdict follow in the next table.", "",
             "| topic | claim | experiment | " + " | ".join(models) + " | held on | differs |",
             "|---|---|---|" + "---|" * len(models) + "---|---|"]
    lines += [f"| {topic} | {_cell(c.text)} | {link(c.experiment, models[0])} | "
              + " | ".join(v[m] for m in models)
              + f" | {held_on(v)} | {'**differs**' if differs(v) else ''} |"
              for topic, c, v in per_model]
    lines += ["", "## Every claim, measured", "",
              "| topic | claim | experiment | model | measured (95% CI) | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {topic} | {_cell(c.text)} | {link(c.experiment, model)} | {model} | {_cell(c.measured)} | "
              f"**{c.shown}** |" for topic, c, model in rows]
    for section in sections:
        lines += ["", f"## {_title(section)}", ""]
        if not section.claims:
            lines.append(f"Not run: no saved results in `{section.experiment}/` (`make {section.experiment}`).")
            continue
        if section.stale:
            lines += [f"**Stale:** {section.stale}.", ""]
        lines += [f"Details: {link(section.experiment, section.model)}.", "",
                  "| claim | measured | verdict | rule |", "|---|---|---|---|"]
        lines += [f"| {_cell(c.text)} | {_cell(c.measured)} | **{c.shown}** | {_cell(c.rule)} |"
                  for c in section.claims]
        lines += [f"\n![{p.stem}]({rel(p)})" for p in section.plots]
    return "\n".join(lines) + "\n"


def stale_note(sections: list[Section]) -> list[str]:
    stale = [_title(s) for s in sections if s.stale and s.claims]
    if not stale:
        return []
    return [f"**Made with an older pocket model, to be rerun:** {', '.join(stale)}. Their verdicts "
            "describe that model, not the current one.", ""]


def _verdict_html(verdict: str) -> str:
    return f'<td class="v" style="color:{COLOURS[base_verdict(verdict)]}">{html.escape(verdict)}</td>'


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def to_html(rows, sections: list[Section]) -> str:
    e = html.escape
    models, per_model = by_model(rows)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Claims report</title>",
             f"<style>{CSS}</style></head><body>",
             "<h1>Claims report: what the articles say, what this bench measured</h1>",
             f"<p>{e(INTRO)}</p><p><b>{e(tally(rows))}.</b></p>",
             *[f"<p>{e(line.replace('**', ''))}</p>" for line in (quick_note(sections) + stale_note(sections))
               if line],
             "<h2>Verdicts per model</h2><table><tr><th>topic</th><th>claim</th>"
             + "".join(f"<th>{e(m)}</th>" for m in models) + "<th>held on</th><th>differs</th></tr>"]
    parts += [f"<tr><td>{e(t)}</td><td>{e(c.text)}</td>" + "".join(_verdict_html(v[m]) for m in models)
              + f"<td>{e(held_on(v))}</td><td>{'<b>differs</b>' if differs(v) else ''}</td></tr>"
              for t, c, v in per_model]
    parts += ["</table><h2>Every claim, measured</h2>",
              "<table><tr><th>topic</th><th>claim</th><th>experiment</th><th>model</th>"
              "<th>measured (95% CI)</th><th>verdict</th></tr>"]
    parts += [f"<tr><td>{e(t)}</td><td>{e(c.text)}</td><td><a href='#{e(c.experiment)}-{e(m)}'>"
              f"{e(c.experiment)}</a></td><td>{e(m)}</td><td>{e(c.measured)}</td>{_verdict_html(c.shown)}</tr>"
              for t, c, m in rows]
    parts.append("</table>")
    for section in sections:
        parts.append(f"<h2 id='{e(section.experiment)}-{e(section.model)}'>{e(_title(section))}</h2>")
        if not section.claims:
            parts.append(f"<p>Not run: no saved results (run <code>make {e(section.experiment)}</code>).</p>")
            continue
        if section.stale:
            parts.append(f"<p><b>Stale:</b> {e(section.stale.replace('`', ''))}.</p>")
        parts.append("<table><tr><th>claim</th><th>measured</th><th>verdict</th><th>rule</th></tr>")
        parts += [f"<tr><td>{e(c.text)}</td><td>{e(c.measured)}</td>{_verdict_html(c.shown)}"
                  f"<td>{e(c.rule)}</td></tr>" for c in section.claims]
        parts.append("</table>")
        parts += [_img(p) for p in section.plots if p.exists()]
    return "\n".join(parts) + "\n</body></html>\n"


def build_report(results: Path, out: Path) -> tuple[Path, Path, str]:
    from bench.io import write_text

    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = gather(results)
    rows = ordered(sections)
    md = write_text(markdown(rows, sections, results, out), out / "report.md")
    page = write_text(to_html(rows, sections), out / "report.html")
    return md, page, tally(rows)

