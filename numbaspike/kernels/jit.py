"""``njit`` for the kernels: Numba's nopython pipeline, plus one pass that turns literal
arguments into constants, so that the branches of modes a kernel is not compiled for are
dropped before they are typed.

The LIF kernels take their modes (reset, surrogate, smooth, detach, parameter gradients,
which outputs to store) as integer and boolean arguments, and branch on them outside their
loops. Compiled for plain ``int64``/``boolean`` arguments, every branch (every mode) is
typed, lowered and optimised: the recurrent backward item with all its modes took 8-10 s of
the SHD-sized training step's cold start. :class:`~.work_items.WorkItem` therefore compiles
items with the mode arguments as Numba *literal* types (``Literal[int](0)``), and Numba
passes literal types on to the functions the item calls. But Numba's dead-branch pruning
resolves only constants (and ``None``), not the values of literal arguments. The pass
:class:`LiteralArgumentsAsConstants` closes that gap: it replaces, at the start of the
pipeline, each read of a literal integer or boolean argument by a constant of its value.
The pruning passes that follow (one before and two after the inlining of
``inline="always"`` functions, which resolve the inlined parameters through their
assignments) then drop the other modes' branches.

A function compiled for a literal argument is only ever called with that value (the
literal type is part of its signature), so the constant is the value the argument holds.
"""

from __future__ import annotations

from numba import njit as _numba_njit
from numba import types
from numba.core import ir
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.ir_utils import build_definitions
from numba.core.untyped_passes import IRProcessing

__all__ = ["LiteralArgumentsAsConstants", "KernelCompiler", "njit"]


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


class KernelCompiler(CompilerBase):
    """Numba's nopython pipeline with :class:`LiteralArgumentsAsConstants` after the IR is
    built (before the first dead-branch pruning)."""

    def define_pipelines(self):
        pm = self.nopython_pipeline()
        pm.finalize()
        return [pm]

    def nopython_pipeline(self):
        """The pass manager, not yet finalised (subclasses change its passes)."""
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(LiteralArgumentsAsConstants, IRProcessing)
        return pm


def njit(fn=None, **options):
    """``numba.njit`` with :class:`KernelCompiler`; used as ``@njit`` or ``@njit(...)``."""
    options.setdefault("pipeline_class", KernelCompiler)
    if fn is None:
        return _numba_njit(**options)
    return _numba_njit(**options)(fn)
