r"""First-order optimisers that update NumPy parameter arrays in place, as ``torch.optim`` does.

An optimiser holds an ordered mapping ``name -> ndarray`` of parameters (the arrays owned by
the layers, float32 or float64) and updates them **in place** on every
``step(grads)``, where ``grads`` maps exactly the same names to arrays of the same shapes::

    opt = Adam(model_params, lr=1e-3)
    for batch in data:
        grads = ...                       # dict name -> ndarray
        clip_grad_norm(grads, 1.0)        # optional, in place
        opt.step(grads)
    opt.lr = 1e-4                         # learning-rate schedules just assign ``lr``

The update formulas, the order of their floating-point operations and the scalar constants
follow PyTorch's single-tensor (``foreach=False``) implementations of :class:`torch.optim.SGD`,
:class:`torch.optim.Adam` and :class:`torch.optim.AdamW`, so a run matches ``torch.optim``
to the rounding of the parameter dtype (bitwise up to the fused multiply-adds PyTorch's
vectorised kernels may use). Python scalars (``lr``, ``1 - beta1`` ...) are formed in double
precision and rounded to the parameter dtype when they meet an array, as in PyTorch.

``state_dict()`` returns a flat ``dict[str, np.ndarray]`` (only arrays, no objects), so it can
be stored with ``np.savez`` and read back with ``np.load(..., allow_pickle=False)``;
``load_state_dict`` restores the step count, every hyper-parameter and every buffer exactly.

References
----------
D. P. Kingma and J. Ba (2015). Adam: A method for stochastic optimization. *ICLR*.
arXiv:1412.6980.

S. J. Reddi, S. Kale and S. Kumar (2018). On the convergence of Adam and beyond. *ICLR*
(AMSGrad).

I. Loshchilov and F. Hutter (2019). Decoupled weight decay regularization. *ICLR* (AdamW).

I. Sutskever, J. Martens, G. Dahl and G. Hinton (2013). On the importance of initialization
and momentum in deep learning. *ICML* (Nesterov momentum in the form used by PyTorch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .kernels import adam
from .validation import FLOAT_DTYPES, sum_is_finite

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm"]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _real(name: str, value, low: float = 0.0, high: float | None = None, high_open=True) -> float:
    """A finite float in ``[low, high)`` (or ``[low, high]``) or a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if (
        not math.isfinite(x)
        or x < low
        or (high is not None and (x >= high if high_open else x > high))
    ):
        rng = f"in [{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a finite number {rng}, got {value!r}")
    return x


def _check_params(params) -> dict[str, np.ndarray]:
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping name -> ndarray (e.g. a dict), got {type(params).__name__}"
        )
    if len(params) == 0:
        raise ValueError("params is empty: the optimiser has nothing to update")
    out: dict[str, np.ndarray] = {}
    for name, p in params.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"params keys must be non-empty strings, got {name!r}")
        if not isinstance(p, np.ndarray):
            raise TypeError(
                f"params[{name!r}] must be a numpy ndarray (updated in place), got {type(p).__name__}"
            )
        if p.dtype not in FLOAT_DTYPES:
            raise TypeError(f"params[{name!r}] must be float32 or float64, got dtype {p.dtype}")
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}] is read-only; the optimiser updates it in place")
        out[name] = p
    return out


def _first_nonfinite(arr: np.ndarray) -> tuple[int, ...] | None:
    if arr.size == 0 or sum_is_finite(arr):
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    return tuple(int(k) for k in np.argwhere(bad)[0])


