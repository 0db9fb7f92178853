"""A participant's local training step for one round, from the task document alone.

The strategy named by the task gives the client configuration for the round (algorithm,
epochs, batch size, learning rate, mu, q, SCAFFOLD's server control variate from the global
blob's server state); :func:`fedchain.fl.client.train_local` trains; an optional evaluation-only
attack poisons the update or the local data (to demonstrate robust aggregation and the audit
trail).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedchain.config import open_private
from fedchain.errors import TrainingError
from fedchain.protocol.task import TaskDocument
from fedchain.types import Address, Digest, RoundId

if TYPE_CHECKING:
    from fedchain.fl.attacks import AttackSpec
    from fedchain.fl.privacy import PrivacyPolicy
    from fedchain.fl.records import ClientState, ClientUpdate
    from fedchain.protocol.blobs import GlobalModel


def training_seed(task_seed: int, round_id: int, participant: str) -> int:
    """Per-round, per-participant training seed derived from the task seed."""
    h = hashlib.sha256(f"{task_seed}:{round_id}:{participant.lower()}".encode()).digest()
    return int.from_bytes(h[:4], "big")


def train_participant(
    doc: TaskDocument,
    *,
    round_id: RoundId,
    participant: Address,
    base: GlobalModel,
    base_model_digest: Digest,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    client_state: ClientState | None,
    attack: AttackSpec | None = None,
    noise_seed: int | None = None,
) -> tuple[ClientUpdate, ClientState, dict[str, float]]:
    """Train locally; return (ClientUpdate, new client state, metrics).

    Under the task's privacy policy the participant privatises its own update: DP-SGD trains with
    per-sample clipping and noise; client-level DP clips the trained update and adds this
    participant's share of the noise. The noise is drawn from ``noise_seed``, by default a fresh
    secret (``secrets``): a seed derived from the public task seed would let anyone subtract it.
    Both attach the round's accountant inputs to the update's extras."""
    from fedchain.fl.client import train_local
    from fedchain.fl.strategies import strategy_from_config

    policy = doc.privacy
    if policy is not None and noise_seed is None:
        noise_seed = secrets.randbits(64)

    if attack is not None:
        x, y = attack.poison_data(x, y, num_classes=int(doc.spec().num_classes), seed=seed)
    strategy = strategy_from_config(doc.strategy_config())
    weights = dict(base.weights)
    server_state = dict(base.server_state) or strategy.initial_state(weights)
    client_config = strategy.configure_round(round_id, weights, server_state)
    try:
        update, new_state, metrics = train_local(
            doc.spec(),
            weights,
            x,
            y,
            client_config,
            seed=seed,
            client_state=client_state,
            participant=participant,
            round_id=round_id,
            base_model_digest=base_model_digest,
            privacy=policy if policy is not None and policy.mechanism == "dpsgd" else None,
            noise_seed=noise_seed,
        )
    except (RuntimeError, ValueError) as err:
        raise TrainingError(f"round {round_id}: local training failed: {err}") from err
    if attack is not None:
        update = attack.poison_update(update, seed)
    if policy is not None and policy.mechanism == "client":
        skip = attack is not None and attack.kind == "skip_noise"
        update = _client_privatize(update, policy, int(noise_seed or 0), skip_noise=skip)
    return update, new_state, dict(metrics)


def _client_privatize(update: ClientUpdate, policy: PrivacyPolicy, noise_seed: int, *, skip_noise: bool) -> ClientUpdate:
    """Clip the update and add this participant's share of the noise (client-level DP); with ``skip_noise``
    (an evaluation-only attack) clip only, yet claim the policy's accountant inputs."""
    import dataclasses

    from fedchain.fl.privacy import privatize_update

    if not skip_noise:
        return privatize_update(update, policy, np.random.default_rng(noise_seed))
    silent = dataclasses.replace(policy, noise_multiplier=1e-12)
    clipped = privatize_update(update, silent, np.random.default_rng(noise_seed))
    extras = dict(clipped.extras)
    extras.update(policy.round_inputs(1).to_extras())
    return dataclasses.replace(clipped, extras=extras)


def load_client_state(path: Path) -> ClientState:
    """The participant's persisted client state (SCAFFOLD c_i), or a fresh one."""
    from fedchain.fl.records import ClientState

    if not path.exists():
        return ClientState()
    try:
        with np.load(path, allow_pickle=False) as data:
            control = {k: np.array(data[k]) for k in sorted(data.files)}
    except (OSError, ValueError) as err:
        raise TrainingError(f"client state {path} is unreadable: {err}") from err
    return ClientState(control=control or None)


def save_client_state(path: Path, state: ClientState | None) -> None:
    """Persist the client state atomically (temp file + rename)."""
    control = dict(state.control) if state is not None and state.control is not None else {}
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp) as fh:  # participant data: the owner's only
        np.savez(fh, **control)  # type: ignore[arg-type]  # the stub types allow_pickle among **kwds
    tmp.replace(path)
