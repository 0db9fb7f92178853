"""The audit report of a secure-aggregation round: each contribution's samples and weight, no update norm (the
aggregator and the auditor see only the sum), and the report says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import escape

from fedchain.audit.html import render_html
from fedchain.audit.report import SECURE_NORM_NOTE
from tests.engine.secure_helpers import SecureRound, make_secure_fed


def test_secure_round_contributions_say_the_updates_are_hidden(chain_env: Any, local_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, local_store, tmp_path, 3)
    opened = fed.aggregator.transport.open_round()
    sr = SecureRound.attach(fed, opened.round_id)
    sr.advertise(range(3))
    sr.commit(range(3))
    sr.unmask(range(3))
    assert fed.aggregator.finalize(sr.round_id).finalized

    report = fed.auditor().audit()

    (summary,) = report.rounds
    assert summary.secure and [c.status for c in summary.contributions] == ["included"] * 3
    assert all(c.update_norm is None and c.norm_note == SECURE_NORM_NOTE for c in summary.contributions)
    assert all(c.weight is not None and c.samples > 0 for c in summary.contributions)
    assert report.to_json()["tasks"][0]["document"]["secagg"] is not None
    assert all(row["mean_update_norm"] is None and row["secure_rounds"] == 1 for row in report.contributions())
    page = render_html(report)
    assert escape(SECURE_NORM_NOTE) in page and "hidden (secure aggregation)" in page and "<th>Secure aggregation" in page
