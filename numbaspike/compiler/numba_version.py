"""The Numba versions numbaspike supports, checked when the package is imported.

The kernel machinery (:mod:`numbaspike.compiler.mode_pruning`, :mod:`numbaspike.compiler.parallel_runner`,
:mod:`numbaspike.compiler.cache_stamp`) builds on Numba internals (``numba.core`` compiler
passes, lowering and caching) that change between releases without notice, so a Numba
outside the tested range must fail here, with a message naming that range, rather than deep
in the first compile.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

__all__ = ["SUPPORTED_NUMBA", "check_numba_version", "numba_version_tuple"]

#: ``(lowest, first unsupported)`` Numba release: the range the test suite runs on.
SUPPORTED_NUMBA: tuple[tuple[int, int], tuple[int, int]] = ((0, 68), (0, 69))

#: Set to 1 to import numbaspike with any Numba (unsupported: kernels may fail to compile).
OVERRIDE_VARIABLE = "NUMBASPIKE_ANY_NUMBA"


def numba_version_tuple(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a Numba version string such as ``"0.68.1"`` or ``"0.69.0rc1"``."""
    match = re.match(r"\s*(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"version must look like 'MAJOR.MINOR[...]', got {version!r}")
    return int(match.group(1)), int(match.group(2))


def _range_text() -> str:
    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED_NUMBA
    return f"numba>={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


def check_numba_version(version: str | None = None) -> None:
    """Raise ImportError unless ``version`` (default: the installed Numba's) is supported.

    Parameters
    ----------
    version : str, optional
        A Numba version string; the installed distribution's when omitted.

    Raises
    ------
    ImportError
        Naming the installed version and the supported range, unless the environment
        variable ``NUMBASPIKE_ANY_NUMBA=1`` accepts any version.
    """
    if os.environ.get(OVERRIDE_VARIABLE) == "1":
        return
    if version is None:
        try:
            version = metadata.version("numba")
        except metadata.PackageNotFoundError:
            raise ImportError(
                f"numbaspike needs Numba ({_range_text()}): pip install '{_range_text()}'"
            ) from None
    low, high = SUPPORTED_NUMBA
    if not low <= numba_version_tuple(version) < high:
        raise ImportError(
            f"numbaspike supports {_range_text()} (its kernels build on Numba internals that "
            f"change between releases), but Numba {version} is installed: "
            f"pip install '{_range_text()}', or set {OVERRIDE_VARIABLE}=1 to try it anyway"
        )
