"""The audit report a person reads and an auditor signs: metadata, verdict, findings, the task, the timeline,
rounds with their full digests, CIDs, Merkle roots, evidence and transactions, contributions, participants, gas and
its cost at a stated price, the global model's evaluation, governance, incentives, privacy and plots; each section is
a ``<section id=...>`` (metadata, verdict, findings, task, timeline, rounds, contributions, participants, gas,
evaluation, governance, incentives, privacy, plots), and a row a finding concerns is highlighted
(``tr.finding-<severity>``) and names the finding's kind, severity and responsible party."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from fedchain.audit.findings import AuditReport
from fedchain.audit.report import RoundEvaluation

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
code { font-size: 0.85em; word-break: break-all; }
td code { display: inline-block; width: max-content; max-width: 43ch; }
td.detail { overflow-wrap: anywhere; min-width: 18em; }
table.kv td code { max-width: none; }
img { max-width: 48%; margin-right: 1%; border: 1px solid #eee; }
tr.finding-error { background: #fbe3e3; } tr.finding-handled { background: #fff4d6; } tr.finding-warning { background: #eef3fb; }
.flag { font-size: 0.85em; display: block; margin-top: 0.2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
</style></head><body>
<h1>Federation audit</h1>
<section id="metadata"><h2>Report</h2>
<dl class="meta">
<dt>fedchain version</dt><dd>{{ meta.fedchain_version }}</dd>
<dt>Chain id</dt><dd>{{ meta.chain_id }}</dd>
<dt>Contract</dt><dd><code>{{ meta.contract }}</code></dd>
<dt>Blocks audited</dt><dd>{{ meta.from_block }} to {{ "-" if meta.to_block is none else meta.to_block }} (the last event read)</dd>
<dt>RPC endpoint</dt><dd><code>{{ meta.rpc_url or "-" }}</code></dd>
<dt>Blob store</dt><dd><code>{{ meta.store or "-" }}</code></dd>
<dt>Generated at</dt><dd>{{ meta.generated_at }}</dd>
<dt>Rounds checked</dt><dd>{{ rounds_checked|join(", ") or "none" }} (replay took {{ "%.2f"|format(wall_time_s) }} s)</dd>
<dt>Gas price stated</dt><dd>{{ meta.gas_price_gwei }} gwei{% if not meta.gas_price_stated %} (the default; pass --gas-price-gwei){% endif %}</dd>
</dl></section>
<section id="verdict">
<h2 class="{{ 'ok' if ok else 'bad' }}">{% if verdict == "clean" %}Clean: every round reproduces bit for bit.{% elif verdict == "participant_misconduct" %}Every round stands: {{ findings|length }} finding(s) of participant misconduct, each handled by the aggregator.{% else %}{{ findings|length }} finding(s){% endif %}
(exit code {{ exit_code }})</h2>
{% if responsible %}<p>Responsible: {% for who, n in responsible.items() %}<code>{{ who }}</code> {{ n }}{% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
</section>
<section id="findings"><h2>Findings</h2>
{% if findings %}
<table><tr><th>Round</th><th>Severity</th><th>Responsible</th><th>Participant</th><th>Kind</th><th>Detail</th></tr>
{% for f in findings %}<tr class="finding-{{ f.severity }}"><td>{{ f.round or "-" }}</td><td class="{{ 'bad' if f.severity == 'error' else 'ok' }}">{{ f.severity }}</td>
<td>{{ f.responsible }}{% if f.responsible_address %} <code>{{ f.responsible_address }}</code>{% endif %}</td>
<td><code>{{ f.participant or "-" }}</code></td><td><b>{{ f.kind }}</b></td><td class="detail">{{ f.detail }}</td></tr>
{% endfor %}</table>
{% else %}<p class="ok">No finding.</p>{% endif %}
</section>
{% macro flagged(fs, who="") %}{% for f in fs %}<span class="flag {{ 'bad' if f.severity == 'error' else '' }}">&#9888; {{ f.kind }} ({{ f.severity }}; responsible: {{ f.responsible }}{% if f.responsible_address and f.responsible_address|lower != who|lower %} <code>{{ f.responsible_address }}</code>{% endif %}{% if f.participant and f.participant|lower != who|lower %}; participant <code>{{ f.participant }}</code>{% endif %})</span>{% endfor %}{% endmacro %}
{% macro rowclass(fs) %}{% if fs %} class="finding-{{ worst(fs) }}"{% endif %}{% endmacro %}
<section id="task"><h2>Task</h2>
{% for t in tasks %}<table class="kv"><tr><th colspan="2">Task version {{ t.version }}: configured by <code>{{ t.configured_by }}</code> at block {{ t.block }}, tx <code>{{ t.tx_hash }}</code></th></tr>
<tr><td>Document CID</td><td><code>{{ t.config_cid }}</code></td></tr>
<tr><td>Model spec digest</td><td><code>{{ t.model_spec_digest }}</code></td></tr>
<tr><td>Strategy digest</td><td><code>{{ t.strategy_digest }}</code></td></tr>
<tr><td>Data schema digest</td><td><code>{{ t.data_schema_digest }}</code></td></tr>
<tr><td>Max commit duration</td><td>{{ t.max_commit_duration }} s</td></tr>
{% if t.document %}{% set d = t.document %}
<tr><td>Dataset</td><td>{{ d.dataset }}{% if d.schema_features %} ({{ d.schema_features }} features){% endif %}</td></tr>
<tr><td>Strategy</td><td>{{ d.strategy }} {% for k, v in d.strategy_params.items() %}<code>{{ k }}={{ v }}</code> {% endfor %}</td></tr>
<tr><td>Robust rules</td><td>{% for r in d.robust %}<code>{{ r.name if r.name is defined else r }}{% if r.params is defined %}{% for k, v in r.params.items() %} {{ k }}={{ v }}{% endfor %}{% endif %}</code><br>{% else %}none{% endfor %}</td></tr>
<tr><td>Min updates</td><td>{{ d.min_updates }}</td></tr>
<tr><td>Commit / reveal duration</td><td>{{ d.commit_duration }} s / {{ d.reveal_duration }} s</td></tr>
<tr><td>Seed</td><td>{{ d.seed }}</td></tr>
{% if d.code_version %}<tr><td>Training code version</td><td><code>{{ d.code_version }}</code></td></tr>{% endif %}
<tr><td>Model</td><td><code>{{ d.model|tojson }}</code></td></tr>
{% if d.privacy %}<tr><td>Privacy</td><td><code>{{ d.privacy|tojson }}</code></td></tr>{% endif %}
{% if d.secagg %}<tr><td>Secure aggregation</td><td><code>{{ d.secagg|tojson }}</code></td></tr>{% endif %}
{% else %}<tr><td colspan="2" class="bad">The task document is missing or does not match its digests (see the findings).</td></tr>{% endif %}
</table>{% else %}<p>No task version audited.</p>{% endfor %}
</section>
<section id="timeline"><h2>Timeline</h2>
<table><tr><th>Block</th><th>Event</th><th>Round</th><th>By</th><th>Participant</th><th>Detail</th><th>Gas</th><th>Transaction</th></tr>
{% for e in timeline %}{% set fs = flags.get((e.round or 0)|string ~ ':' ~ (e.participant or '')|lower, []) if e.participant else [] %}<tr{{ rowclass(fs) }}><td>{{ e.block }}</td><td>{{ e.event|replace("_", " ") }}</td><td>{{ e.round or "-" }}</td>
<td><code>{{ e.actor }}</code></td><td><code>{{ e.participant or "-" }}</code></td><td class="detail">{{ e.detail }}</td><td>{{ "-" if e.gas is none else e.gas }}</td><td><code>{{ e.tx_hash }}</code></td></tr>
{% endfor %}</table>
</section>
<section id="rounds"><h2>Rounds</h2>
<table><tr><th>Round</th><th>Status</th><th>Task</th><th>Committed</th><th>Included</th><th>Rejected (rule: reason)</th><th>Samples</th>
<th>Model digest / CID</th><th>Gas (open / commits / finalise)</th><th>Mean client loss</th>
{% set any_secure = rounds|selectattr("secure")|list or rounds|selectattr("metrics.secagg_survivors", "defined")|list %}{% if any_secure %}<th>Secure aggregation: survivors / dropped / revealers</th>{% endif %}<th>Findings</th></tr>
{% for r in rounds %}{% set fs = flags.get(r.round|string ~ ':', []) %}<tr{{ rowclass(fs) }}><td>{{ r.round }}</td><td>{{ r.status }}{% if r.close_reason %}: {{ r.close_reason }}{% endif %}</td>
<td>v{{ r.task_version }}</td><td>{{ r.committed|length }}</td><td>{{ r.included|length }}</td>
<td class="detail">{% for x in r.rejected %}<code>{{ x.participant }}</code> <b>{{ x.rule }}</b>: {{ x.reason }}<br>{% endfor %}</td>
<td>{{ r.num_samples }}</td><td><code>{{ r.model_digest or "-" }}</code><br><code>{{ r.model_cid or "-" }}</code></td>
<td>{{ r.gas.get("open", "-") }} / {{ r.gas.get("commit_total", "-") }} / {{ r.gas.get("finalize", r.gas.get("close", "-")) }}</td>
<td>{{ "%.4f"|format(r.metrics.mean_client_loss) if r.metrics.mean_client_loss is defined else "-" }}</td>
{% if any_secure %}<td>{% if r.metrics.secagg_survivors is defined %}{{ r.metrics.secagg_survivors|int }} / {{ r.metrics.secagg_dropped|int }} / {{ r.metrics.secagg_revealers|int }}{% else %}-{% endif %}</td>{% endif %}
<td class="{{ 'ok' if r.findings == 0 else 'bad' }}">{{ r.findings }}{{ flagged(fs) }}</td></tr>
{% endfor %}</table>
{% for r in rounds %}<table class="kv" id="round-{{ r.round }}"><tr><th colspan="2">Round {{ r.round }} on chain</th></tr>
<tr><td>Base model digest</td><td><code>{{ r.base_model_digest }}</code></td></tr>
{% if r.chain %}<tr><td>Base model CID</td><td><code>{{ r.chain.base_model_cid }}</code></td></tr>
<tr><td>Opened</td><td>by <code>{{ r.chain.opened_by }}</code> at block {{ r.chain.open_block }}, tx <code>{{ r.chain.open_tx }}</code>; min {{ r.chain.min_updates }} updates, deadline {{ r.chain.deadline }}</td></tr>
{% if r.chain.end_tx %}<tr><td>{{ "Finalised" if r.status == "finalized" else "Closed" }}</td><td>by <code>{{ r.chain.ended_by }}</code> at block {{ r.chain.end_block }}, tx <code>{{ r.chain.end_tx }}</code></td></tr>{% endif %}
{% if r.chain.merkle_root %}<tr><td>Merkle root (included updates)</td><td><code>{{ r.chain.merkle_root }}</code></td></tr>
<tr><td>Aggregation digest</td><td><code>{{ r.chain.aggregation_digest }}</code></td></tr>
<tr><td>Evidence digest / CID</td><td><code>{{ r.chain.evidence_digest }}</code><br><code>{{ r.chain.evidence_cid }}</code></td></tr>{% endif %}{% endif %}
<tr><td>Model digest / CID</td><td><code>{{ r.model_digest or "-" }}</code><br><code>{{ r.model_cid or "-" }}</code></td></tr>
</table>{% endfor %}
</section>
<section id="contributions"><h2>Contributions</h2>
<table><tr><th>Participant</th><th>Organisation</th><th>Committed</th><th>Included</th><th>Rejected</th><th>Samples included</th><th>Mean weight</th><th>Mean update norm</th></tr>
{% for c in contributions %}{% set fs = pflags.get(c.participant|lower, []) %}<tr{{ rowclass(fs) }}><td><code>{{ c.participant }}</code>{{ flagged(fs, c.participant) }}</td><td>{{ c.organisation }}</td><td>{{ c.committed }}</td><td>{{ c.included }}</td>
<td>{{ c.rejected }}{% for x in c.rejections %}<br>round {{ x.round }} <b>{{ x.rule }}</b>: {{ x.reason }}{% endfor %}</td><td>{{ c.samples_included }}</td>
<td>{{ "-" if c.mean_weight is none else "%.4f"|format(c.mean_weight) }}</td>
<td>{{ ("%.4f"|format(c.mean_update_norm)) if c.mean_update_norm is not none else ("hidden (secure aggregation)" if c.secure_rounds else "-") }}</td></tr>
{% endfor %}</table>
<table><tr><th>Round</th><th>Participant</th><th>Status</th><th>Samples</th><th>Weight</th><th>Update norm</th><th>Update digest / CID</th><th>Commit tx (block)</th></tr>
{% for r in rounds %}{% for c in r.contributions %}{% set fs = flags.get(r.round|string ~ ':' ~ c.participant|lower, []) %}<tr{{ rowclass(fs) }}><td>{{ r.round }}</td><td><code>{{ c.participant }}</code>{{ flagged(fs, c.participant) }}</td>
<td>{{ c.status }}{% if c.rule %}: <b>{{ c.rule }}</b>: {{ c.reason }}{% endif %}</td><td>{{ c.samples }}</td>
<td>{{ "-" if c.weight is none else "%.4f"|format(c.weight) }}</td><td>{{ "%.4f"|format(c.update_norm) if c.update_norm is not none else (c.norm_note or "-") }}</td>
<td><code>{{ c.update_digest }}</code><br><code>{{ c.cid }}</code></td><td><code>{{ c.tx_hash }}</code> ({{ c.block }})</td></tr>
{% endfor %}{% endfor %}</table>
</section>
<section id="participants"><h2>Participants</h2>
<table><tr><th>Address</th><th>Organisation</th><th>Industry</th><th>Status</th><th>Registered at block</th><th>Commits</th>
<th>Samples declared / approved</th></tr>
{% for p in participants %}{% set fs = pflags.get(p.address|lower, []) %}<tr{{ rowclass(fs) }}><td><code>{{ p.address }}</code>{{ flagged(fs, p.address) }}</td><td>{{ p.organisation }}</td><td>{{ p.industry }}</td>
<td>{{ p.status }}</td><td>{{ p.registered_block }}</td><td>{{ p.commits }}</td>
<td>{{ p.declared_samples }} / {{ "-" if p.approved_samples is none else p.approved_samples }}</td></tr>
{% endfor %}</table>
</section>
<section id="gas"><h2>Gas</h2>
<p>Costs at {{ gas.price_gwei }} gwei per gas{% if not gas.price_stated %} (the default; pass <code>--gas-price-gwei</code>){% endif %}.</p>
<table><tr><th>Transactions</th><th>Gas</th><th>Cost (ETH)</th></tr>
{% for k, v in gas.by_kind.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td><td>{{ gas.by_kind_cost_eth[k] }}</td></tr>{% endfor %}
<tr><th>Total</th><th>{{ gas.total }}</th><th>{{ gas.cost_eth }}</th></tr></table>
</section>
<section id="evaluation"><h2>Global model on the test set</h2>
{% if evaluation %}<table><tr><th>Round</th><th>Accuracy</th><th>Loss</th></tr>
{% for e in evaluation %}<tr><td>{{ e.round }}</td><td>{{ "-" if e.accuracy is none else "%.4f"|format(e.accuracy) }}</td><td>{{ "-" if e.loss is none else "%.4f"|format(e.loss) }}</td></tr>{% endfor %}
</table>{% else %}<p>Not evaluated: the audit has no test set (a caller with one, such as <code>fedchain simulate</code>, adds it).</p>{% endif %}
</section>
{% if governance %}<section id="governance"><h2>Governance</h2>
<p>{% if governance.mode == "governed" %}Governed by the members: governor <code>{{ governance.governor }}</code>, timelock <code>{{ governance.timelock }}</code>, membership token <code>{{ governance.membership }}</code>.{% elif governance.mode == "eoa" %}No governance: the admin is an EOA, every admin action is one key's.{% else %}Admin actions not checked against proposals (the audit had no governance records of this deployment).{% endif %}</p>
{% if governance.admin_actions %}<table><tr><th>Block</th><th>Admin action</th><th>By</th><th>Proposal</th><th>For / against / abstain</th><th>Quorum</th><th>Executed at block</th><th>Verdict</th></tr>
{% for a in governance.admin_actions %}<tr><td>{{ a.block }}</td><td>{{ a.detail }}</td><td><code>{{ a.actor }}</code></td>
<td>{% if a.proposal_id %}<code>{{ a.proposal_id }}</code>{% else %}-{% endif %}</td>
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
<td>{% for a in t.attesters %}<code>{{ a.participant }}</code> {{ "ok" if a.ok else "negative" }}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% endif %}
{% if governance.disputes %}<h3>Disputes</h3><table><tr><th>Round</th><th>Block</th><th>Proposal</th><th>Accused</th><th>Reason</th><th>Outcome</th><th>Findings blob</th></tr>
{% for d in governance.disputes %}<tr><td>{{ d.round }}</td><td>{{ d.block }}</td><td>{% if d.proposal_id %}<code>{{ d.proposal_id }}</code>{% else %}-{% endif %}</td>
<td><code>{{ d.accused }}</code></td><td>{{ d.reason }}</td>
<td>{% if d.fallback_model_digest %}fell back to <code>{{ d.fallback_model_digest }}</code>{% else %}current model unchanged{% endif %}</td>
<td class="{{ 'ok' if d.findings_check == 'ok' else 'bad' }}"><code>{{ d.findings_cid }}</code>: {{ d.findings_check }}{% if d.cited_kinds %} ({{ d.cited_kinds|join(", ") }}){% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% if governance.built_on_disputed %}<p class="bad">Rounds built on a disputed model: {{ governance.built_on_disputed|join(", ") }}.</p>{% endif %}
{% if governance.contests %}<h3>Exclusion contests</h3><table><tr><th>Round</th><th>Participant</th><th>Blob</th><th>Contested at block</th><th>Answer</th><th>Verdict</th></tr>
{% for c in governance.contests %}<tr><td>{{ c.round }}</td><td><code>{{ c.participant }}</code></td><td><code>{{ c.cid }}</code></td><td>{{ c.block }}</td>
<td>{{ c.answer or "none" }}{% if c.answered_block %} (block {{ c.answered_block }}){% endif %}</td><td>{{ c.verdict }}</td></tr>
{% endfor %}</table>{% endif %}
</section>{% endif %}
{% if incentives %}<section id="incentives"><h2>Incentives</h2>
{% if incentives.rounds %}<table><tr><th>Round</th><th>Rule</th><th>Root</th><th>Total / budget</th><th>Claimed</th><th>Scores blob</th><th>Recomputed</th></tr>
{% for r in incentives.rounds %}<tr><td>{{ r.round }}</td><td>{{ r.rule or "-" }}</td><td><code>{{ r.root }}</code></td>
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
</section>{% endif %}
{% if privacy %}<section id="privacy"><h2>Privacy</h2>
{% if privacy.policies %}<table><tr><th>Task</th><th>Mechanism</th><th>Clip C</th><th>Noise multiplier z</th><th>Sample rate q</th><th>Delta</th><th>Accountant</th><th>Budget (epsilon)</th><th>Min clients m</th><th>Steps per round</th><th>Policy digest</th></tr>
{% for p in privacy.policies %}<tr><td>v{{ p.task_version }}</td><td>{{ p.mechanism }}</td><td>{{ p.clip }}</td><td>{{ p.noise_multiplier }}</td><td>{{ p.sample_rate }}</td>
<td>{{ p.delta }}</td><td>{{ p.accountant }}</td><td>{{ p.epsilon_budget }}</td><td>{{ p.min_clients }}</td><td>{{ p.steps_per_round }}</td><td><code>{{ p.policy_digest }}</code></td></tr>
{% endfor %}</table>{% endif %}
{% if not privacy.complete %}<p>Audit of one round: the epsilon recomputed composes only the rounds this audit saw.</p>{% endif %}
{% if privacy.participants %}<table><tr><th>Participant</th><th>Spent / budget (epsilon)</th><th>Recomputed</th><th>Round: claimed / recomputed</th></tr>
{% for p in privacy.participants %}<tr><td><code>{{ p.participant }}</code></td>
<td class="{{ 'bad' if p.spent > p.budget else 'ok' }}">{{ "%.4f"|format(p.spent_epsilon) }} / {{ "%.4f"|format(p.budget_epsilon) }}</td>
<td class="{{ 'bad' if p.recomputed is none or p.recomputed > p.spent else 'ok' }}">{{ "-" if p.recomputed_epsilon is none else "%.4f"|format(p.recomputed_epsilon) }}</td>
<td>{% for c in p.curve %}{{ c.round }}: <span class="{{ 'bad' if c.recomputed is none or c.recomputed > c.claimed else 'ok' }}">{{ "%.4f"|format(c.claimed_epsilon) }} / {{ "-" if c.recomputed_epsilon is none else "%.4f"|format(c.recomputed_epsilon) }}</span>{% if c.inputs != "update" %} (inputs: {{ c.inputs }}){% endif %}{% if c.noise_check and not c.noise_check.passed %} <span class="bad">no noise share</span>{% endif %}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% else %}<p>No commitment under a privacy policy.</p>{% endif %}
{{ epsilon_svg|safe }}
</section>{% endif %}
{% if plots %}<section id="plots"><h2>Plots</h2>{% for name, data in plots %}<img alt="{{ name }}" src="data:image/png;base64,{{ data }}">{% endfor %}</section>{% endif %}
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
        ax.set_xlabel("round"), ax.set_ylabel("mean local training loss"), ax.set_title("Mean local training loss")
        save(fig, "mean client loss")
    if report.evaluation:
        fig = evaluation_figure(report.evaluation)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out.append(("global model accuracy and loss", base64.b64encode(buf.getvalue()).decode("ascii")))
    return out


def evaluation_figure(evaluation: Sequence[RoundEvaluation]) -> Figure:
    """Test accuracy (left axis) and loss (right axis) of the global model per round, titled and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [e.round for e in evaluation]
    fig, acc_ax = plt.subplots(figsize=(5.5, 3.2))
    loss_ax = acc_ax.twinx()
    acc_line = acc_ax.plot(xs, [math.nan if e.accuracy is None else e.accuracy for e in evaluation], marker="o",
                           color="#1f77b4", label="accuracy")
    loss_line = loss_ax.plot(xs, [math.nan if e.loss is None else e.loss for e in evaluation], marker="s",
                             color="#d62728", label="loss")
    acc_ax.set_xlabel("round")
    acc_ax.set_ylabel("test accuracy", color="#1f77b4")
    loss_ax.set_ylabel("test loss", color="#d62728")
    acc_ax.set_xticks(xs)
    acc_ax.set_title("Global model on the test set")
    acc_ax.legend(acc_line + loss_line, ["accuracy", "loss"], loc="center right")
    fig.tight_layout()
    return fig


