"""The compact layer's products and the sorted index behind them, kept current in O(K) passes.

A compact layer (sparse.CompactLinear) keeps its K connections in slot order (the interface's
order, layer_api.Rewired). The products need them grouped by row (CSR of W, rows = outputs) and,
only when the layer's input needs a gradient, by column (CSR of W^T). Each grouping is a
`SortedSlots` index: the slots' keys in ascending order (row-major flat position, or its
column-major twin) and the slot behind each entry. Rewiring m connections updates an index by
a linear merge (`merge_sorted`: one cumulative sum and two scatters over K plus O(m log K)
binary searches for the m keys that leave and the m that arrive), never a sort of K keys. It
makes no host synchronisation, so on CUDA the products and the bookkeeping add no sync to the
optimizer's one per step.

The products (`CSRProduct`) are torch.sparse calls; each choice below was measured on the
development machine (AMD EPYC, 2 cores, torch 2.13 CPU with MKL, batch 64, float32, one thread:
the two-thread figures jump by up to 30x when other processes hold a core; medians of 5):

- forward y^T = W x^T: CSR (int32 indices) @ x^T. 4096^2 at 1%: 1.8 ms; 16384^2 at 1%: 33 ms
  (int64 indices: 1.9 / 40 ms; x @ W.t() through torch's CSC path: 11 ms at 4096^2, and the
  transposed CSR as the right operand of torch.mm: 64 ms).
- dE/dvalues = (dE/dy)^T x sampled at the pattern: `torch.sparse.sampled_addmm` with dE/dy^T
  contiguous. O(K x batch) (one dot product of length batch per connection): 1.7 ms / 32 ms at
  the sizes above. Gathering the rows of dE/dy^T and x^T and summing their product in chunks
  (the same O(K x batch) work, unfused) took 25 ms at 4096^2: not used.
- dE/dx = (W^T dE/dy^T)^T: only when the input requires a gradient (not the first layer of a
  network on raw data), through the CSR of W^T; the CSC view W.t() @ dE/dy^T costs 4-5x the CSR
  product (torch converts it), so the column-major index is built on first need and merged
  from then on.
- values enter the CSR in entry order: one gather of K per forward and one scatter of K for the
  gradient (the slot order is the interface's and cannot follow the rows).
- torch.compile was not used: it needs a C++ compiler at run time on CPU, and the fused
  sampled_addmm already costs one pass over K x batch.
- the forward's output is made contiguous: MSE on the transposed product took 1.07 ms at
  4096 x 64, on a contiguous copy 0.48 ms with the copy.

The merge (1% of K replaced, one thread, loaded machine, best of 31): 1.4 ms at K = 168k
(3.5 ms when every call allocated its arrays anew: first-touch page faults; 4.2 ms for the
previous merge: a gather of a changed-flag through the order, nonzero, index_copy_), 72 ms at
K = 2.7 million (95 ms with fresh arrays). index_copy_ cost 4x scatter_ for the same K-long
scatter (0.66 / 0.13 ms at 168k), so the merge scatters.
"""
from __future__ import annotations

import warnings

import torch


# -- sorted slot indices ------------------------------------------------------------------------
# An index is (keys ascending, the slot of each entry, the CSR column of each entry (int32 where
# it fits, else int64)), for keys = row * n_cols + col.
def _col_dtype(n_cols: int, k: int) -> torch.dtype:
    return torch.int32 if n_cols < 2**31 and k < 2**31 else torch.int64


def sort_slots(keys: torch.Tensor, n_cols: int) -> tuple[torch.Tensor, ...]:
    """The index of keys given in slot order, from scratch (a full sort: building an index)."""
    s = keys.sort()
    return s.values, s.indices, (s.values % n_cols).to(_col_dtype(n_cols, keys.numel()))


