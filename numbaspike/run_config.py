"""The configuration of a ``numbaspike train`` run: its defaults, and what a resumed run may change.

A run is described by the options of :data:`RUN_OPTIONS`, resolved to concrete values
(:func:`resolve_run_config`) and recorded in every checkpoint it writes. A resumed run
takes its configuration from the checkpoint: an option given again must agree with the
recorded value (:func:`resume_conflicts`), except those of :data:`MAY_DIFFER_ON_RESUME`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MAY_DIFFER_ON_RESUME",
    "RUN_DEFAULTS",
    "RUN_OPTIONS",
    "TASKS",
    "TASK_DEFAULTS",
    "RunConfigError",
    "resolve_run_config",
    "resume_conflicts",
]

TASKS = ("randman", "digits", "shd")

#: Per-task defaults of the options whose best value depends on the data.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "randman": {"epochs": 15, "steps": 50, "input_scale": 10.0},
    "digits": {"epochs": 20, "steps": 30, "input_scale": 10.0},
    "shd": {"epochs": 20, "steps": 100, "input_scale": 5.0},
}

#: Factor on the task's default input gain per neuron model: LIFBox has no synaptic current,
#: so an input acts on the membrane within one step (:math:`a_m x`) instead of through a
#: current that decays over :math:`1/a_s` steps (:math:`a_m x / a_s`, 5x more at the defaults).
NEURON_INPUT_GAIN: dict[str, float] = {"lif_box": 5.0}

#: Defaults of the options that do not depend on the task.
RUN_DEFAULTS: dict[str, Any] = {
    "task": "randman",
    "path": None,
    "hidden": 128,
    "batch_size": 64,
    "lr": 2e-3,
    "neuron": "lif",
    "surrogate": "superspike",
    "alpha": 100.0,
    "max_samples": None,
    "seed": 0,
    "dtype": "float32",
}

#: The options that define a run (the data, the network, the optimiser, the schedule).
RUN_OPTIONS = (
    "task",
    "path",
    "hidden",
    "neuron",
    "epochs",
    "batch_size",
    "lr",
    "surrogate",
    "alpha",
    "steps",
    "input_scale",
    "max_samples",
    "seed",
    "dtype",
)

#: Run options that a resumed run may set to another value (a larger ``epochs`` trains on);
#: the output folder and the display options are not run options at all.
MAY_DIFFER_ON_RESUME = ("epochs",)


class RunConfigError(ValueError):
    """A recorded run configuration is missing or malformed."""


def resolve_run_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every run option with a concrete value: the given ones, else the defaults.

    Parameters
    ----------
    options : mapping
        Option name -> value, ``None`` (or absent) for "not given". Keys other than
        :data:`RUN_OPTIONS` are ignored.

    Returns
    -------
    dict
        One entry per name of :data:`RUN_OPTIONS`; ``path`` is an absolute path string (or
        None), so that a run resumed from another folder finds the same file.
    """
    task = options.get("task") or RUN_DEFAULTS["task"]
    if task not in TASK_DEFAULTS:
        raise RunConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
    config: dict[str, Any] = {}
    for name in RUN_OPTIONS:
        value = options.get(name)
        if value is None:
            value = TASK_DEFAULTS[task].get(name, RUN_DEFAULTS.get(name))
        config[name] = value
    config["task"] = task
    if options.get("input_scale") is None:
        config["input_scale"] *= NEURON_INPUT_GAIN.get(config["neuron"], 1.0)
    if config["path"] is not None:
        config["path"] = str(Path(config["path"]).expanduser().resolve())
    return config


def recorded_run_config(recorded: Any) -> dict[str, Any]:
    """The resolved configuration of a checkpoint's ``config`` entry.

    Checkpoints of earlier versions recorded the raw options (``None`` for a task
    default); they resolve to the values that run used.

    Raises
    ------
    RunConfigError
        If ``recorded`` is not a mapping with the run's options of the right types.
    """
    if not isinstance(recorded, Mapping) or not any(k in recorded for k in RUN_OPTIONS):
        raise RunConfigError(
            "it records no run configuration (it was not written by `numbaspike train`)"
        )
    config = resolve_run_config(recorded)
    kinds = {
        "hidden": int,
        "epochs": int,
        "batch_size": int,
        "steps": int,
        "seed": int,
        "max_samples": (int, type(None)),
        "lr": (int, float),
        "alpha": (int, float),
        "input_scale": (int, float),
        "surrogate": str,
        "neuron": str,
        "dtype": str,
        "path": (str, type(None)),
    }
    for name, kind in kinds.items():
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise RunConfigError(f"its recorded option {name!r} is malformed: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RunConfigError(f"its recorded option {name!r} is not finite: {value!r}")
    return config


def resume_conflicts(given: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """The options given to a resumed run that contradict the checkpoint's configuration.

    Parameters
    ----------
    given : mapping
        The options given on the command line (``None`` for "not given").
    recorded : mapping
        The checkpoint's resolved configuration (:func:`recorded_run_config`).

    Returns
    -------
    list of str
        One line per conflicting option, e.g. ``"--hidden 16 (the checkpoint has 128)"``;
        empty when the options agree.
    """
    conflicts = []
    for name in RUN_OPTIONS:
        value = given.get(name)
        if value is None or name in MAY_DIFFER_ON_RESUME:
            continue
        if name == "path":
            value = str(Path(value).expanduser().resolve())
        if value != recorded[name]:
            flag = "--" + name.replace("_", "-")
            conflicts.append(f"{flag} {value} (the checkpoint has {recorded[name]})")
    return conflicts
