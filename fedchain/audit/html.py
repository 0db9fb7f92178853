"""The audit report a person reads: verdict, findings, per-round table, participants, governance, gas, plots."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from fedchain.audit.findings import AuditReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fedchain audit {{ contract }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.ok { color: #176317; } .bad { color: #a01515; }
code { font-size: 0.85em; }
img { max-width: 48%; margin-right: 1%; border: 1px solid #eee; }
</style></head><body>
<h1>Federation audit</h1>
<p>Contract <code>{{ contract }}</code> on chain {{ chain_id }}; rounds checked: {{ rounds_checked|join(", ") or "none" }};
replay took {{ "%.2f"|format(wall_time_s) }} s.</p>
<h2 class="{{ 'ok' if ok else 'bad' }}">{% if verdict == "clean" %}Clean: every round reproduces bit for bit.{% elif verdict == "participant_misconduct" %}Every round stands: {{ findings|length }} finding(s) of participant misconduct, each handled by the aggregator.{% else %}{{ findings|length }} finding(s){% endif %}
(exit code {{ exit_code }})</h2>
{% if responsible %}<p>Responsible: {% for who, n in responsible.items() %}<code>{{ who }}</code> {{ n }}{% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% if findings %}
<table><tr><th>Round</th><th>Severity</th><th>Responsible</th><th>Participant</th><th>Kind</th><th>Detail</th></tr>
{% for f in findings %}<tr><td>{{ f.round or "-" }}</td><td class="{{ 'bad' if f.severity == 'error' else 'ok' }}">{{ f.severity }}</td>
<td>{{ f.responsible }}{% if f.responsible_address %} <code>{{ f.responsible_address }}</code>{% endif %}</td>
<td><code>{{ f.participant or "-" }}</code></td><td><b>{{ f.kind }}</b></td><td>{{ f.detail }}</td></tr>
{% endfor %}</table>
{% endif %}
<h2>Rounds</h2>
<table><tr><th>Round</th><th>Status</th><th>Task</th><th>Committed</th><th>Included</th><th>Rejected</th><th>Samples</th>
<th>Model digest</th><th>Gas (open / commits / finalise)</th><th>Mean client loss</th>
<th>Secure aggregation: survivors / dropped / revealers</th><th>Findings</th></tr>
{% for r in rounds %}<tr><td>{{ r.round }}</td><td>{{ r.status }}{% if r.close_reason %}: {{ r.close_reason }}{% endif %}</td>
<td>v{{ r.task_version }}</td><td>{{ r.committed|length }}</td><td>{{ r.included|length }}</td>
<td>{% for x in r.rejected %}<code>{{ x.participant[:10] }}</code> {{ x.rule }}<br>{% endfor %}</td>
<td>{{ r.num_samples }}</td><td><code>{{ (r.model_digest or "-")[:18] }}</code></td>
<td>{{ r.gas.get("open", "-") }} / {{ r.gas.get("commit_total", "-") }} / {{ r.gas.get("finalize", r.gas.get("close", "-")) }}</td>
<td>{{ "%.4f"|format(r.metrics.mean_client_loss) if r.metrics.mean_client_loss is defined else "-" }}</td>
<td>{% if r.metrics.secagg_survivors is defined %}{{ r.metrics.secagg_survivors|int }} / {{ r.metrics.secagg_dropped|int }} / {{ r.metrics.secagg_revealers|int }}{% else %}-{% endif %}</td>
<td class="{{ 'ok' if r.findings == 0 else 'bad' }}">{{ r.findings }}</td></tr>
{% endfor %}</table>
<h2>Participants</h2>
<table><tr><th>Address</th><th>Organisation</th><th>Industry</th><th>Status</th><th>Registered at block</th><th>Commits</th>
<th>Samples declared / approved</th></tr>
{% for p in participants %}<tr><td><code>{{ p.address }}</code></td><td>{{ p.organisation }}</td><td>{{ p.industry }}</td>
<td>{{ p.status }}</td><td>{{ p.registered_block }}</td><td>{{ p.commits }}</td>
<td>{{ p.declared_samples }} / {{ "-" if p.approved_samples is none else p.approved_samples }}</td></tr>
{% endfor %}</table>
{% if governance %}<h2>Governance</h2>
<p>{% if governance.mode == "governed" %}Governed by the members: governor <code>{{ governance.governor }}</code>, timelock <code>{{ governance.timelock }}</code>, membership token <code>{{ governance.membership }}</code>.{% elif governance.mode == "eoa" %}No governance: the admin is an EOA, every admin action is one key's.{% else %}Admin actions not checked against proposals (the audit had no governance records of this deployment).{% endif %}</p>
{% if governance.admin_actions %}<table><tr><th>Block</th><th>Admin action</th><th>By</th><th>Proposal</th><th>For / against / abstain</th><th>Quorum</th><th>Executed at block</th><th>Verdict</th></tr>
{% for a in governance.admin_actions %}<tr><td>{{ a.block }}</td><td>{{ a.detail }}</td><td><code>{{ a.actor }}</code></td>
<td>{% if a.proposal_id %}<code>{{ a.proposal_id[:12] }}&hellip;</code>{% else %}-{% endif %}</td>
<td>{% if a.votes %}{{ a.votes["for"] }} / {{ a.votes.against }} / {{ a.votes.abstain }}{% else %}-{% endif %}</td>
<td>{{ "-" if a.quorum is none else a.quorum }}</td><td>{{ a.execution_block or "-" }}</td><td>{{ a.verdict }}</td></tr>
{% endfor %}</table>{% endif %}
{% if governance.role_holders %}<table><tr><th>Role</th><th>Holder</th><th>Contract</th><th>Granted at block</th></tr>
{% for r in governance.role_holders %}<tr><td>{{ r.role }}</td><td><code>{{ r.account }}</code></td>
<td class="{{ 'bad' if r.contract == false and 'AGGREGATOR' not in r.role and 'EXECUTOR' not in r.role else 'ok' }}">{{ "yes" if r.contract else ("no (EOA)" if r.contract == false else "-") }}</td><td>{{ r.granted_block }}</td></tr>
{% endfor %}</table>{% endif %}
{% if governance.attestations|selectattr("policy")|list %}<h3>Attestations</h3><table><tr><th>Round</th><th>Policy</th><th>Included</th><th>Required</th><th>Ok</th><th>Negative</th><th>Attesters</th></tr>
{% for t in governance.attestations if t.policy %}<tr><td>{{ t.round }}</td><td>{{ t.policy }}%</td><td>{{ t.included }}</td><td>{{ t.required }}</td>
<td class="{{ 'ok' if t.ok >= t.required else 'bad' }}">{{ t.ok }}</td><td>{{ t.negative }}</td>
<td>{% for a in t.attesters %}<code>{{ a.participant[:10] }}</code> {{ "ok" if a.ok else "negative" }}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% endif %}
{% if governance.disputes %}<h3>Disputes</h3><table><tr><th>Round</th><th>Block</th><th>Proposal</th><th>Accused</th><th>Reason</th><th>Outcome</th><th>Findings blob</th></tr>
{% for d in governance.disputes %}<tr><td>{{ d.round }}</td><td>{{ d.block }}</td><td>{% if d.proposal_id %}<code>{{ d.proposal_id[:12] }}&hellip;</code>{% else %}-{% endif %}</td>
<td><code>{{ d.accused }}</code></td><td>{{ d.reason }}</td>
<td>{% if d.fallback_model_digest %}fell back to <code>{{ d.fallback_model_digest[:18] }}</code>{% else %}current model unchanged{% endif %}</td>
<td class="{{ 'ok' if d.findings_check == 'ok' else 'bad' }}"><code>{{ d.findings_cid }}</code>: {{ d.findings_check }}{% if d.cited_kinds %} ({{ d.cited_kinds|join(", ") }}){% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% if governance.built_on_disputed %}<p class="bad">Rounds built on a disputed model: {{ governance.built_on_disputed|join(", ") }}.</p>{% endif %}
{% if governance.contests %}<h3>Exclusion contests</h3><table><tr><th>Round</th><th>Participant</th><th>Blob</th><th>Contested at block</th><th>Answer</th><th>Verdict</th></tr>
{% for c in governance.contests %}<tr><td>{{ c.round }}</td><td><code>{{ c.participant }}</code></td><td><code>{{ c.cid }}</code></td><td>{{ c.block }}</td>
<td>{{ c.answer or "none" }}{% if c.answered_block %} (block {{ c.answered_block }}){% endif %}</td><td>{{ c.verdict }}</td></tr>
{% endfor %}</table>{% endif %}
{% endif %}
{% if incentives %}<h2>Incentives</h2>
{% if incentives.rounds %}<table><tr><th>Round</th><th>Rule</th><th>Root</th><th>Total / budget</th><th>Claimed</th><th>Scores blob</th><th>Recomputed</th></tr>
{% for r in incentives.rounds %}<tr><td>{{ r.round }}</td><td>{{ r.rule or "-" }}</td><td><code>{{ r.root[:18] }}</code></td>
<td>{{ r.total }} / {{ r.budget }}</td><td>{{ r.claimed }}</td><td><code>{{ r.scores_cid }}</code></td>
<td class="{{ 'ok' if r.recomputed else 'bad' }}">{{ "yes" if r.recomputed else ("no" if r.recomputed == false else "could not") }}</td></tr>
{% endfor %}</table>{% else %}<p>No rewards published.</p>{% endif %}
{% if incentives.participants %}<table><tr><th>Participant</th><th>Round: score, amount, claimed</th><th>Total owed / claimed</th><th>Deposit history</th></tr>
{% for p in incentives.participants %}<tr><td><code>{{ p.participant }}</code></td>
<td>{% for r in p.rounds %}{{ r.round }}: {{ r.score }}, {{ r.amount }}, {{ "claimed" if r.claimed else "unclaimed" }}<br>{% endfor %}</td>
<td>{{ p.total_amount }} / {{ p.total_claimed }}</td>
<td>{% for d in p.deposit_history %}{{ d.event }} {{ d.amount }} (block {{ d.block }}){% if d.finding_cid %} citing <code>{{ d.finding_cid }}</code>{% endif %}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% endif %}
{% if incentives.slashes %}<table><tr><th>Slashed</th><th>Amount</th><th>By</th><th>Finding</th><th>Justified</th></tr>
{% for x in incentives.slashes %}<tr><td><code>{{ x.participant }}</code></td><td>{{ x.amount }}</td><td><code>{{ x.slashed_by or "-" }}</code></td>
<td><code>{{ x.finding_cid }}</code></td><td class="{{ 'ok' if x.justified else 'bad' }}">{{ "yes" if x.justified else "no" }}: {{ x.detail }}</td></tr>
{% endfor %}</table>{% endif %}
{{ rewards_svg|safe }}
{% endif %}
{% if privacy %}<h2>Privacy</h2>
{% if privacy.policies %}<table><tr><th>Task</th><th>Mechanism</th><th>Clip C</th><th>Noise multiplier z</th><th>Sample rate q</th><th>Delta</th><th>Accountant</th><th>Budget (epsilon)</th><th>Min clients m</th><th>Steps per round</th><th>Policy digest</th></tr>
{% for p in privacy.policies %}<tr><td>v{{ p.task_version }}</td><td>{{ p.mechanism }}</td><td>{{ p.clip }}</td><td>{{ p.noise_multiplier }}</td><td>{{ p.sample_rate }}</td>
<td>{{ p.delta }}</td><td>{{ p.accountant }}</td><td>{{ p.epsilon_budget }}</td><td>{{ p.min_clients }}</td><td>{{ p.steps_per_round }}</td><td><code>{{ p.policy_digest[:18] }}</code></td></tr>
{% endfor %}</table>{% endif %}
{% if not privacy.complete %}<p>Audit of one round: the epsilon recomputed composes only the rounds this audit saw.</p>{% endif %}
{% if privacy.participants %}<table><tr><th>Participant</th><th>Spent / budget (epsilon)</th><th>Recomputed</th><th>Round: claimed / recomputed</th></tr>
{% for p in privacy.participants %}<tr><td><code>{{ p.participant }}</code></td>
<td class="{{ 'bad' if p.spent > p.budget else 'ok' }}">{{ "%.4f"|format(p.spent_epsilon) }} / {{ "%.4f"|format(p.budget_epsilon) }}</td>
<td class="{{ 'bad' if p.recomputed is none or p.recomputed > p.spent else 'ok' }}">{{ "-" if p.recomputed_epsilon is none else "%.4f"|format(p.recomputed_epsilon) }}</td>
<td>{% for c in p.curve %}{{ c.round }}: <span class="{{ 'bad' if c.recomputed is none or c.recomputed > c.claimed else 'ok' }}">{{ "%.4f"|format(c.claimed_epsilon) }} / {{ "-" if c.recomputed_epsilon is none else "%.4f"|format(c.recomputed_epsilon) }}</span>{% if c.inputs != "update" %} (inputs: {{ c.inputs }}){% endif %}{% if c.noise_check and not c.noise_check.passed %} <span class="bad">no noise share</span>{% endif %}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% else %}<p>No commitment under a privacy policy.</p>{% endif %}
{{ epsilon_svg|safe }}
{% endif %}
{% if plots %}<h2>Plots</h2>{% for name, data in plots %}<img alt="{{ name }}" src="data:image/png;base64,{{ data }}">{% endfor %}{% endif %}
</body></html>
"""  # noqa: E501 - the template's lines are the page's lines