def locate(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Index of the first key >= each query (searchsorted), searching the queries in ascending
    order: 23k queries in K = 1.7 million took 6.5 ms with the sort, 12 ms in random order."""
    if queries.numel() < 2:
        return torch.searchsorted(keys, queries)
    q, perm = queries.sort()
    return torch.empty_like(perm).scatter_(0, perm, torch.searchsorted(keys, q))


def find_sorted(keys: torch.Tensor, order: torch.Tensor,
                queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(is present, its slot where it is) for each query key."""
    if keys.numel() == 0:
        z = torch.zeros_like(queries)
        return z.bool(), z
    at = locate(keys, queries).clamp_(max=keys.numel() - 1)
    return keys.index_select(0, at) == queries, order.index_select(0, at)


def _scratch(work: dict | None, name: str, like: torch.Tensor, n: int) -> torch.Tensor:
    """A buffer of n elements like `like`, kept in `work` between calls: fresh memory costs a
    page fault per 4 KiB on first touch, which at K = 2.7 million was a third of a merge."""
    buf = None if work is None else work.get(name)
    if buf is None or buf.numel() != n or buf.dtype != like.dtype or buf.device != like.device:
        buf = like.new_empty(n)
        if work is not None:
            work[name] = buf
    return buf


def merge_sorted(index: tuple[torch.Tensor, ...], n_cols: int, leaving: torch.Tensor,
                 new_keys: torch.Tensor, new_slots: torch.Tensor,
                 slot_map: torch.Tensor | None = None,
                 work: dict | None = None) -> tuple[torch.Tensor, ...]:
    """The index after the keys `leaving` (present, distinct) left and `new_keys` (distinct,
    absent once `leaving` left) arrived in `new_slots`; `slot_map` (optional) renumbers the
    staying slots (old slot -> new slot). Sequential O(K) passes (a fill, a cumulative sum and
    three scatters) plus O(m log K) searches; no sort of K keys, no host synchronisation.

    A staying entry i moves to (staying entries before it) + (arrivals whose key is smaller);
    arrival j lands at (staying entries with a smaller key) + j. One cumulative sum of
    `1 per staying entry + 1 per arrival at its insertion point` gives both. `work`: a dict
    the caller keeps between merges for scratch buffers; the old index's storage becomes the
    next merge's output (the old index must not be used after this call)."""
    keys, order, col = index
    dev, k0, m = keys.device, keys.numel(), new_keys.numel()
    k1 = k0 - leaving.numel() + m
    new_keys, by_key = new_keys.sort()
    new_slots = new_slots.index_select(0, by_key)
    gone = torch.searchsorted(keys, leaving.sort().values)  # entries that leave (sorted: cache)
    ins = torch.searchsorted(keys, new_keys)  # arrival j goes before old entry ins[j]
    c = _scratch(work, "count", keys, k0 + 1).fill_(1)
    c[k0] = 0
    c.index_fill_(0, gone, 0).index_add_(0, ins, torch.ones_like(ins))
    c = torch.cumsum(c, 0, out=_scratch(work, "cum", keys, k0 + 1)).sub_(1)  # c[i] + 1: staying entries <= i + arrivals before entry i + 1
    first = torch.searchsorted(ins, ins)  # arrivals with a smaller insertion point
    before = torch.where(ins > 0, c.index_select(0, (ins - 1).clamp_(min=0)) + 1, 0)
    at = before - first + torch.arange(m, device=dev)
    dest = c[:k0].index_fill_(0, gone, k1)  # staying entry i -> c[i]; the leaving to a spare cell
    out = []
    for i, (old, new) in enumerate(((keys, new_keys), (order if slot_map is None else
                                                       slot_map.index_select(0, order), new_slots),
                                    (col, (new_keys % n_cols).to(col.dtype)))):
        o = _scratch(work, f"out{i}", old, k1 + 1).scatter_(0, dest, old)
        out.append(o.scatter_(0, at, new)[:k1])
    if work is not None:  # the old index's storage: the next merge's output
        for i, t in enumerate(index):
            work[f"out{i}"] = t if t._base is None else t._base
    return tuple(out)


# -- CSR layouts and the products ---------------------------------------------------------------
def csr(crow, col, values, shape):
    with warnings.catch_warnings():  # torch calls CSR support "beta" on construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _crow(keys: torch.Tensor, n_rows: int, n_cols: int, dtype: torch.dtype) -> torch.Tensor:
    bounds = torch.arange(n_rows + 1, device=keys.device) * n_cols
    return torch.searchsorted(keys, bounds, out_int32=dtype == torch.int32)


class CSRLayout:
    """CSR index arrays of W (n_out x n_in, rows = outputs) and, when given, of W^T."""

    def __init__(self, shape: tuple[int, int], rows: tuple[torch.Tensor, ...],
                 cols: tuple[torch.Tensor, ...] | None = None):
        self.shape = shape
        self.sorted_pos, self.order, self.col = rows
        self.crow = _crow(self.sorted_pos, shape[0], shape[1], self.col.dtype)
        self.order_t = None
        if cols is not None:
            _, self.order_t, self.col_t = cols
            self.crow_t = _crow(cols[0], shape[1], shape[0], self.col_t.dtype)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return csr(self.crow, self.col, values.index_select(0, self.order), self.shape)

    def matrix_t(self, values: torch.Tensor) -> torch.Tensor:
        if self.order_t is None:
            raise RuntimeError("this layout has no column-major index (built when the "
                               "layer's input requires a gradient)")
        return csr(self.crow_t, self.col_t, values.index_select(0, self.order_t),
                   self.shape[::-1])


class CSRProduct(torch.autograd.Function):
    """y = x @ W^T for W given by its K values (slot order) on a CSRLayout; gradients for x
    (only when x requires one) and the K values. `record`: None, or a list that gets
    (x, dE/dy) of the backward pass (for a dense-gradient top-k, dense_grad.py)."""

    @staticmethod
    def forward(ctx, x, values, layout, record):
        w = layout.matrix(values)
        ctx.save_for_backward(x, values)
        ctx.layout, ctx.w, ctx.record = layout, w, record  # w: the pattern for dE/dvalues
        return (w @ x.t()).t().contiguous()  # a transposed y costs the next op (MSE: 2x)

    @staticmethod
    def backward(ctx, grad_out):
        x, values = ctx.saved_tensors
        layout = ctx.layout
        if ctx.record is not None:
            ctx.record.append((x, grad_out))
        go_t = grad_out.t().contiguous()
        grad_x = grad_values = None
        if ctx.needs_input_grad[0]:
            grad_x = (layout.matrix_t(values) @ go_t).t()
        if ctx.needs_input_grad[1]:
            g = torch.sparse.sampled_addmm(ctx.w, go_t, x, beta=0.0).values()
            grad_values = torch.empty_like(values).scatter_(0, layout.order, g)
        return grad_x, grad_values, None, None
