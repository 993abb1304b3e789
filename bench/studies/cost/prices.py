"""cost, the price model: pure arithmetic on the measured quantities (no model, no files).

  one_off   = (train_s * machine_share + index_build_s) / 3600 * compute_per_hour
              + (adapter_bytes + index_bytes) / 1e9 * storage_per_gb_month * months
  per_query = t_total_s / 3600 * compute_per_hour
              + prompt_tokens / 1e6 * per_1m_prompt_tokens + completion_tokens / 1e6 * per_1m_completion_tokens
  total(q)  = one_off + q * per_query; arms a and b break even at q = (one_off_b - one_off_a) / (per_a - per_b)

machine_share: the share of the machine the adapter's training held (1 when it ran alone; a Ray
task's CPUs over its node's when jobs ran side by side), recorded with the adapter; adapters
trained before it was recorded count as 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from bench.config import ConfigError
from bench.report.tables import mean_ci


@dataclass(frozen=True)
class Prices:
    compute_per_hour: float = 0.0        # $ per hour of the machine that trains, indexes and serves
    per_1m_prompt_tokens: float = 0.0    # $ per million prompt tokens (an API-served model)
    per_1m_completion_tokens: float = 0.0
    storage_per_gb_month: float = 0.0
    months: float = 1.0

    def validate(self, where: str) -> None:
        for key, value in asdict(self).items():
            if value < 0:
                raise ConfigError(f"{where}.{key}: expected >= 0, got {value}")


def one_off_cost(p: Prices, train_seconds: float, index_seconds: float, stored_bytes: float) -> float:
    return ((train_seconds + index_seconds) / 3600 * p.compute_per_hour
            + stored_bytes / 1e9 * p.storage_per_gb_month * p.months)


def per_query_cost(p: Prices, seconds: float, prompt_tokens: float, completion_tokens: float) -> float:
    return (seconds / 3600 * p.compute_per_hour + prompt_tokens / 1e6 * p.per_1m_prompt_tokens
            + completion_tokens / 1e6 * p.per_1m_completion_tokens)


def break_even(one_off_a: float, per_a: float, one_off_b: float, per_b: float) -> float:
    """Queries after which a's total cost equals b's; NaN when the lines never cross ahead."""
    if per_a == per_b:
        return float("nan")
    q = (one_off_b - one_off_a) / (per_a - per_b)
    return q if q > 0 else float("nan")


def measured(table: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, seed): the measured quantities the price model needs (inputs.csv)."""
    per_query = table.groupby(["arm", "seed"], sort=False)[
        ["t_total", "prompt_tokens", "completion_tokens"]].mean().reset_index()
    c = cells.copy()
    for col in ("train_seconds", "index_build_seconds", "adapter_disk_bytes", "index_disk_bytes"):
        c[col] = pd.to_numeric(c[col], errors="coerce").fillna(0.0) if col in c else 0.0
    c["stored_bytes"] = c["adapter_disk_bytes"] + c["index_disk_bytes"]
    share = (pd.to_numeric(c["train_machine_share"], errors="coerce").fillna(1.0)
             if "train_machine_share" in c else 1.0)
    c["train_seconds"] = c["train_seconds"] * share   # machine seconds: what the price applies to
    return per_query.merge(c[["arm", "seed", "train_seconds", "index_build_seconds", "stored_bytes"]],
                           on=["arm", "seed"])


def priced(m: pd.DataFrame, prices: dict[str, Prices]) -> pd.DataFrame:
    rows = []
    for scenario, p in prices.items():
        for _, r in m.iterrows():
            rows.append({"scenario": scenario, "arm": r["arm"], "seed": r["seed"],
                         "one_off_usd": one_off_cost(p, r["train_seconds"], r["index_build_seconds"],
                                                     r["stored_bytes"]),
                         "per_query_usd": per_query_cost(p, r["t_total"], r["prompt_tokens"],
                                                         r["completion_tokens"])})
    return pd.DataFrame(rows)


def price_summary(costs: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: per (scenario, arm) the one-off cost and the cost per 1k queries, mean and
    95% CI over seeds; metric `<scenario>:one_off_usd` / `<scenario>:per_1k_queries_usd`."""
    rows = []
    for (scenario, arm), g in costs.groupby(["scenario", "arm"], sort=False):
        for metric, scale in (("one_off_usd", 1), ("per_query_usd", 1000)):
            m, lo, hi, n = mean_ci((g[metric] * scale).tolist())
            name = "per_1k_queries_usd" if scale == 1000 else metric
            rows.append({"arm": arm, "metric": f"{scenario}:{name}", "mean": m, "ci_low": lo,
                         "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


def break_even_table(costs: pd.DataFrame) -> pd.DataFrame:
    mean = costs.groupby(["scenario", "arm"], sort=False)[["one_off_usd", "per_query_usd"]].mean()
    rows = []
    for scenario in dict.fromkeys(costs["scenario"]):
        arms = list(dict.fromkeys(costs[costs["scenario"] == scenario]["arm"]))
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                ra, rb = mean.loc[(scenario, a)], mean.loc[(scenario, b)]
                q = break_even(ra["one_off_usd"], ra["per_query_usd"], rb["one_off_usd"], rb["per_query_usd"])
                rows.append({"scenario": scenario, "arm_a": a, "arm_b": b, "break_even_queries": q})
    return pd.DataFrame(rows)
