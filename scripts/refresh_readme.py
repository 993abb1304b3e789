"""Copy the latest tables from results/ into README.md between marker comments.

`<!-- table:EXP -->` ... `<!-- /table -->` gets the first Markdown table of results/EXP/report.md
(EXP may name another model's folder: `smollm2-135m/accuracy`);
`<!-- table:claims -->` gets the top table of results/report.md, the verdicts per model (run
`make report` first).
Run: .venv/bin/python scripts/refresh_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table:([\w/.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


def first_table(report: Path) -> str:
    lines, out = report.read_text().splitlines(), []
    for line in lines:
        if line.startswith("|"):
            out.append(line)
        elif out:
            break
    if not out:
        raise SystemExit(f"{report}: no Markdown table found")
    return "\n".join(out) + "\n"


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()

    def fill(m: re.Match) -> str:
        name = m.group(2)
        report = ROOT / "results" / ("report.md" if name == "claims" else f"{name}/report.md")
        if not report.exists():
            print(f"skip {name}: {report} missing", file=sys.stderr)
            return m.group(0)
        table = first_table(report)
        if name == "claims":   # the report's links are relative to results/, the README's to the root
            table = re.sub(r"\]\((?!https?:|results/)", "](results/", table)
        return m.group(1) + table + m.group(4)

    readme.write_text(BLOCK.sub(fill, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
