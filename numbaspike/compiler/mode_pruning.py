"""``njit`` for the kernels: Numba's nopython pipeline with two changes, so that the branches
of modes a kernel is not compiled for are dropped before they are typed, and before the
functions they call are inlined.

The LIF kernels take their modes (reset, surrogate, smooth, detach, parameter gradients,
which outputs to store) as integer and boolean arguments, and branch on them outside their
loops. Compiled for plain ``int64``/``boolean`` arguments, every branch (every mode) is
typed, lowered and optimised, which dominated the cold start.
:class:`~.parallel_runner.WorkItem` therefore compiles
items with the mode arguments as Numba *literal* types (``Literal[int](0)``), and Numba
passes literal types on to the functions the item calls. But Numba's dead-branch pruning
resolves only constants (and ``None``), not the values of literal arguments. The pass
:class:`LiteralArgumentsAsConstants` closes that gap: it replaces, at the start of the
pipeline, each read of a literal integer or boolean argument by a constant of its value.
The pruning passes that follow (one before and two after the inlining of
``inline="always"`` functions, which resolve the inlined parameters through their
assignments) then drop the other modes' branches.

Numba inlines an ``inline="always"`` callee with everything that callee inlines in turn,
all of it before any pruning: a step function that picks one of three specialised loops by
its mode arguments brought in all three, with their callees. :class:`InlineInlinablesByLevel`
replaces Numba's inlining pass: it inlines one call level at a time, each callee without its
own inlined calls, and prunes between levels, so that only the calls in the live branches
are inlined. For the recurrent forward item of the SHD-sized training step the inlining went
from 0.6-1.0 s to 0.16-0.18 s (the same IR is typed and lowered after it).

A function compiled for a literal argument is only ever called with that value (the
literal type is part of its signature), so the constant is the value the argument holds.
"""

from __future__ import annotations

import inspect

from numba import njit as _numba_njit
from numba import types
from numba.core import ir, postproc
from numba.core.analysis import compute_cfg_from_blocks, dead_branch_prune
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, PassManager, register_pass
from numba.core.inline_closurecall import InlineWorker, callee_ir_validator
from numba.core.ir_utils import build_definitions, guard, simplify_CFG
from numba.core.untyped_passes import InlineInlinables, IRProcessing

__all__ = ["LiteralArgumentsAsConstants", "KernelCompiler", "njit", "replace_pass"]


@register_pass(mutates_CFG=False, analysis_only=False)
class LiteralArgumentsAsConstants(FunctionPass):
    """Replace ``x = arg(k)`` by ``x = const(v)`` where argument ``k`` has the literal
    integer or boolean type of value ``v``."""

    _name = "numbaspike_literal_arguments_as_constants"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        changed = False
        for block in state.func_ir.blocks.values():
            for stmt in block.body:
                if isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Arg):
                    argtype = state.args[stmt.value.index]
                    if isinstance(argtype, (types.IntegerLiteral, types.BooleanLiteral)):
                        stmt.value = ir.Const(argtype.literal_value, stmt.value.loc)
                        changed = True
        if changed:
            state.func_ir._definitions = build_definitions(state.func_ir.blocks)
        return changed


def _untyped_pipeline_without_inlining(state, name="untyped"):
    """Numba's untyped pipeline less :class:`InlineInlinables`: the IR of a callee about to
    be inlined, whose own inlinable calls the caller inlines after pruning."""
    full = DefaultPassBuilder.define_untyped_pipeline(state, name)
    pm = PassManager(name)
    pm.passes = [entry for entry in full.passes if entry[0] is not InlineInlinables]
    pm.finalize()
    return pm


