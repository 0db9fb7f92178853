"""Local training of one participant for one round: torch on CPU, one thread, seeded.

:func:`train_local` builds the task's model, loads the global weights, trains on the
participant's data with the round's :class:`~fedchain.fl.records.ClientConfig`, and
returns a :class:`~fedchain.fl.records.ClientUpdate` whose tensors mean what the
algorithm needs (see :class:`~fedchain.fl.records.UpdateKind`):

==========  ======================================================================
fedavg      ``local - global``
fedprox     ``local - global``, trained with ``+ mu/2 ||w - w_global||^2``
scaffold    ``local - global`` plus ``cv/<name>`` = ``c_i+ - c_i`` (option II);
            the participant's c_i is :class:`~fedchain.fl.records.ClientState`
fednova     ``(local - global) / ||a||_1``, ``extras["tau"] = ||a||_1`` (``= steps``
            for plain SGD; the momentum form of Wang et al. otherwise)
qfedavg     ``F^q L (local - global)`` with ``L = 1/lr`` and ``F`` the local loss at
            the global model; ``extras["h"] = q F^(q-1) L^2 ||local - global||^2 + L F^q``
==========  ======================================================================

The same inputs and seed give bit-identical tensors on the same platform.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from torch import nn

from fedchain.errors import ConfigError, DataSchemaError, TrainingError
from fedchain.fl.models import TORCH_RNG_LOCK, ModelSpec, build_model, get_weights, set_weights
from fedchain.fl.privacy import PrivacyPolicy, check_private_model
from fedchain.fl.records import (
    CONTROL_PREFIX,
    WIRE_DTYPE,
    ClientConfig,
    ClientState,
    ClientUpdate,
    ExtraValue,
    UpdateKind,
    Weights,
)
from fedchain.types import Address, Digest, RoundId

_KINDS = {
    "fedavg": UpdateKind.DELTA,
    "fedprox": UpdateKind.DELTA,
    "scaffold": UpdateKind.DELTA,
    "fednova": UpdateKind.NORMALIZED_DELTA,
    "qfedavg": UpdateKind.QFFL,
}

_Q_LOSS_FLOOR = 1e-10

_P = ParamSpec("_P")
_R = TypeVar("_R")
_TRAINING = TORCH_RNG_LOCK  # one training at a time per process: training seeds torch's process-wide RNG


def _serialised(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` run under :data:`_TRAINING`: bit for bit what it computes alone in a process."""

    @functools.wraps(fn)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _TRAINING:
            return fn(*args, **kwargs)

    return locked


def configure_torch() -> None:
    """One CPU thread and deterministic kernels: the reproducibility the auditor relies on.

    One thread is what makes CPU training reproducible bit for bit (a reduction split over threads
    sums in an order that depends on the split); the deterministic-algorithms switch makes any
    kernel without a deterministic implementation raise instead of running. It is set on the eager
    engine only: ``torch.use_deterministic_algorithms`` also sets the compiler's ``deterministic``
    flag, which imports the whole compiler stack (about 820 modules, 1.7 s of CPU and 70 MiB per
    process), and fedchain never compiles a model."""
    torch.set_num_threads(1)
    torch._C._set_deterministic_algorithms(True, warn_only=False)


