"""Neuron models, one file each; importing this package registers them.

See :mod:`numbaspike.models.base` for what a model file provides, and ``docs/design.md``
("Adding a neuron model").
"""

from .base import NeuronModel, Specialisation, model_named, model_of, register, registered_models
from .li import LI, LIParameters
from .lif import LIF, LIFParameters
from .lif_box import LIF_BOX, LIFBoxParameters
from .lif_refrac import LIF_REFRAC, LIFRefracParameters
from .lsnn import LSNN, LSNNParameters

__all__ = [
    "LI",
    "LIF",
    "LIFParameters",
    "LIParameters",
    "Specialisation",
    "LIF_BOX",
    "LIFBoxParameters",
    "LIF_REFRAC",
    "LIFRefracParameters",
    "LSNN",
    "LSNNParameters",
    "NeuronModel",
    "model_named",
    "model_of",
    "register",
    "registered_models",
]
