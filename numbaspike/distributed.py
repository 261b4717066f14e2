r"""Data-parallel training on MPI: the communication behind ``fit(..., comm=...)``.

Each of the :math:`K` ranks of an mpi4py communicator takes a contiguous shard of every
global batch (in the one-process sample order, as even as possible), runs the forward and
backward passes on it, and the ranks combine their gradients into the gradient of the same
global-batch loss:

.. math::

    g = \sum_{k=0}^{K-1} w_k\, g_k, \qquad
    w_k = \begin{cases} B_k / B & \text{a loss that averages over the batch} \\
                        1 & \text{a summed loss (``reduction="sum"``)} \end{cases}

applied to the loss and to each regulariser by its own reduction. The sum is taken in a
fixed order (two ranks: rank 0 adds the shards and sends the result back; more: a ring
allreduce whose every chunk is added in a fixed ring order), so that for a given :math:`K`
two runs give the same bits whatever the timing. Across different :math:`K` the
order of the floating-point additions differs, so results differ by rounding, which a
spiking network amplifies over many steps.

Every collective is watched: a rank that has not answered within ``timeout`` seconds (it was
killed, or hangs) makes the others stop with a message naming it (``comm.Abort``); a rank
that raises prints its error and stops every rank the same way (:func:`abort_on_error`).
mpi4py is imported lazily (``pip install "numbaspike[mpi]"``; on a machine without an MPI,
``pip install mpich`` brings one with its ``mpiexec``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping

import numpy as np

__all__ = [
    "Group",
    "abort_on_error",
    "batch_weight",
    "mpi",
    "reduction_of",
    "set_rank_threads",
    "shard",
]

_SUM_TAG, _RESULT_TAG, _OBJECT_TAG = 7101, 7102, 7103
#: How often a waiting rank polls its pending message (s); small against a training step.
_POLL_S = 1e-4


def mpi():
    """The ``mpi4py.MPI`` module, or an ImportError naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(
            "distributed training needs mpi4py: pip install 'numbaspike[mpi]' (and, on a "
            "machine without an MPI library, pip install mpich)"
        ) from None
    return MPI


