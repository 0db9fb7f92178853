"""A participant's local training step for one round, from the task document alone.

The strategy named by the task gives the client configuration for the round (algorithm,
epochs, batch size, learning rate, mu, q, SCAFFOLD's server control variate from the global
blob's server state); :func:`fedchain.fl.client.train_local` trains; an optional evaluation-only
attack poisons the update or the local data (to demonstrate robust aggregation and the audit
trail).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedchain.errors import ConfigError, TrainingError
from fedchain.protocol.task import TaskDocument
from fedchain.types import Address, Digest, RoundId

if TYPE_CHECKING:
    from fedchain.protocol.blobs import GlobalModel
    from fedchain.fl.records import ClientState, ClientUpdate


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
    attack: str | None = None,
) -> tuple[ClientUpdate, ClientState, dict[str, float]]:
    """Train locally; return (ClientUpdate, new client state, metrics)."""
    from fedchain.fl.client import train_local
    from fedchain.fl.strategies import strategy_from_config

    if attack and attack.partition(":")[0] in DATA_ATTACKS:
        x, y = poison_data(x, y, attack, num_classes=int(doc.spec().num_classes), seed=seed)
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
        )
    except (RuntimeError, ValueError) as err:
        raise TrainingError(f"round {round_id}: local training failed: {err}") from err
    if attack and attack.partition(":")[0] in UPDATE_ATTACKS:
        update = apply_attack(update, attack, seed)
    return update, new_state, dict(metrics)


UPDATE_ATTACKS = ("sign_flip", "scaling", "noise")  # poison the trained update
DATA_ATTACKS = ("label_flip", "backdoor")  # poison the local data before training
ATTACKS = UPDATE_ATTACKS + DATA_ATTACKS
ATTACK_SPECS = "sign_flip, scaling[:factor], noise[:sigma], label_flip or backdoor[:target_class]"
BACKDOOR_FRACTION = 0.5  # share of a backdoor attacker's samples stamped with the trigger


def check_attack(attack: str) -> str:
    """Validate an attack spec (one of :data:`ATTACK_SPECS`) up front."""
    name, _, arg = attack.partition(":")
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {attack!r}; expected {ATTACK_SPECS}")
    if arg and name == "label_flip":
        raise ConfigError(f"invalid attack {attack!r}: label_flip takes no argument")
    if arg:
        try:
            int(arg) if name == "backdoor" else float(arg)
        except ValueError as err:
            raise ConfigError(f"invalid attack {attack!r}: {arg!r} is not a number") from err
    return attack


def poison_data(x: np.ndarray, y: np.ndarray, attack: str, *, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Poison the local data (evaluation only): ``label_flip`` relabels every sample,
    ``backdoor[:target_class]`` stamps a trigger on a seeded half of the images and relabels them."""
    from fedchain.fl import attacks

    name, _, arg = check_attack(attack).partition(":")
    if name == "label_flip":
        return x, attacks.label_flip(y, num_classes)
    target = int(arg) if arg else 0
    if not 0 <= target < num_classes:
        raise ConfigError(f"invalid attack {attack!r}: target class {target} is not in [0, {num_classes})")
    return attacks.add_backdoor(x, y, target=target, fraction=BACKDOOR_FRACTION, seed=seed)


def apply_attack(update: ClientUpdate, attack: str, seed: int) -> ClientUpdate:
    """Poison an update (evaluation only): ``sign_flip``, ``scaling[:factor]``, ``noise[:sigma]``."""
    from fedchain.fl import attacks

    name, _, arg = attack.partition(":")
    try:
        if name == "sign_flip":
            return attacks.sign_flip(update)
        if name == "scaling":
            return attacks.scaling(update, float(arg) if arg else 10.0)
        if name == "noise":
            return attacks.gaussian_noise(update, float(arg) if arg else 1.0, seed=seed)
    except ValueError as err:
        raise ConfigError(f"invalid attack {attack!r}: {err}") from err
    raise ConfigError(f"unknown update attack {attack!r}; expected sign_flip, scaling[:factor] or noise[:sigma]")


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
    with tmp.open("wb") as fh:
        np.savez(fh, **control)  # type: ignore[arg-type]  # the stub types allow_pickle among **kwds
    tmp.replace(path)
