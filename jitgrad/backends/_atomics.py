"""Atomics for the chunk form of generated kernels (codegen.render_fused ``parallel``; the
launch protocol is described in backends/cpu above ``_pool_size``). Defining them compiles
nothing; they are part of every kernel's cache identity (cpu._prelude_hash)."""
import platform

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_inline = dict(inline="always", error_model="numpy")
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

# ``ctl`` is one launch's int64[5]: [0] the next chunk to claim, [1] chunks done, [2] workers
# inside the launch (a worker enters in its kernel and leaves in cpu._idle_wait, back in native
# code), [3] 1 once the launching thread has seen every chunk done, [4] the guided split (runs
# of 1 / ctl[4] of the chunks left); ``pool`` is cpu.POOL.state: [0] counts launches whose
# leading kernel has started.

@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """``arr[idx] += val`` as one sequentially consistent atomic; returns the old value."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None
    sig = types.int64(arr, idx, types.int64)

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        a = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, a, [args[1]], wraparound=False)
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")
    return sig, codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """``arr[idx]`` as an acquire load (polling without writing the cache line)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None
    sig = types.int64(arr, idx)

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        a = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, a, [args[1]], wraparound=False)
        return builder.load_atomic(ptr, "acquire", 8)
    return sig, codegen


@intrinsic
def spin_pause(typingctx):
    """The x86 ``pause`` hint of a spin-wait loop (a no-op elsewhere)."""
    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


PAR_BLOCK = 4096  # elements per chunk (the kernel's chunk indices and cpu.ChunkedKernel's count)


# Spin bounds, in pauses (~23 ns each on the EPYC here; longer on recent Intel cores).
SPIN_LEAD = 1 << 16   # (~1.5 ms) the launching thread waits for chunks workers still hold
RUN_MAX = 16         # chunks per run at most (W1 float32 at 1e7: 8.73 ms with runs of
                     # up to n/4 chunks, 7.77 ms with single chunks)
SPIN_LEAVE = 1 << 10  # (~25 us) then for the workers to leave (their Python, a few us)


@numba.njit(**_inline)
def chunk_enter(ctl, pool, lead):
    if lead:
        atomic_add(pool, 0, 1)  # (wakes the workers spinning in cpu._idle_wait)
    else:
        atomic_add(ctl, 2, 1)


@numba.njit(**_inline)
def chunk_claim(ctl, n_par):
    """The next run of chunks ``[lo, hi)`` (``lo >= n_par``: none left): ``1 / ctl[4]`` of
    the chunks still unclaimed, at least one and at most RUN_MAX. Single chunks interleaved
    between threads made memory-bound kernels 1.8-3x slower than HEAD's 1M-element claims
    (e.g. a 4-row sum over 2^22 float32: 465 -> 850 us); unbounded guided runs cost W1 float32
    at 1e7 12% against single chunks; runs of up to 16 chunks are at or below both."""
    c = atomic_load(ctl, 0)
    k = (n_par - c) // ctl[4]
    k = k if k > 1 else 1
    k = k if k < RUN_MAX else RUN_MAX
    c = atomic_add(ctl, 0, k)
    return c, min(c + k, n_par)


@numba.njit(**_inline)
def chunk_finish(ctl, n_par, lead):
    """The launching thread waits natively (bounded) until every chunk is done, and sets
    ``ctl[3]`` when it saw that (its acquire loads order the outputs' writes before its own
    later reads); then, briefly, until the workers have left, so that it takes the GIL back
    without waiting for a worker's Python."""
    if lead:
        k = 0
        while atomic_load(ctl, 1) < n_par:
            if k >= SPIN_LEAD:
                return
            spin_pause()
            k += 1
        ctl[3] = 1
        k = 0
        while atomic_load(ctl, 2) > 0 and k < SPIN_LEAVE:
            spin_pause()
            k += 1