class SGD:
    """Stochastic gradient descent with ``torch.optim.SGD``'s arithmetic, step for step and bit for bit (its
    single-tensor path, the one it takes on the CPU; no dampening, no Nesterov, no maximising), without the
    optimizer class: the first ``torch.optim`` optimizer a process constructs imports the compiler stack
    (``torch._dynamo``, about 2 s of CPU) to wrap its methods, which every participant paid at start-up.
    DP-SGD keeps ``torch.optim.SGD``: Opacus wraps a real optimizer."""

    def __init__(self, params: list[torch.Tensor], *, lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        self.params = params
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self._buffers: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``set_to_none=True`` as torch's default; else zero them in place)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_()
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self._buffers[i]
                if buf is None:
                    buf = grad.detach().clone()
                    self._buffers[i] = buf
                else:
                    buf.mul_(self.momentum).add_(grad, alpha=1.0)
                grad = buf
            param.add_(grad, alpha=-self.lr)


def loss_function(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class logits; binary cross-entropy for a single logit."""
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return nn.functional.binary_cross_entropy_with_logits(outputs[:, 0], targets.to(outputs.dtype))
    return nn.functional.cross_entropy(outputs, targets)


def _check_data(x: np.ndarray, y: np.ndarray) -> None:
    if len(x) == 0:
        raise DataSchemaError("no training samples")
    if len(x) != len(y):
        raise DataSchemaError(f"{len(x)} feature rows but {len(y)} labels")
    if not np.issubdtype(np.asarray(y).dtype, np.integer):
        raise DataSchemaError(f"labels must be integers, got {np.asarray(y).dtype}")
    if not np.isfinite(np.asarray(x, dtype=np.float64)).all():
        raise DataSchemaError("features contain NaN or Inf")


def _mean_loss(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    was_training = module.training
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            total += float(loss_function(module(xb), yb)) * len(xb)
    module.train(was_training)
    return total / len(x)


def fednova_a_norm(steps: int, momentum: float) -> float:
    """||a||_1 of FedNova for ``steps`` SGD steps with heavy-ball momentum ``rho``."""
    if momentum == 0.0:
        return float(steps)
    rho = momentum
    return (steps - rho * (1.0 - rho**steps) / (1.0 - rho)) / (1.0 - rho)


def _check_dpsgd_config(policy: PrivacyPolicy, config: ClientConfig) -> None:
    """Refuse (ConfigError) a round DP-SGD cannot run as the policy says."""
    if policy.mechanism != "dpsgd":
        raise ConfigError(
            f"training takes a dpsgd privacy policy; {policy.mechanism!r} noise is added to the finished update "
            "(fedchain.fl.privacy.privatize_update)"
        )
    if config.algorithm != "fedavg":
        raise ConfigError(f"DP-SGD trains with algorithm fedavg only, not {config.algorithm!r}")
    if config.mu > 0:
        # the proximal term's gradient never reaches Opacus's per-sample gradients: it would be dropped silently
        raise ConfigError(f"DP-SGD cannot train with a proximal term (mu = {config.mu}); use mu = 0")


def _train_dpsgd(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    xt: torch.Tensor,
    yt: torch.Tensor,
    policy: PrivacyPolicy,
    local_epochs: int,
    noise_seed: int,
) -> tuple[int, float, int]:
    """DP-SGD with Opacus: ``policy.steps_per_round(local_epochs)`` steps; returns ``(steps, loss sum, samples)``.

    Each step takes a Poisson sample of the records (each with probability ``sample_rate``: Opacus's
    ``UniformWithReplacementSampler``), computes per-sample gradients (``GradSampleModule``), clips each
    to ``clip`` and adds N(0, (z clip)^2) to their sum (``DPOptimizer``), divided by the expected batch
    ``sample_rate * n``; an empty sample still takes its noisy step. Momentum and weight decay act on the
    noised gradient (post-processing). Sampling and noise draw from two generators seeded from
    ``noise_seed``, the noise in Opacus's secure mode (robust to the floating-point attacks on Gaussian
    samplers); ``config.batch_size`` plays no part.
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    check_private_model(module)
    sample_seed, noise_seed2 = (int(s) for s in np.random.SeedSequence(noise_seed).generate_state(2, np.uint64))
    n = len(xt)
    total = policy.steps_per_round(local_epochs)
    sampler = UniformWithReplacementSampler(
        num_samples=n, sample_rate=policy.sample_rate, generator=torch.Generator().manual_seed(sample_seed), steps=total
    )
    gsm = GradSampleModule(module, batch_first=True, loss_reduction="mean", strict=True)
    dp_optimizer = DPOptimizer(
        optimizer,
        noise_multiplier=policy.noise_multiplier,
        max_grad_norm=policy.clip,
        expected_batch_size=policy.sample_rate * n,
        loss_reduction="mean",
        generator=torch.Generator().manual_seed(noise_seed2),
        secure_mode=True,  # each noise value is (sum of 4 draws) / 2: no floating-point attack on the sampler
    )
    trainable = [p for p in module.parameters() if p.requires_grad]
    steps = 0
    loss_sum = 0.0
    seen = 0
    with warnings.catch_warnings():
        # the inputs need no gradient: torch warns that the hooks then see only the outputs' gradients, all Opacus needs
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        try:
            for indices in sampler:
                dp_optimizer.zero_grad(set_to_none=True)
                if indices:
                    idx = torch.tensor(indices, dtype=torch.int64)
                    xb, yb = xt[idx], yt[idx]
                    loss = loss_function(gsm(xb), yb)
                    if not torch.isfinite(loss):
                        raise TrainingError(f"local training diverged at step {steps}: loss {float(loss.detach())}")
                    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                    loss_sum += float(loss.detach()) * len(indices)
                    seen += len(indices)
                else:  # no record sampled: the step is the noise alone
                    for p in trainable:
                        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)  # type: ignore[attr-defined]  # read by Opacus
                dp_optimizer.step()
                steps += 1
        finally:
            gsm._close()  # removes the hooks and the per-sample gradients from the caller's module
    if steps != total:  # pragma: no cover - the sampler yields exactly `steps` batches
        raise TrainingError(f"DP-SGD took {steps} steps, the policy asks for {total}")
    return steps, loss_sum, seen


