"""numba settings: the on-disk cache of a kernel that inlines another file's helper is stamped
with that file too."""

import hashlib

import pytest

from aquant_sim.kernels import amx, requant
from aquant_sim.kernels.config import cache_depends_on, source_digest


def test_epilogue_kernel_is_stamped_with_the_requantizer_file():
    """The AMX kernel inlines requant.requantize_row in its epilogue: its cache stamp is numba's
    stamp of its own file followed by the SHA-256 of requant.py, so an edit of the
    requantizer makes its cached machine code stale."""
    kernel = amx.dense
    own, *others = kernel._cache._cache_file._source_stamp
    with open(requant.__file__, "rb") as source:
        assert others == [hashlib.sha256(source.read()).digest()] == [source_digest(requant)]
    with open(kernel.py_func.__code__.co_filename, "rb") as source:
        assert own == hashlib.sha256(source.read()).digest()


def test_a_function_without_a_cache_is_refused():
    """A plain Python function has no numba cache to stamp: a one-line error naming it."""
    with pytest.raises(RuntimeError, match="no cache stamp to extend"):
        cache_depends_on(len, requant)
