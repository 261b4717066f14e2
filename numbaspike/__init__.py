"""numbaspike: spiking neural networks on Numba kernels with hand-written, verified BPTT."""

from .functional import (
    LIFGradients,
    LIFState,
    LIFTape,
    LIGradients,
    LIState,
    LITape,
    Simulation,
    li_backward,
    li_forward,
    lif_backward,
    lif_forward,
    lif_simulate,
)
from .params import LIFParameters, LIParameters
from .surrogates import SURROGATE_NAMES, surrogate_derivative, surrogate_forward
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "LIFGradients",
    "LIFParameters",
    "LIFState",
    "LIFTape",
    "LIGradients",
    "LIParameters",
    "LIState",
    "LITape",
    "SURROGATE_NAMES",
    "Simulation",
    "get_num_threads",
    "li_backward",
    "li_forward",
    "lif_backward",
    "lif_forward",
    "lif_simulate",
    "set_num_threads",
    "surrogate_derivative",
    "surrogate_forward",
]
