"""The slither step (./scripts/slither, run by ./scripts/test) leaves out only reviewed false positives: every
exclusion in slither.config.json and every inline suppression in the contracts is justified in
contracts/README.md, and slither is pinned."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _readme_rows() -> str:
    text = (REPO_ROOT / "contracts" / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Slither"):]


def test_every_excluded_detector_and_filtered_path_is_justified() -> None:
    config = json.loads((REPO_ROOT / "slither.config.json").read_text(encoding="utf-8"))
    assert config["fail_on"] == "pedantic"  # any finding left fails the step
    rows = _readme_rows()
    excluded = [d for d in config.get("detectors_to_exclude", "").split(",") if d]
    assert excluded, "nothing excluded: drop this test's README check instead"
    for detector in excluded:
        assert re.search(rf"^\| `slither\.config\.json` `detectors_to_exclude` \| `{re.escape(detector)}` \| .{{40,}}",
                         rows, re.MULTILINE), f"detector {detector} is excluded without a justification"
    for path in config["filter_paths"].split(","):
        assert f"`{path}`" in rows, f"filtered path {path} is not justified"


def test_every_inline_suppression_is_justified() -> None:
    rows = _readme_rows()
    found = []
    for source in sorted((REPO_ROOT / "contracts").glob("*.sol")):
        for line in source.read_text(encoding="utf-8").splitlines():
            match = re.search(r"slither-disable-(?:next-line|line|start)\s+([\w,-]+)", line)
            if match:
                found.append((source.name, match.group(1)))
    for _, detectors in found:
        for detector in detectors.split(","):
            assert f"slither-disable-next-line {detector}" in rows, f"inline suppression of {detector} not justified"
    assert len(found) == rows.count("slither-disable-next-line"), "README lists a suppression the sources lack"


def test_slither_is_pinned_and_run_by_the_test_script() -> None:
    pins = (REPO_ROOT / "requirements-slither.txt").read_text(encoding="utf-8").splitlines()
    assert "slither-analyzer==0.11.6" in pins
    steps = (REPO_ROOT / "scripts" / "test").read_text(encoding="utf-8").splitlines()
    assert "./scripts/slither" in steps
    assert steps.index("./scripts/slither") < steps.index('exec python -m pytest "$@"')
