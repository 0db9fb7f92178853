#!/usr/bin/env python
"""The Flower side of ``scripts/bench_vs_flower.py``: run in the benchmark's own Flower virtualenv
(``flwr[simulation]``, torch, fedchain installed without its dependencies), never in fedchain's.

Reads a job file written by the benchmark (the task document, one data file per client with the
client's address, the test split, rounds and cores), runs Flower's simulation engine (Ray backend,
``FedAvg`` with ``fraction_fit=1``, one ``NumPyClient`` per partition whose ``fit()`` trains with
fedchain's own :func:`fedchain.protocol.training.train_participant` on that partition, the global
model scored on the test split after each round by the server), and prints one JSON document:
the per-round wall times (``configure_fit`` of a round to the end of its server-side evaluation,
the same span as a fedchain round: open to the evaluated global model), the evaluations, the final
weights' digest and the time to the first round.

    .venv-flower/bin/python scripts/bench_vs_flower_driver.py JOB.json
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, NDArrays, Scalar, ndarrays_to_parameters
    from flwr.server import ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from fedchain.fl.models import build_model, evaluate, set_weights
    from fedchain.fl.schema import load_client_data
    from fedchain.protocol.blobs import GlobalModel, decode_global, initial_global
    from fedchain.protocol.task import TaskDocument
    from fedchain.protocol.training import train_participant, training_seed
    from fedchain.types import ZERO_DIGEST, Address, RoundId

    doc = TaskDocument.from_bytes(Path(job["task"]).read_bytes())
    clients: list[dict[str, str]] = job["clients"]
    rounds = int(job["rounds"])
    cores = int(job["cores"])
    initial = decode_global(initial_global(doc.spec(), doc.seed))
    names = sorted(initial.weights)  # Flower carries a list of arrays: fedchain's tensor names, sorted
    with np.load(job["test"], allow_pickle=False) as test:
        x_test, y_test = test["x"], test["y"]

    class Client(NumPyClient):  # type: ignore[misc]
        """One partition: fit() is fedchain's local training step on it."""

        def __init__(self, index: int) -> None:
            self.address = Address(clients[index]["address"])
            self.x, self.y = load_client_data(clients[index]["data"], doc.schema())

        def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
            rid = int(config["round"])
            base = GlobalModel(RoundId(rid - 1), ZERO_DIGEST, dict(zip(names, parameters, strict=True)), {}, 0)
            update, _, _ = train_participant(
                doc, round_id=RoundId(rid), participant=self.address, base=base, base_model_digest=ZERO_DIGEST,
                x=self.x, y=self.y, seed=training_seed(doc.seed, rid, self.address), client_state=None,
            )
            delta = update.model_tensors  # a DELTA update: the new local weights are base + delta
            return [(base.weights[k] + delta[k]).astype(np.float32) for k in names], int(update.num_samples), {}

    def client_fn(context: Context) -> Any:
        torch.set_num_threads(1)
        return Client(int(context.node_config["partition-id"])).to_client()

    started: dict[int, float] = {}
    ended: dict[int, float] = {}
    evaluations: dict[int, dict[str, float]] = {}
    final: list[NDArrays] = []
    module = build_model(doc.spec(), doc.seed)

    def score(server_round: int, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[float, dict[str, Scalar]]:
        set_weights(module, dict(zip(names, parameters, strict=True)))
        out = {k: float(v) for k, v in evaluate(module, x_test, y_test).items()}
        evaluations[server_round] = out
        if server_round == rounds:
            final.append([np.asarray(p, dtype=np.float32) for p in parameters])
        return out["loss"], dict(out)

    class TimedFedAvg(FedAvg):  # type: ignore[misc]
        """FedAvg that records when each round opens and when its global model has been scored."""

        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
            started[server_round] = time.perf_counter()
            return super().configure_fit(server_round, parameters, client_manager)

        def evaluate(self, server_round: int, parameters: Any) -> Any:
            out = super().evaluate(server_round, parameters)
            if server_round >= 1:
                ended[server_round] = time.perf_counter()
            return out

    def server_fn(context: Context) -> ServerAppComponents:
        strategy = TimedFedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=len(clients), min_available_clients=len(clients),
            min_evaluate_clients=0, evaluate_fn=score, on_fit_config_fn=lambda r: {"round": r},
            initial_parameters=ndarrays_to_parameters([initial.weights[k] for k in names]),
        )
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    t_sim = time.perf_counter()
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=len(clients),
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"num_cpus": cores, "num_gpus": 0, "include_dashboard": False}},
    )
    t_done = time.perf_counter()
    if sorted(ended) != list(range(1, rounds + 1)) or not final:
        print(json.dumps({"error": f"Flower ran rounds {sorted(ended)} of {rounds}"}))
        return 1
    digest = hashlib.sha256(b"".join(p.tobytes() for p in final[0])).hexdigest()
    print(json.dumps({
        "round_s": [round(ended[r] - started[r], 4) for r in range(1, rounds + 1)],
        "evaluations": [evaluations[r] for r in range(1, rounds + 1)],
        "final_weights_sha256": digest,
        "final_weights": {k: p.tolist() for k, p in zip(names, final[0], strict=True)},
        "import_s": round(t_sim - STARTED, 3),
        "to_first_round_s": round(started[1] - t_sim, 3),
        "simulation_s": round(t_done - t_sim, 3),
        "actors": max(1, cores),
        "flwr": __import__("flwr").__version__,
        "torch": torch.__version__,
        "pid_cores": len(os.sched_getaffinity(0)),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
