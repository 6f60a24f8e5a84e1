"""A run process's memory cap (public mode's run_memory_mb): an address-space limit set in the
process itself, above what it holds once torch and the engine are loaded, so a run that asks
for more fails in its own process (paused with a message) and never takes the server down."""
from __future__ import annotations

import os


def limit(mb: float) -> None:
    """Let this process add at most `mb` MB of address space to what it holds now (torch and
    the engine are loaded already): past it, allocations fail in this process only."""
    import resource
    try:   # libraries a run loads later map large virtual areas (OpenBLAS's buffers): load them now
        import sklearn.datasets  # noqa: F401  (the digits loader's)
    except ImportError:
        pass
    with open("/proc/self/statm") as f:
        held = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = held + int(mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "allocate" in str(exc))


def message(options: dict, when: str) -> str:
    return (f"the run needs more memory than one run may use on this server (at {when}; limit "
            f"{options.get('memory_name', 'memory_mb')} = {options['memory_mb']:,.0f} MB): paused; "
            "try a smaller network or connectivity")