@_serialised
def train_module(
    module: nn.Module,
    global_weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    config: ClientConfig,
    *,
    seed: int,
    client_state: ClientState | None = None,
    participant: Address,
    round_id: RoundId,
    base_model_digest: Digest,
    privacy: PrivacyPolicy | None = None,
    noise_seed: int | None = None,
) -> tuple[ClientUpdate, ClientState, dict[str, float]]:
    """Train ``module`` (its weights are replaced by ``global_weights``) and build the update.

    Returns ``(update, new client state, metrics)``; metrics (``loss``, ``loss_at_global``
    (q-FedAvg only, else NaN), ``steps``, ``num_samples``, ``seconds``) are not part of the
    update, and ``seconds`` varies from run to run.

    With a ``dpsgd`` ``privacy`` policy the round is DP-SGD (see :func:`_train_dpsgd`): the update is
    the delta as for FedAvg, its extras carry the round's accountant inputs and no training loss.
    ``noise_seed`` seeds the record sampling and the noise (a fresh secret one when None).
    """
    configure_torch()
    if privacy is not None:
        _check_dpsgd_config(privacy, config)
    _check_data(x, y)
    started = time.perf_counter()
    torch.manual_seed(seed)
    set_weights(module, global_weights)
    global_np = {n: np.asarray(global_weights[n], dtype=np.float32) for n in sorted(global_weights)}
    params = dict(module.named_parameters())
    missing = sorted(set(params) - set(global_np))
    if missing:
        raise TrainingError(f"global weights lack the model parameters {missing[:5]}")

    algorithm = config.algorithm
    correction: dict[str, torch.Tensor] = {}
    c_i: Weights = {}
    if algorithm == "scaffold":
        zeros = {n: np.zeros_like(global_np[n]) for n in global_np}
        c_i = dict(client_state.control) if client_state is not None and client_state.control is not None else zeros
        c = dict(config.server_control) if config.server_control is not None else zeros
        for name, values in (("client", c_i), ("server", c)):
            if sorted(values) != sorted(global_np) or any(values[n].shape != global_np[n].shape for n in global_np):
                raise TrainingError(f"SCAFFOLD {name} control variate does not match the model's tensors")
        correction = {n: torch.tensor(np.asarray(c[n], np.float32) - np.asarray(c_i[n], np.float32)) for n in params}
    anchor = {n: torch.tensor(global_np[n]) for n in params} if config.mu > 0 else {}

    xt = torch.tensor(np.asarray(x, dtype=np.float32))
    yt = torch.tensor(np.asarray(y, dtype=np.int64))
    n = len(xt)
    loss_at_global = _mean_loss(module, xt, yt, max(config.batch_size, 256)) if algorithm == "qfedavg" else math.nan

    generator = torch.Generator().manual_seed(seed)
    module.train()
    steps = 0
    loss_sum = 0.0
    seen = 0
    if privacy is not None:
        dp_base = torch.optim.SGD(
            module.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        steps, loss_sum, seen = _train_dpsgd(
            module, dp_base, xt, yt, privacy, config.local_epochs,
            secrets.randbits(64) if noise_seed is None else noise_seed,
        )
    else:
        optimizer = SGD(list(module.parameters()), lr=config.lr, momentum=config.momentum,
                        weight_decay=config.weight_decay)
        for _epoch in range(config.local_epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, config.batch_size):
                idx = order[start : start + config.batch_size]
                xb, yb = xt[idx], yt[idx]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_function(module(xb), yb)
                if anchor:
                    prox = sum(((params[k] - anchor[k]) ** 2).sum() for k in sorted(anchor))
                    loss = loss + 0.5 * config.mu * prox
                if not torch.isfinite(loss):
                    raise TrainingError(f"local training diverged at step {steps}: loss {float(loss.detach())}")
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                if correction:
                    for name, p in params.items():
                        if p.grad is not None:
                            p.grad.add_(correction[name])
                optimizer.step()
                steps += 1
                loss_sum += float(loss.detach()) * len(idx)
                seen += len(idx)

    local = get_weights(module)
    delta64 = {k: local[k].astype(np.float64) - global_np[k].astype(np.float64) for k in global_np}
    if privacy is None:
        extras: dict[str, ExtraValue] = {"local_steps": steps, "loss": loss_sum / seen}
    else:  # the training loss is a statistic of the records that no noise covers: it stays in the metrics
        extras = {"local_steps": steps, **privacy.round_inputs(config.local_epochs).to_extras()}
    new_state = client_state if client_state is not None else ClientState()

    if algorithm in ("fedavg", "fedprox"):
        tensors = {k: v.astype(WIRE_DTYPE) for k, v in delta64.items()}
    elif algorithm == "scaffold":
        scale = 1.0 / (steps * config.lr)
        c_new = {
            k: (
                np.asarray(c_i[k], np.float64) - np.asarray(c[k], np.float64) - delta64[k] * scale
                if k in params
                else np.zeros_like(delta64[k])
            )
            for k in global_np
        }
        tensors = {k: v.astype(WIRE_DTYPE) for k, v in delta64.items()}
        tensors.update(
            {CONTROL_PREFIX + k: (c_new[k] - np.asarray(c_i[k], np.float64)).astype(WIRE_DTYPE) for k in global_np}
        )
        new_state = ClientState(control={k: v.astype(WIRE_DTYPE) for k, v in c_new.items()})
    elif algorithm == "fednova":
        a_norm = fednova_a_norm(steps, config.momentum)
        tensors = {k: (v / a_norm).astype(WIRE_DTYPE) for k, v in delta64.items()}
        extras["tau"] = a_norm
    elif algorithm == "qfedavg":
        lipschitz = 1.0 / config.lr
        f = max(loss_at_global, _Q_LOSS_FLOOR)
        fq = f**config.q
        sq_norm = sum(float(np.dot(v.ravel(), v.ravel())) for v in delta64.values())
        h = config.q * f ** (config.q - 1.0) * lipschitz**2 * sq_norm + lipschitz * fq
        tensors = {k: (fq * lipschitz * v).astype(WIRE_DTYPE) for k, v in delta64.items()}
        extras["h"] = h
        extras["loss_at_global"] = loss_at_global
    else:  # pragma: no cover - ClientConfig rejects unknown algorithms
        raise TrainingError(f"unknown algorithm {algorithm!r}")

    for name, arr in tensors.items():
        if not np.isfinite(arr).all():
            raise TrainingError(f"local training produced non-finite values in {name!r}")
    update = ClientUpdate(
        participant=participant,
        round_id=round_id,
        num_samples=int(n),
        tensors=tensors,
        base_model_digest=base_model_digest,
        kind=_KINDS[algorithm],
        extras=extras,
    )
    metrics = {
        "loss": loss_sum / seen if seen else math.nan,
        "loss_at_global": loss_at_global,
        "steps": float(steps),
        "num_samples": float(n),
        "seconds": time.perf_counter() - started,
    }
    return update, new_state, metrics


def train_local(
    model_spec: ModelSpec,
    global_weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    config: ClientConfig,
    *,
    seed: int,
    client_state: ClientState | None = None,
    participant: Address,
    round_id: RoundId,
    base_model_digest: Digest,
    privacy: PrivacyPolicy | None = None,
    noise_seed: int | None = None,
) -> tuple[ClientUpdate, ClientState, dict[str, float]]:
    """Build the model of ``model_spec`` (seeded) and train it locally; see :func:`train_module`."""
    configure_torch()
    module = build_model(model_spec, seed)
    return train_module(
        module,
        global_weights,
        x,
        y,
        config,
        seed=seed,
        client_state=client_state,
        participant=participant,
        round_id=round_id,
        base_model_digest=base_model_digest,
        privacy=privacy,
        noise_seed=noise_seed,
    )