def _check_grads(grads, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradients with exactly the parameters' keys and shapes, finite, cast to their dtype."""
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a mapping name -> ndarray, got {type(grads).__name__}")
    for name in grads:
        if name not in params:
            raise ValueError(f"grads has key {name!r} which is not a parameter of this optimiser")
    out: dict[str, np.ndarray] = {}
    for name, p in params.items():
        if name not in grads:
            raise ValueError(f"grads is missing the gradient for parameter {name!r}")
        g = np.asarray(grads[name])
        if g.dtype.kind not in "fiu":
            raise ValueError(f"grads[{name!r}] must be a real float array, got dtype {g.dtype}")
        if g.shape != p.shape:
            raise ValueError(
                f"grads[{name!r}] has shape {g.shape} but parameter {name!r} has shape {p.shape}"
            )
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
        bad = _first_nonfinite(g)
        if bad is not None:
            kind = "NaN" if np.isnan(g[bad]) else "inf"
            raise ValueError(f"grads[{name!r}] contains {kind} (first at index {bad})")
        out[name] = g
    return out


# --------------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------------


class Optimizer:
    """Base class: parameters, learning rate, step counter, per-parameter buffers.

    Subclasses define :attr:`_hparam_names`, :meth:`_set_hparams`, :meth:`_buffer_names` and
    :meth:`step`.

    Attributes
    ----------
    params : dict[str, ndarray]
        The parameter arrays (the caller's objects, updated in place), in order.
    lr : float
        Learning rate; may be reassigned at any time (``>= 0``).
    step_count : int
        Number of :meth:`step` calls so far.
    state : dict[str, dict[str, ndarray]]
        Buffers, ``state[buffer_name][param_name]``.
    """

    _hparam_names: tuple[str, ...] = ("lr",)

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        self.params = _check_params(params)
        self.lr = lr
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    @property
    def lr(self) -> float:
        """The learning rate (``>= 0``); assign to change it between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _real("lr", value)

    # -- subclass interface -----------------------------------------------------------------

    def _buffer_names(self) -> tuple[str, ...]:
        """Names of the buffers this configuration uses (created lazily by ``step``)."""
        return ()

    def _set_hparams(self, values: dict[str, object]) -> None:
        """Validate and assign hyper-parameters (called by ``__init__`` and loading)."""
        self.lr = values["lr"]

    # -- public API -----------------------------------------------------------------------

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Update every parameter in place from ``grads`` (same keys and shapes as ``params``).

        All gradients are validated (keys, shapes, finiteness) before any parameter changes,
        so a ``ValueError`` leaves the parameters and state untouched.
        """
        raise NotImplementedError  # pragma: no cover - implemented by subclasses

    def hparams(self) -> dict[str, object]:
        """The hyper-parameters as a dict of Python scalars."""
        return {k: getattr(self, k) for k in self._hparam_names}

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat copy of the optimiser state: ``{"step", "hparams/<h>", "<buffer>/<param>"}``.

        Every value is a NumPy array (0-d for scalars), so the dict can be written with
        ``np.savez(file, **opt.state_dict())`` and read without pickle.
        """
        d: dict[str, np.ndarray] = {"step": np.asarray(self.step_count, dtype=np.int64)}
        for k, v in self.hparams().items():
            d[f"hparams/{k}"] = np.asarray(
                v, dtype=np.bool_ if isinstance(v, bool) else np.float64
            )
        for buf in self._buffer_names():
            for name, arr in self.state.get(buf, {}).items():
                d[f"{buf}/{name}"] = arr.copy()
        return d

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a :meth:`state_dict` (e.g. from ``np.load``): step, hyper-parameters, buffers.

        The parameter names and shapes must match this optimiser's; a buffer must be given for
        all parameters or for none (an absent buffer is created at the next step as on the
        first step). Hyper-parameters must be real or bool scalars and buffers float arrays
        that are finite in the parameter dtype. Buffers are copied (cast to the parameter
        dtype), so the caller's arrays are not aliased. On error nothing changes.
        """
        if not isinstance(state, Mapping) and not hasattr(state, "files"):
            raise TypeError(f"state must be a mapping of arrays, got {type(state).__name__}")
        keys = list(state.files) if hasattr(state, "files") else list(state.keys())
        if "step" not in keys:
            raise ValueError("state is missing the key 'step'")
        step_arr = np.asarray(state["step"])
        if step_arr.shape != () or step_arr.dtype.kind not in "iu" or int(step_arr) < 0:
            raise ValueError(
                f"state['step'] must be a non-negative integer scalar, got {step_arr!r}"
            )
        hp: dict[str, object] = {}
        for k in self._hparam_names:
            key = f"hparams/{k}"
            if key not in keys:
                raise ValueError(f"state is missing the key {key!r}")
            v = np.asarray(state[key])
            if v.shape != () or v.dtype.kind not in "biuf":
                raise ValueError(
                    f"state[{key!r}] must be a real or bool scalar, got a {v.dtype} array of "
                    f"shape {v.shape}"
                )
            hp[k] = bool(v) if v.dtype == np.bool_ else float(v)
        # validate everything on a scratch copy of the settings before mutating self
        old_hp, old_step = self.hparams(), self.step_count
        try:
            self._set_hparams(hp)
            self.step_count = int(step_arr)
            allowed = set(self._buffer_names())
            new_state: dict[str, dict[str, np.ndarray]] = {}
            for key in keys:
                if key == "step":
                    continue
                prefix, _, name = key.partition("/")
                if prefix == "hparams":
                    if name not in self._hparam_names:
                        raise ValueError(f"state has unexpected key {key!r}")
                    continue
                if prefix not in allowed or name not in self.params:
                    raise ValueError(f"state has unexpected key {key!r}")
                arr = np.asarray(state[key])
                p = self.params[name]
                if arr.shape != p.shape:
                    raise ValueError(
                        f"state[{key!r}] has shape {arr.shape} but parameter {name!r} has "
                        f"shape {p.shape}"
                    )
                if arr.dtype.kind != "f":
                    raise ValueError(f"state[{key!r}] must be a float array, got {arr.dtype}")
                with np.errstate(over="ignore"):
                    value = np.array(arr, dtype=p.dtype, copy=True)
                bad = _first_nonfinite(value)
                if bad is not None:
                    raise ValueError(
                        f"state[{key!r}] contains NaN or inf in {p.dtype} (first at index {bad})"
                    )
                new_state.setdefault(prefix, {})[name] = value
            for buf, arrays in new_state.items():
                for name in self.params:
                    if name not in arrays:
                        raise ValueError(f"state is missing the key {buf + '/' + name!r}")
        except Exception:
            self._set_hparams(old_hp)
            self.step_count = old_step
            raise
        self.state = new_state

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({len(self.params)} params, {hp}, step={self.step_count})"


# --------------------------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------------------------


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, as :class:`torch.optim.SGD`.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t \ge 1`:

    .. math::

        d_t &= g_t + \lambda\,\theta_{t-1} \\
        b_t &= \begin{cases} d_t & t = 1 \\ \mu\, b_{t-1} + (1 - \tau)\, d_t & t > 1
        \end{cases} \\
        d_t &\leftarrow \begin{cases} d_t + \mu\, b_t & \text{nesterov} \\ b_t & \text{otherwise}
        \end{cases} \quad(\text{only if } \mu \ne 0) \\
        \theta_t &= \theta_{t-1} - \eta\, d_t

    with learning rate :math:`\eta`, weight decay :math:`\lambda`, momentum :math:`\mu` and
    dampening :math:`\tau` (the first buffer is not dampened, as in PyTorch).

    Parameters
    ----------
    params : Mapping[str, ndarray]
        Parameter arrays (float32/float64), updated in place.
    lr : float
        Learning rate :math:`\eta \ge 0`.
    momentum : float
        :math:`\mu \ge 0`.
    dampening : float
        :math:`\tau` (finite).
    nesterov : bool
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float
        L2 penalty :math:`\lambda \ge 0` added to the gradient.

    State buffers: ``momentum_buffer/<name>`` (after the first step, when ``momentum != 0``).
    """

    _hparam_names = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self._set_hparams(
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "nesterov": nesterov,
                "weight_decay": weight_decay,
            }
        )

    def _set_hparams(self, values: dict[str, object]) -> None:
        momentum = _real("momentum", values["momentum"])
        dampening = _real("dampening", values["dampening"], low=-math.inf)
        nesterov = values["nesterov"]
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires a momentum > 0 and zero dampening")
        weight_decay = _real("weight_decay", values["weight_decay"])
        self.lr = values["lr"]
        self.momentum, self.dampening = momentum, dampening
        self.nesterov, self.weight_decay = bool(nesterov), weight_decay

    def _buffer_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """One SGD step on all parameters (in place); see the class docstring."""
        checked = _check_grads(grads, self.params)
        self.step_count += 1
        bufs = self.state.setdefault("momentum_buffer", {}) if self.momentum != 0 else None
        for name, p in self.params.items():
            d = checked[name]
            t = p.dtype.type
            if self.weight_decay != 0:
                d = d + t(self.weight_decay) * p
            if bufs is not None:
                if name not in bufs:  # first step: the buffer is the gradient itself
                    buf = np.array(d, copy=True)
                    bufs[name] = buf
                else:
                    buf = bufs[name]
                    buf *= t(self.momentum)
                    buf += t(1.0 - self.dampening) * d
                d = d + t(self.momentum) * buf if self.nesterov else buf
            p += t(-self.lr) * d


# --------------------------------------------------------------------------------------------
# Adam / AdamW
# --------------------------------------------------------------------------------------------


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015), optionally AMSGrad, as :class:`torch.optim.Adam`.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t \ge 1`:

    .. math::

        g_t &\leftarrow g_t + \lambda\,\theta_{t-1}
            \qquad(\text{or } \theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1}
            \text{ if decoupled}) \\
        m_t &= m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}) \\
        v_t &= \beta_2\, v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \;\text{(AMSGrad, else } \hat v_t = v_t) \\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\,
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`m_0 = v_0 = \hat v_0 = 0`. Note PyTorch's placement of :math:`\epsilon`: it is
    added to the bias-corrected :math:`\sqrt{\hat v_t / (1-\beta_2^t)}`.

    Parameters
    ----------
    params : Mapping[str, ndarray]
        Parameter arrays (float32/float64), updated in place.
    lr : float
        Learning rate :math:`\eta \ge 0`.
    betas : tuple of float
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
    eps : float
        :math:`\epsilon \ge 0`.
    weight_decay : float
        :math:`\lambda \ge 0` (L2 penalty added to the gradient unless decoupled).
    amsgrad : bool
        Use AMSGrad (Reddi et al. 2018).
    decoupled_weight_decay : bool
        Decoupled weight decay, i.e. AdamW (Loshchilov & Hutter 2019).

    State buffers (after the first step): ``exp_avg/<name>``, ``exp_avg_sq/<name>`` and, with
    AMSGrad, ``max_exp_avg_sq/<name>``; the step count is shared by all parameters.
    """

    _hparam_names = (
        "lr",
        "beta1",
        "beta2",
        "eps",
        "weight_decay",
        "amsgrad",
        "decoupled_weight_decay",
    )

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        decoupled_weight_decay: bool = False,
    ) -> None:
        super().__init__(params, lr)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        self._set_hparams(
            {
                "lr": lr,
                "beta1": beta1,
                "beta2": beta2,
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": amsgrad,
                "decoupled_weight_decay": decoupled_weight_decay,
            }
        )

    @property
    def betas(self) -> tuple[float, float]:
        """:math:`(\\beta_1, \\beta_2)`."""
        return (self.beta1, self.beta2)

    def _set_hparams(self, values: dict[str, object]) -> None:
        beta1 = _real("betas[0]", values["beta1"], 0.0, 1.0)
        beta2 = _real("betas[1]", values["beta2"], 0.0, 1.0)
        eps = _real("eps", values["eps"])
        weight_decay = _real("weight_decay", values["weight_decay"])
        for k in ("amsgrad", "decoupled_weight_decay"):
            if not isinstance(values[k], (bool, np.bool_)):
                raise ValueError(f"{k} must be a bool, got {values[k]!r}")
        self.lr = values["lr"]
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.amsgrad = bool(values["amsgrad"])
        self.decoupled_weight_decay = bool(values["decoupled_weight_decay"])

    def _buffer_names(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """One Adam step on all parameters (in place); see the class docstring."""
        checked = _check_grads(grads, self.params)
        for buf in self._buffer_names():  # created lazily (zeros), as in PyTorch
            arrays = self.state.setdefault(buf, {})
            for name, p in self.params.items():
                if name not in arrays:
                    arrays[name] = np.zeros_like(p)
        self.step_count += 1
        step = float(self.step_count)
        lr, beta1, beta2 = self.lr, self.beta1, self.beta2
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        decoupled = self.weight_decay != 0 and self.decoupled_weight_decay
        for name, p in self.params.items():
            t = p.dtype.type
            w = t(1 - beta1)  # the weight of at::lerp, rounded to the dtype as PyTorch does
            flat = p.reshape(-1)  # owned C-contiguous arrays: views
            max_sq = self.state["max_exp_avg_sq"][name] if self.amsgrad else flat[:0]
            adam.adam_update(
                flat,
                np.ascontiguousarray(checked[name]).reshape(-1),
                self.state["exp_avg"][name].reshape(-1),
                self.state["exp_avg_sq"][name].reshape(-1),
                max_sq.reshape(-1),
                decoupled,
                t(1 - lr * self.weight_decay),
                t(0 if decoupled else self.weight_decay),
                abs(1 - beta1) < 0.5,
                w,
                t(1.0) - w,
                t(beta2),
                t(1 - beta2),
                t(-step_size),
                t(bias_correction2_sqrt),
                t(self.eps),
                self.amsgrad,
            )
            if self.eps == 0:
                # m / sqrt(v) is 0 / 0 where every gradient so far was 0: NaN in NumPy and
                # PyTorch too, but never silently here
                bad = _first_nonfinite(p)
                if bad is not None:
                    raise FloatingPointError(
                        f"Adam with eps=0 made parameter {name!r} non-finite at index {bad} "
                        "(its gradients so far were all 0 there, so m / sqrt(v) is 0 / 0); "
                        "use eps > 0"
                    )


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019), as :class:`torch.optim.AdamW`.

    Identical to :class:`Adam` except that, before the moment updates, each parameter is
    shrunk, :math:`\theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1}`, instead of adding
    :math:`\lambda\theta` to the gradient; the default :math:`\lambda` is ``1e-2``.

    Parameters
    ----------
    params : Mapping[str, ndarray]
        Parameter arrays (float32/float64), updated in place.
    lr, betas, eps, amsgrad
        As for :class:`Adam`.
    weight_decay : float
        Decoupled weight decay :math:`\lambda \ge 0`.
    """

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True
        )

    def _set_hparams(self, values: dict[str, object]) -> None:
        super()._set_hparams({**values, "decoupled_weight_decay": True})


