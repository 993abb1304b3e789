"""Claims: one article claim, the experiment that tests it, what was measured and a verdict.

Every experiment module exposes `claims(results_dir) -> list[Claim]`, computed from the tables it
saved (never from a model), and `redraw(results_dir) -> list[Path]`, which redraws its plots from
those tables. The experiment's own report.md and the claims report (`make report`) both call
them, so a verdict rule lives in exactly one place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive at this model scale"
ONE_SEED_VERDICT = "inconclusive (n=1)"    # one seed: no interval to judge by
NOT_RUN = "not run"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, ONE_SEED_VERDICT, NOT_RUN)
QUICK_MARK = "(quick)"


@dataclass(frozen=True)
class Claim:
    id: str            # short key, e.g. "latency" or "hallucination.gekhman"
    text: str          # the claim as the articles state it
    experiment: str    # results folder (and make target) that tests it
    measured: str      # the numbers, with 95% CIs where there are seeds
    verdict: str       # one of VERDICTS
    rule: str          # how the verdict follows from the numbers
    quick: bool = False   # measured by a --quick run (make quick): a small setting, a first look

    @property
    def shown(self) -> str:
        """The verdict as reports print it: marked when it comes from a quick run."""
        return f"{self.verdict} {QUICK_MARK}" if self.quick else self.verdict

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.id}: verdict {self.verdict!r} is not one of {VERDICTS}")


ONE_SEED = "(one seed: no interval)"


def interval_text(mean: float, lo: float, hi: float, scale: float = 1.0, spec: str = ".1f",
                  unit: str = "") -> str:
    """'67.6 [64.1, 71.0]': the numbers scaled and written with `spec`; 'n/a' without a mean,
    and the mean alone, marked, when there is no interval (one seed)."""
    if math.isnan(mean):
        return "n/a"
    head = f"{mean * scale:{spec}}{unit}"
    if math.isnan(lo) or math.isnan(hi):
        return f"{head} {ONE_SEED}"
    return f"{head} [{lo * scale:{spec}}, {hi * scale:{spec}}]"


def fmt_ci(mean: float, lo: float, hi: float, scale: float = 100.0, unit: str = "") -> str:
    """'67.6 [64.1, 71.0]' (scale=100 turns rates into percentage points)."""
    return interval_text(mean, lo, hi, scale, ".1f", unit)


def interval_verdict(lo: float, hi: float, threshold: float = 0.0) -> str:
    """The usual rule: the 95% CI of (claimed-better minus claimed-worse) lies above the
    threshold -> supported; below minus the threshold -> contradicted; else inconclusive. No
    interval (one seed) -> "inconclusive (n=1)"."""
    if math.isnan(lo) or math.isnan(hi):
        return ONE_SEED_VERDICT
    if lo > threshold:
        return SUPPORTED
    if hi < -threshold:
        return CONTRADICTED
    return INCONCLUSIVE


def markdown_rows(claims: list[Claim]) -> str:
    """The claims as a Markdown table (used in each report.md and in the claims report)."""
    lines = ["| claim | measured | verdict | rule |", "| --- | --- | --- | --- |"]
    for c in claims:
        lines.append(f"| {c.text} | {c.measured} | **{c.verdict}** | {c.rule} |")
    return "\n".join(lines)


def not_run(claim_id: str, text: str, experiment: str) -> Claim:
    return Claim(claim_id, text, experiment, f"results/{experiment}/ has no saved tables",
                 NOT_RUN, f"run `make {experiment}`")


def results_present(results_dir: Path, *files: str) -> bool:
    return all((Path(results_dir) / f).exists() for f in files)


def range_verdict(lo: float, hi: float, low: float, high: float) -> str:
    """A quoted range [low, high]: the 95% CI inside it -> supported; entirely outside it ->
    contradicted; overlapping an edge -> inconclusive; no interval (one seed) -> inconclusive (n=1)."""
    if math.isnan(lo) or math.isnan(hi):
        return ONE_SEED_VERDICT
    if low <= lo and hi <= high:
        return SUPPORTED
    if hi < low or lo > high:
        return CONTRADICTED
    return INCONCLUSIVE


def all_of(verdicts) -> str:
    """A claim made of several checks: all supported -> supported; any contradicted ->
    contradicted; none run -> not run; otherwise inconclusive."""
    verdicts = list(verdicts)
    if not verdicts or all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return ONE_SEED_VERDICT if ONE_SEED_VERDICT in verdicts else INCONCLUSIVE


def read_manifest(results_dir: Path) -> dict:
    path = Path(results_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def experiment_config(results_dir: Path) -> dict:
    """The experiment config saved in manifest.json: either the whole config or, for studies,
    its {"experiment": ...} part."""
    config = read_manifest(results_dir).get("config") or {}
    return config.get("experiment") or config


def arm_names(results_dir: Path) -> dict[str, str]:
    """{arm kind: arm name} from the config saved in manifest.json (first arm of each kind);
    the config is either the experiment itself or {"experiment": ..., "study": ...}."""
    config = experiment_config(results_dir)
    arms = config.get("arms") or []
    names: dict[str, str] = {}
    for arm in arms:
        names.setdefault(arm["arm"], arm["name"])
    return names
