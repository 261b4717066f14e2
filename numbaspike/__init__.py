"""numbaspike: spiking neural networks on Numba kernels with hand-written, verified BPTT."""

import os as _os
import sys as _sys

if "numpy" not in _sys.modules:  # must precede OpenBLAS's start-up; see numbaspike.threads
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")

from . import buffers  # noqa: E402
from .functional import (  # noqa: E402
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
    "buffers",
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