def _plots(report: AuditReport) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in report.rounds]
    if not rounds:
        return []
    out: list[tuple[str, str]] = []

    def save(fig: Figure, name: str) -> None:
        for ax in fig.axes:
            ax.set_xticks(rounds)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out.append((name, base64.b64encode(buf.getvalue()).decode("ascii")))

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([r - 0.2 for r in rounds], [len(r.included) for r in report.rounds], width=0.4, label="included")
    ax.bar([r + 0.2 for r in rounds], [len(r.rejected) for r in report.rounds], width=0.4, label="rejected")
    ax.set_xlabel("round"), ax.set_ylabel("updates"), ax.legend(), ax.set_title("Updates per round")
    save(fig, "updates per round")
    if any(r.gas for r in report.rounds):
        fig, ax = plt.subplots(figsize=(5, 3))
        for key in ("open", "commit_total", "finalize"):
            ax.plot(rounds, [r.gas.get(key, 0) for r in report.rounds], marker="o", label=key)
        ax.set_xlabel("round"), ax.set_ylabel("gas"), ax.legend(), ax.set_title("Gas per round")
        save(fig, "gas per round")
    losses = [(r.round, r.metrics["mean_client_loss"]) for r in report.rounds if "mean_client_loss" in r.metrics]
    if losses:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([a for a, _ in losses], [b for _, b in losses], marker="o")
        ax.set_xlabel("round"), ax.set_ylabel("loss"), ax.set_title("Mean local training loss")
        save(fig, "mean client loss")
    return out


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def rewards_svg(cumulative: Mapping[str, Sequence[tuple[int, int]]], width: int = 520, height: int = 260) -> str:
    """An inline SVG line plot of cumulative rewards per participant over the rewarded rounds
    (empty when nothing was rewarded)."""
    return line_svg(cumulative, "Cumulative rewards per participant", width=width, height=height)