# --------------------------------------------------------------------------------------------
# gradient clipping
# --------------------------------------------------------------------------------------------


def clip_grad_norm(
    grads: Mapping[str, np.ndarray], max_norm: float, error_if_nonfinite: bool = True
) -> float:
    r"""Scale all gradients in place so that their joint L2 norm is at most ``max_norm``.

    As :func:`torch.nn.utils.clip_grad_norm_` (``norm_type=2``):

    .. math::

        \|g\| = \Big(\sum_k \|g_k\|_2^2\Big)^{1/2}, \qquad
        g_k \leftarrow g_k \cdot \min\Big(1, \frac{\text{max\_norm}}{\|g\| + 10^{-6}}\Big)

    (every gradient is multiplied, by 1 when no clipping is needed). The norms are accumulated
    in float64.

    Parameters
    ----------
    grads : Mapping[str, ndarray]
        Gradient arrays (float32/float64), modified in place.
    max_norm : float
        Maximum total norm, ``>= 0``.
    error_if_nonfinite : bool
        Raise ``ValueError`` (naming the first offending key) if the total norm is NaN or
        inf. Unlike PyTorch this defaults to ``True``; with ``False`` the gradients are
        scaled by the resulting NaN/0 factor as PyTorch does.

    Returns
    -------
    float
        The total norm before clipping.
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a mapping name -> ndarray, got {type(grads).__name__}")
    max_norm = _real("max_norm", max_norm)
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype not in FLOAT_DTYPES:
            raise TypeError(f"grads[{name!r}] must be a float32/float64 ndarray (scaled in place)")
        if not g.flags.writeable:
            raise ValueError(f"grads[{name!r}] is read-only; clip_grad_norm scales it in place")
    if not grads:
        return 0.0
    norms = np.array(
        [np.linalg.norm(g.astype(np.float64, copy=False).ravel()) for g in grads.values()]
    )
    total = float(np.linalg.norm(norms))
    if not math.isfinite(total):
        if error_if_nonfinite:
            for name, n in zip(grads, norms, strict=True):
                if not math.isfinite(n):
                    raise ValueError(
                        f"grads[{name!r}] is not finite: the total gradient norm is {total}"
                    )
            raise ValueError(f"the total gradient norm is not finite ({total})")
    coef = min(max_norm / (total + 1e-6), 1.0) if not math.isnan(total) else math.nan
    for g in grads.values():
        g *= g.dtype.type(coef)
    return total
