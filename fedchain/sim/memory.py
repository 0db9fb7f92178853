"""An experiment in memory: the round engine over the in-memory transport, with the global
model evaluated on the test set after every round."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from fedchain.engine.loop import Evaluator, run_rounds
from fedchain.engine.memory import InMemoryTransport, MemoryParticipant
from fedchain.engine.reports import RoundReport, RunReport
from fedchain.fl import attacks
from fedchain.fl.client import configure_torch
from fedchain.fl.datasets import Dataset, subset
from fedchain.fl.models import build_model, evaluate, set_weights
from fedchain.protocol.blobs import GlobalModel
from fedchain.protocol.task import TaskDocument
from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset, partition_clients
from fedchain.types import Address


def participant_address(index: int, seed: int) -> Address:
    """A stable pseudo-address for simulated participant ``index`` (its sort order is seeded)."""
    return Address("0x" + hashlib.sha256(f"fedchain-sim/{seed}/{index}".encode()).hexdigest()[:40])


def test_set_evaluator(doc: TaskDocument, ds: Dataset, *, backdoor_target: int | None = None) -> Evaluator:
    """Scores a global model on ``ds``'s test split: accuracy, loss, AUC (binary tasks) and, when
    ``backdoor_target`` is given, the backdoor's success rate. A model with non-finite weights
    scores NaN."""
    module = build_model(doc.spec(), doc.seed)
    trigger = float(ds.x_train.max())

    def score(model: GlobalModel) -> Mapping[str, float]:
        if not all(np.isfinite(v).all() for v in model.weights.values()):
            return {"accuracy": math.nan, "loss": math.nan}
        set_weights(module, dict(model.weights))
        out = {k: float(v) for k, v in evaluate(module, ds.x_test, ds.y_test).items()}
        if backdoor_target is not None:
            out["backdoor_success"] = attacks.backdoor_success_rate(
                module, ds.x_test, ds.y_test, target=backdoor_target, value=trigger
            )
        return out

    return score


def backdoor_target(cfg: ExperimentConfig) -> int | None:
    """The target class of the experiment's backdoor attackers, if any."""
    for group in cfg.attacks:
        if group.attack.kind == "backdoor":
            return int(group.attack.strength or 0)
    return None


def run_in_memory(
    cfg: ExperimentConfig,
    *,
    dataset: Dataset | None = None,
    on_round: Callable[[RoundReport], None] | None = None,
) -> RunReport:
    """Run ``cfg.rounds`` rounds in this process and evaluate the global model after each one.

    ``dataset`` saves loading it again (it is cut to ``cfg``'s subset limits either way)."""
    configure_torch()
    ds = (subset(dataset, cfg.max_train_samples, cfg.max_test_samples, cfg.seed) if dataset is not None
          else load_task_dataset(cfg))
    doc = build_task(cfg, ds)
    attack_of = cfg.attack_of()
    participants = [
        MemoryParticipant(participant_address(i, cfg.seed), part.x, part.y, attack_of.get(i))
        for i, part in enumerate(partition_clients(cfg, ds))
    ]
    transport = InMemoryTransport(doc, participants)
    report = run_rounds(transport, cfg.rounds, evaluate=test_set_evaluator(doc, ds, backdoor_target=backdoor_target(cfg)),
                        on_round=on_round)
    attackers = tuple(sorted((p.address for p in participants if p.attack is not None), key=str.lower))
    return replace(report, attackers=attackers)