class Group:
    """An mpi4py communicator with watched collectives that combine in rank order.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    timeout : float
        Seconds a rank waits for another before stopping every rank (> 0).
    """

    def __init__(self, comm, timeout: float = 300.0) -> None:
        MPI = mpi()
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator, got {type(comm).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"mpi_timeout must be a number of seconds > 0, got {timeout!r}")
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = float(timeout)

    # -- stopping everyone ---------------------------------------------------------------
    def abort(self, message: str) -> None:
        """Print ``message`` (naming this rank) and stop every rank of the job."""
        print(f"numbaspike: rank {self.rank} of {self.size}: {message}", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        self.comm.Abort(1)

    def _wait(self, request, peer: int, what: str):
        """Complete ``request`` (a message from or to ``peer``) within the timeout.

        The other ranks wait for rank 0 twice as long as rank 0 waits for them, so that the
        rank that reports a silent rank is rank 0, which knows which one it is."""
        patience = self.timeout if self.rank == 0 else 2 * self.timeout
        deadline = time.monotonic() + patience
        while True:
            done, value = request.test()
            if done:
                return value
            if time.monotonic() > deadline:
                self.abort(
                    f"rank {peer} did not answer within {patience:g} s during {what} (it "
                    "died or hangs); stopping every rank"
                )
            time.sleep(_POLL_S)

    # -- collectives ---------------------------------------------------------------------
    def sum(self, buf: np.ndarray, what: str) -> np.ndarray:
        """The sum over ranks of ``buf`` (1-d, float64), the same bits on every rank.

        Two ranks: rank 0 adds the buffers and sends the sum back. More ranks: a ring
        allreduce (each rank moves ``2 (K-1)/K`` buffers), whose chunk ``c`` is added in the
        fixed ring order ``x_c + x_{c+1} + ... + x_{c-1}``."""
        buf = np.ascontiguousarray(buf, np.float64)
        if self.size == 1:
            return buf
        if self.size > 2:
            return self._ring_sum(buf, what)
        comm = self.comm
        if self.rank == 0:
            parts = [np.empty_like(buf) for _ in range(1, self.size)]
            pending = [comm.Irecv(p, source=k, tag=_SUM_TAG) for k, p in enumerate(parts, 1)]
            for k, request in enumerate(pending, 1):
                self._wait(request, k, what)
            total = buf.copy()
            for part in parts:
                total += part
            sends = [comm.Isend(total, dest=k, tag=_RESULT_TAG) for k in range(1, self.size)]
            for k, request in enumerate(sends, 1):
                self._wait(request, k, what)
            return total
        self._wait(comm.Isend(buf, dest=0, tag=_SUM_TAG), 0, what)
        total = np.empty_like(buf)
        self._wait(comm.Irecv(total, source=0, tag=_RESULT_TAG), 0, what)
        return total

    def _ring_sum(self, buf: np.ndarray, what: str) -> np.ndarray:
        comm, rank, size = self.comm, self.rank, self.size
        self._roll_call(what)
        chunks = [shard(buf.size, c, size) for c in range(size)]
        acc = buf.copy()
        right, left = (rank + 1) % size, (rank - 1) % size
        incoming = np.empty(max(c.stop - c.start for c in chunks))
        for step in range(2 * (size - 1)):
            gather = step >= size - 1  # the second half passes the finished chunks on
            k = step - (size - 1) if gather else step
            out = chunks[(rank + 1 - k) % size] if gather else chunks[(rank - k) % size]
            into = chunks[(rank - k) % size] if gather else chunks[(rank - k - 1) % size]
            recv = incoming[: into.stop - into.start]
            payload = acc[out].copy()  # held until the send completes
            sent = comm.Isend(payload, dest=right, tag=_SUM_TAG)
            self._wait(comm.Irecv(recv, source=left, tag=_SUM_TAG), left, what)
            self._wait(sent, right, what)
            if gather:
                acc[into] = recv
            else:
                acc[into] = recv + acc[into]  # partial sum of the ranks before, then own
        return acc

    def _roll_call(self, what: str) -> None:
        """Every rank tells rank 0 it has reached the collective, so that rank 0 can name a
        rank that never does (a ring neighbour could only name its neighbour)."""
        comm = self.comm
        if self.rank == 0:
            flags = [np.zeros(1, np.int8) for _ in range(1, self.size)]
            pending = [comm.Irecv(f, source=k, tag=_OBJECT_TAG) for k, f in enumerate(flags, 1)]
            for k, request in enumerate(pending, 1):
                self._wait(request, k, what)
        else:
            self._wait(comm.Isend(np.ones(1, np.int8), dest=0, tag=_OBJECT_TAG), 0, what)

    def broadcast(self, buf: np.ndarray, what: str) -> np.ndarray:
        """Rank 0's ``buf`` on every rank (in place)."""
        if self.size == 1:
            return buf
        comm = self.comm
        if self.rank == 0:
            sends = [comm.Isend(buf, dest=k, tag=_RESULT_TAG) for k in range(1, self.size)]
            for k, request in enumerate(sends, 1):
                self._wait(request, k, what)
        else:
            self._wait(comm.Irecv(buf, source=0, tag=_RESULT_TAG), 0, what)
        return buf

    def gather_objects(self, obj, what: str) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None elsewhere."""
        if self.size == 1:
            return [obj]
        comm = self.comm
        if self.rank == 0:
            pending = [comm.irecv(source=k, tag=_OBJECT_TAG) for k in range(1, self.size)]
            return [obj] + [self._wait(r, k, what) for k, r in enumerate(pending, 1)]
        self._wait(comm.isend(obj, dest=0, tag=_OBJECT_TAG), 0, what)
        return None

    def share_object(self, obj, what: str):
        """Rank 0's ``obj`` on every rank."""
        if self.size == 1:
            return obj
        comm = self.comm
        if self.rank == 0:
            sends = [comm.isend(obj, dest=k, tag=_OBJECT_TAG) for k in range(1, self.size)]
            for k, request in enumerate(sends, 1):
                self._wait(request, k, what)
            return obj
        return self._wait(comm.irecv(source=0, tag=_OBJECT_TAG), 0, what)

    def check_same(self, items: Mapping[str, str], what: str) -> None:
        """Raise the same ValueError on every rank if some rank's ``items`` (name ->
        fingerprint) differ from rank 0's, naming the items and the ranks."""
        everyone = self.gather_objects(dict(items), what)
        problems: list[str] = []
        if everyone is not None:
            reference = everyone[0]
            for name in reference:
                ranks = [k for k, d in enumerate(everyone) if d.get(name) != reference[name]]
                if ranks:
                    problems.append(f"{name} (ranks {ranks} differ from rank 0)")
        problems = self.share_object(problems, what)
        if problems:
            raise ValueError(
                f"the ranks were started with different {what}: " + "; ".join(problems)
            )


@contextlib.contextmanager
def abort_on_error(group: Group | None) -> Iterator[None]:
    """Turn an exception on one rank into a stop of every rank, with its message printed
    (the others would otherwise wait for it forever)."""
    if group is None or group.size == 1:
        yield
        return
    try:
        yield
    except BaseException as err:  # noqa: BLE001 - every error must stop the other ranks
        group.abort(f"{type(err).__name__}: {err}")
        raise


# ---------------------------------------------------------------------------------------
# What each rank computes
# ---------------------------------------------------------------------------------------


def shard(batch: int, rank: int, size: int) -> slice:
    """The contiguous part of a global batch of ``batch`` samples that ``rank`` takes: the
    first ``batch % size`` ranks take one sample more."""
    base, extra = divmod(batch, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def reduction_of(obj, what: str) -> str:
    """The batch reduction a loss or regulariser declares (``obj.reduction``): how a shard's
    gradient is weighted. A loss without one is refused: it cannot be combined correctly."""
    reduction = getattr(obj, "reduction", None)
    if reduction not in ("mean", "batchmean", "sum"):
        raise ValueError(
            f"{what} ({type(obj).__name__}) declares no batch reduction: distributed training "
            "needs its `reduction` attribute ('mean' or 'batchmean' for a value averaged over "
            "the batch, 'sum' for a summed one) to combine the ranks' gradients"
        )
    return reduction


def batch_weight(reduction: str, local: int, total: int) -> float:
    """The factor of a shard's loss and gradient in the global-batch ones."""
    return 1.0 if reduction == "sum" else local / total


def fingerprint(value) -> str:
    """A short stable digest of a JSON-able value or an array."""
    h = hashlib.sha256()
    if isinstance(value, np.ndarray):
        h.update(str((value.dtype.str, value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(json.dumps(value, sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


def set_rank_threads(group: Group) -> int:
    """Give each rank (cores of its node) / (ranks on its node) Numba and OpenBLAS threads;
    returns that number."""
    MPI = mpi()
    local = group.comm.Split_type(MPI.COMM_TYPE_SHARED, group.rank)
    try:
        ranks_here = local.Get_size()
    finally:
        local.Free()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // ranks_here)
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _set_openblas_threads(threads)
    return threads


def _set_openblas_threads(n: int) -> None:
    from .runtime.openblas_spinning import loaded_openblas_paths

    for path in loaded_openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                break
