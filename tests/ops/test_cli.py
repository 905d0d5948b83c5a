"""The ``pot`` command line."""

import json
import subprocess
import sys


def pot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pot_flower.cli", *args], capture_output=True, text=True
    )


def test_simulate_prints_one_json_line_with_the_figures() -> None:
    result = pot(
        "consensus", "simulate", "--validators", "4", "--runs", "4", "--jobs", "1"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "runs",
        "validators",
        "faulty",
        "requests_committed",
        "safety_violations",
        "liveness_failures",
        "view_changes",
        "commit_latency_p50_ms",
        "commit_latency_p99_ms",
    ):
        assert key in summary
    assert (summary["runs"], summary["validators"], summary["faulty"]) == (4, 4, 1)
    assert summary["safety_violations"] == 0 and summary["liveness_failures"] == 0
    assert summary["commit_latency_p50_ms"] > 0


def test_simulate_rejects_unknown_faults_with_a_clear_message() -> None:
    result = pot("consensus", "simulate", "--faults", "drop,meteor", "--runs", "1")
    assert result.returncode == 2
    assert "unknown faults ['meteor']" in result.stderr
