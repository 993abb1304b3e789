"""A resumed study's manifest counts the runs it resumed from (bench/studies/ledger.py)."""

import json
import os
import time

import pytest

from bench.studies.ledger import LEDGER, Invocation, earlier_invocations


def test_killed_and_failed_runs_are_counted_then_cleared(tmp_path):
    # a run killed 30 s after it started, its last prediction written 20 s in
    start = time.time() - 100
    (tmp_path / LEDGER).parent.mkdir()
    (tmp_path / LEDGER).write_text(json.dumps({"id": "1-1", "start": start}) + "\n")
    log = tmp_path / "predictions" / "rag.jsonl"
    log.parent.mkdir()
    log.write_text("{}\n")
    os.utime(log, (start + 20, start + 20))
    with pytest.raises(RuntimeError):
        with Invocation(tmp_path) as failed:          # a second run fails after its start
            raise RuntimeError("out of memory")
    assert [r["ended"] for r in failed.earlier] == ["killed"]
    assert failed.earlier[0]["seconds"] == pytest.approx(20, abs=0.5)
    with Invocation(tmp_path) as done:
        pass
    assert [r["ended"] for r in done.earlier] == ["killed", "failed"]
    assert done.earlier[1]["seconds"] < 5
    done.clear()
    assert earlier_invocations(tmp_path) == [] and not (tmp_path / LEDGER).exists()


def test_a_torn_ledger_line_is_skipped(tmp_path):
    (tmp_path / LEDGER).parent.mkdir()
    (tmp_path / LEDGER).write_text(json.dumps({"id": "a", "start": time.time() - 5}) + '\n{"id": "b", "st')
    assert [r["ended"] for r in earlier_invocations(tmp_path)] == ["killed"]
