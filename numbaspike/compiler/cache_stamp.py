"""Numba's on-disk cache of numbaspike's kernels, invalidated by any change to numbaspike's
source, not only to the file that defines the kernel.

Numba keys a cached function's index by the modification time and size of the one file
that defines it. A kernel compiled from ``cpu.py`` inlines the surrogate functions of
``math.py``, the register tiles of ``intrinsics.py`` and the compiler passes of ``jit.py``,
and freezes module constants; after an edit of any of these, Numba would load the stale
machine code from the cache as long as ``cpu.py`` is unchanged, silently (a changed
surrogate formula, say, would not take effect). In a checkout installed in editable mode,
as the README's commands install it, that is every edit of the kernels but one.

:func:`install` therefore puts a locator ahead of Numba's own for the functions defined
in numbaspike's package: it is the locator Numba would have chosen (same cache
directory, same file names), whose source stamp is the function's own file stamp together
with a digest of every ``.py`` file of the package (:func:`package_digest`, computed once
per process, about 1-2 ms). Any edit of the package thus invalidates every cached kernel
of it; the next call compiles and overwrites the entries. Functions of other packages keep
Numba's locators unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import os

from numba.core import caching

__all__ = ["install", "package_digest", "PackageSourceLocator"]

#: The directory of the numbaspike package (``.../numbaspike``).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def package_digest() -> str:
    """A digest of the names and contents of every ``.py`` file of the package."""
    digest = hashlib.blake2b(digest_size=16)
    for root, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, PACKAGE_DIR).encode())
            try:
                with open(path, "rb") as source:
                    digest.update(source.read())
            except OSError:  # unreadable: its name still counts, and import goes on
                digest.update(b"\0unreadable")
    return digest.hexdigest()


def _in_package(py_file: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(py_file), PACKAGE_DIR]) == PACKAGE_DIR
    except ValueError:  # another drive (Windows)
        return False


class PackageSourceLocator(caching._CacheLocator):
    """The locator Numba would choose for a function of numbaspike (``inner``), with the
    package's digest added to its source stamp."""

    def __init__(self, inner):
        self._inner = inner
        self._py_file = getattr(inner, "_py_file", None)  # for Numba's warnings

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return (self._inner.get_source_stamp(), package_digest())

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _in_package(py_file):
            return None
        for other in caching.CacheImpl._locator_classes:
            if other is cls:
                continue
            inner = other.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner)
        return None


def _supported() -> bool:
    """Whether this Numba has the locator list this module extends (Numba 0.59 to 0.68 at
    least); otherwise Numba's own locators stay, with their per-file stamps."""
    impl = getattr(caching, "CacheImpl", None)
    base = getattr(caching, "_CacheLocator", None)
    return (
        isinstance(getattr(impl, "_locator_classes", None), list)
        and isinstance(base, type)
        and issubclass(PackageSourceLocator, base)
    )


def install() -> bool:
    """Put :class:`PackageSourceLocator` first in Numba's locator list (once); returns
    whether it is installed."""
    if not _supported():
        return False
    classes = caching.CacheImpl._locator_classes
    if PackageSourceLocator not in classes:
        classes.insert(0, PackageSourceLocator)
    return True
