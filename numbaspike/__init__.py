"""numbaspike: spiking neural networks on Numba kernels with hand-written, verified BPTT."""

from .compiler.numba_version import check_numba_version as _check_numba_version

_check_numba_version()  # before any module builds on Numba's internals

from .runtime.openblas_spinning import shorten_loaded_openblas_spinning as _shorten_blas_spinning  # noqa: E402

_shorten_blas_spinning()  # before NumPy loads OpenBLAS if it has not yet

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
from .models import (  # noqa: E402
    LIFBoxParameters,
    LIFParameters,
    LIFRefracParameters,
    LIParameters,
    LSNNParameters,
)
from .neuron import Gradients, neuron_backward, neuron_forward, neuron_simulate  # noqa: E402
from .runtime import array_pool as buffers  # noqa: E402
from .runtime.threads import get_num_threads, set_num_threads  # noqa: E402
from .surrogates import SURROGATE_NAMES, surrogate_derivative, surrogate_forward  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Gradients",
    "LIFBoxParameters",
    "LIFRefracParameters",
    "LSNNParameters",
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
    "neuron_backward",
    "neuron_forward",
    "neuron_simulate",
    "set_num_threads",
    "surrogate_derivative",
    "surrogate_forward",
]