def epsilon_svg(curves: Mapping[str, Sequence[tuple[int, float]]], budget: float | None = None, width: int = 520,
                height: int = 260) -> str:
    """An inline SVG line plot of the epsilon each participant claimed, round by round, with the
    budget as a dashed line (empty when no participant committed under a privacy policy)."""
    return line_svg(curves, "Epsilon spent per participant", width=width, height=height, limit=budget,
                    limit_label="budget")


def _tick(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


def line_svg(series_in: Mapping[str, Sequence[tuple[int, float]]], title: str, *, width: int = 520, height: int = 260,
             limit: float | None = None, limit_label: str = "") -> str:
    """An inline SVG line plot of one series per participant over rounds, with an optional
    horizontal ``limit`` line (empty when no series has a point)."""
    series = {who: list(points) for who, points in series_in.items() if points}
    if not series:
        return ""
    rounds = sorted({r for points in series.values() for r, _ in points})
    top = max([v for points in series.values() for _, v in points] + [1] + ([limit] if limit is not None else []))
    left, right, upper, lower = 70, 150, 20, 40
    plot_w, plot_h = width - left - right, height - upper - lower

    def x(r: int) -> float:
        return left + (plot_w * (rounds.index(r) / (len(rounds) - 1)) if len(rounds) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return upper + plot_h * (1 - v / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title.lower())}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="13">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{upper + plot_h}" x2="{left + plot_w}" y2="{upper + plot_h}" stroke="#444"/>',
             f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{upper + plot_h}" stroke="#444"/>',
             f'<text x="{left - 6}" y="{upper + 4}" text-anchor="end">{_tick(top)}</text>',
             f'<text x="{left - 6}" y="{upper + plot_h}" text-anchor="end">0</text>',
             f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">round</text>']
    for r in rounds:
        parts.append(f'<text x="{x(r):.1f}" y="{upper + plot_h + 14}" text-anchor="middle">{r}</text>')
    if limit is not None:
        parts.append(f'<line x1="{left}" y1="{y(limit):.1f}" x2="{left + plot_w}" y2="{y(limit):.1f}" stroke="#a01515" '
                     f'stroke-dasharray="4 3"><title>{html.escape(limit_label)} {_tick(limit)}</title></line>'
                     f'<text x="{left + plot_w + 4}" y="{y(limit) + 4:.1f}" fill="#a01515">'
                     f"{html.escape(limit_label)} {_tick(limit)}</text>")
    for i, (who, points) in enumerate(sorted(series.items(), key=lambda kv: kv[0].lower())):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
                     f"<title>{html.escape(who)}</title></polyline>")
        for r, v in points:
            parts.append(f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{html.escape(who)} '
                         f"round {r}: {_tick(v)}</title></circle>")
        ly = upper + 12 + 14 * i
        parts.append(f'<rect x="{left + plot_w + 10}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{left + plot_w + 24}" y="{ly}">{html.escape(who[:10])}&#8230;</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: AuditReport) -> str:
    """The report as a self-contained HTML page (plots embedded)."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    data = report.to_json()
    svg = rewards_svg(report.incentives.cumulative()) if report.incentives is not None else ""
    privacy = report.privacy
    policy = privacy.policy if privacy is not None else None
    eps_svg = epsilon_svg(privacy.curves(), policy.policy.epsilon_budget if policy is not None else None) \
        if privacy is not None else ""
    return env.from_string(_TEMPLATE).render(**data, plots=_plots(report), rewards_svg=svg, epsilon_svg=eps_svg)


def write_html(report: AuditReport, path: Path) -> Path:
    """Write :func:`render_html` of ``report`` to ``path`` (creating its directory); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