def plot_evaluation(evaluation: Sequence[RoundEvaluation], path: Path) -> Path | None:
    """Write :func:`evaluation_figure` as a PNG to ``path`` (nothing when no round was evaluated); return the path."""
    rows = [e for e in evaluation if e.accuracy is not None or e.loss is not None]
    if not rows:
        return None
    import matplotlib.pyplot as plt

    fig = evaluation_figure(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


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
    flags: dict[str, list[dict[str, Any]]] = defaultdict(list)  # "round:participant" (lower-case; "" round-level)
    pflags: dict[str, list[dict[str, Any]]] = defaultdict(list)  # participant (lower-case) -> its findings
    for f in data["findings"]:
        who = (f["participant"] or "").lower()
        flags[f"{f['round']}:{who}"].append(f)
        if who:
            pflags[who].append(f)
    return env.from_string(_TEMPLATE).render(**data, plots=_plots(report), rewards_svg=svg, epsilon_svg=eps_svg,
                                             flags=dict(flags), pflags=dict(pflags), worst=_worst)


def _worst(findings: Sequence[Mapping[str, Any]]) -> str:
    """The most severe severity among ``findings``: the class of a highlighted row."""
    severities = {f["severity"] for f in findings}
    return next((s for s in ("error", "handled", "warning") if s in severities), "warning")


def write_html(report: AuditReport, path: Path) -> Path:
    """Write :func:`render_html` of ``report`` to ``path`` (creating its directory); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