class _CalleeWorker(InlineWorker):
    """An :class:`InlineWorker` whose callees come without their own inlined calls.

    Callees' IR is not kept for their next call site: that saves little compile time, not
    worth a cache whose key would have to cover every flag of the pipeline."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._compiler_pipeline = _untyped_pipeline_without_inlining


@register_pass(mutates_CFG=True, analysis_only=False)
class InlineInlinablesByLevel(InlineInlinables):
    """Numba's inlining of ``inline="always"`` functions one call level at a time, with the
    dead branches pruned between levels.

    Numba inlines a callee together with everything it inlines in turn, so every branch of
    every mode of a nested callee is copied in (and pruned only afterwards). Here a level's
    callees arrive without their own inlinable calls; after the level, the branches that
    its constants (the literal modes, passed on as arguments) decide are pruned, and only
    the calls left in the live branches are inlined at the next level."""

    _name = "numbaspike_inline_inlinables_by_level"

    def run_pass(self, state):
        worker = _CalleeWorker(
            state.typingctx, state.targetctx, state.locals, state.pipeline, state.flags,
            validator=callee_ir_validator,
        )  # fmt: skip
        modified = False
        while self._inline_level(state, worker):
            modified = True
            self._clean_up(state)
            dead_branch_prune(state.func_ir, state.args)
        if modified:
            self._clean_up(state)
        return True

    def _inline_level(self, state, worker) -> bool:
        """Inline the inlinable calls of the current IR (not those of the callees)."""
        inlined = False
        work_list = list(state.func_ir.blocks.items())
        while work_list:
            _, block = work_list.pop()
            for i, stmt in enumerate(block.body):
                if not (isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Expr)):
                    continue
                if stmt.value.op != "call":
                    continue
                new_blocks = []
                if guard(self._do_work, state, new_blocks, block, i, stmt.value, worker):
                    inlined = True
                    work_list.append(new_blocks[0])  # the rest of this block
                    break
        return inlined

    @staticmethod
    def _clean_up(state):
        cfg = compute_cfg_from_blocks(state.func_ir.blocks)
        for dead in cfg.dead_nodes():
            del state.func_ir.blocks[dead]
        postproc.PostProcessor(state.func_ir).run()
        state.func_ir.blocks = simplify_CFG(state.func_ir.blocks)


def _inlining_by_level_supported() -> bool:
    """Whether this Numba has the inliner internals :class:`InlineInlinablesByLevel` builds
    on (those of Numba 0.59 to 0.68 at least); otherwise Numba's own inlining pass stays,
    which compiles the same kernels, only more slowly."""
    try:
        do_work = list(inspect.signature(InlineInlinables._do_work).parameters)
        worker = InlineWorker()
    except (AttributeError, TypeError, ValueError):
        return False
    return do_work == ["self", "state", "work_list", "block", "i", "expr", "inline_worker"] and (
        hasattr(worker, "_compiler_pipeline") and hasattr(worker, "run_untyped_passes")
    )


_INLINING_PASS = InlineInlinablesByLevel if _inlining_by_level_supported() else InlineInlinables


def replace_pass(pm: PassManager, old: type, new: type) -> None:
    """Put pass ``new`` in the place of ``old`` in the (not yet finalised) ``pm``."""
    pm.passes = [(new if cls is old else cls, description) for cls, description in pm.passes]


class KernelCompiler(CompilerBase):
    """Numba's nopython pipeline with :class:`LiteralArgumentsAsConstants` after the IR is
    built (before the first dead-branch pruning) and :class:`InlineInlinablesByLevel` in
    place of Numba's inlining pass."""

    def define_pipelines(self):
        pm = self.nopython_pipeline()
        pm.finalize()
        return [pm]

    def nopython_pipeline(self):
        """The pass manager, not yet finalised (subclasses change its passes)."""
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(LiteralArgumentsAsConstants, IRProcessing)
        replace_pass(pm, InlineInlinables, _INLINING_PASS)
        return pm


def njit(fn=None, **options):
    """``numba.njit`` with :class:`KernelCompiler`; used as ``@njit`` or ``@njit(...)``."""
    options.setdefault("pipeline_class", KernelCompiler)
    if fn is None:
        return _numba_njit(**options)
    return _numba_njit(**options)(fn)
