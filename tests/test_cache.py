"""Kernels loaded from Numba's on-disk cache (parallel ones included) give the same results
as freshly compiled ones, and an edit of any module of the package invalidates them."""

import hashlib
import os
import shutil
import subprocess
import sys

SNIPPET = r"""
import hashlib, numpy as np, numbaspike as ns
from numbaspike.kernels import cpu
small = np.ones((3, 1, 4), np.float32)  # small enough for the serial variants
for w_small in (None, np.eye(4, dtype=np.float32)):
    ns.lif_forward(small, w_rec=w_small)
cpu.SERIAL_WORK = 0  # force the parallel variants
rng = np.random.default_rng(0)
x = rng.normal(0.8, 3.0, (20, 4, 300)).astype(np.float32)
w = rng.normal(0, 0.2, (300, 300)).astype(np.float32)
h = hashlib.sha256()
for w_rec in (None, w):
    z, tape = ns.lif_forward(x, ns.LIFParameters(surrogate="atan", alpha=2.0), w_rec=w_rec)
    g = ns.lif_backward(np.ones_like(z), tape)
    for a in (z, tape.h, g.x, g.v0, np.asarray(g.tau_mem_inv), np.asarray(g.v_th)):
        h.update(np.ascontiguousarray(a).tobytes())
v, t = ns.li_forward(x)
h.update(ns.li_backward(np.ones_like(v), t).x.tobytes())
print(h.hexdigest())
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_cached_kernels_give_identical_results(tmp_path):
    fresh = _run(tmp_path)  # compiles and writes the cache
    index_files = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".nbi")]
    assert any("lif_feed_forward_forward" in f for f in index_files), index_files
    cached = _run(tmp_path)  # loads from the cache
    assert fresh == cached
    assert len(fresh) == len(hashlib.sha256().hexdigest())


def test_serial_and_parallel_variants_have_their_own_cache_entries(tmp_path):
    """Numba keys its cache by function name, not by compiler flags: without a separate
    name, the serial runner of the work items would load the parallel compilation (or vice
    versa). The snippet runs both."""
    _run(tmp_path)
    index_files = {f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".nbi")}
    parallel = [f for f in index_files if f.startswith("parallel_runner._run_items-")]
    serial = [f for f in index_files if f.startswith("parallel_runner._run_items_serial-")]
    assert parallel and serial, sorted(index_files)


STATS_SNIPPET = r"""
import numpy as np
from numbaspike.kernels import finite
finite.count_non_finite(np.ones(10, np.float32))
stats = finite._count_blocks.item.dispatcher.stats
print(finite.__file__, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_an_edit_anywhere_in_the_package_invalidates_its_cached_kernels(tmp_path):
    """Numba stamps a cached function with its own file only: a kernel of ``cpu.py`` would
    be loaded with the old code of an edited ``math.py`` or ``intrinsics.py``. numbaspike's
    locator adds a digest of the whole package (compiler/cache_stamp.py)."""
    import numbaspike

    copy = tmp_path / "src" / "numbaspike"
    shutil.copytree(
        os.path.dirname(numbaspike.__file__), copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    env = dict(
        os.environ, PYTHONPATH=str(tmp_path / "src"), NUMBA_CACHE_DIR=str(tmp_path / "cache")
    )

    def hits_and_misses():
        out = subprocess.run(
            [sys.executable, "-c", STATS_SNIPPET],
            env=env,
            cwd=tmp_path,  # not a directory with another numbaspike in it
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        path, hits, misses = out.stdout.split()
        assert path.startswith(str(copy)), path  # the copy, not the installed package
        return int(hits), int(misses)

    assert hits_and_misses() == (0, 1)  # compiled and cached
    assert hits_and_misses() == (1, 0)  # loaded
    # an edit of a module other than finite.py, the kernel's own file
    with open(copy / "compiler" / "intrinsics.py", "a") as module:
        module.write("\n# edited\n")
    assert hits_and_misses() == (0, 1)  # compiled again, not loaded stale
    assert hits_and_misses() == (1, 0)


def test_functions_outside_the_package_keep_numbas_locators():
    from numba.core import caching

    from numbaspike.compiler import cache_stamp

    assert caching.CacheImpl._locator_classes[0] is cache_stamp.PackageSourceLocator
    outside = cache_stamp.PackageSourceLocator.from_function(
        test_functions_outside_the_package_keep_numbas_locators, __file__
    )
    assert outside is None
