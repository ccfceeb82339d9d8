"""SCALE-Sim 3.0's memory system, rebuilt from its documented behaviour: the double-buffered
ifmap and filter read buffers (``memory/read_buffer.py`` in USER bandwidth mode,
``memory/read_buffer_estimate_bw.py`` in CALC mode), the ofmap write buffer
(``memory/write_buffer.py``) and the loop that drives them one demand line per cycle
(``memory/double_buffered_scratchpad_mem.py``, ``service_memory_requests``). The kernels are
numba-compiled loops over the streams of ``scalesim_streams``; their reference is SCALE-Sim
itself: ``tests/hw_models/test_scalesim_compat.py`` compares every figure with reports of real
SCALE-Sim runs. Units are SCALE-Sim's one-byte words and cycles.

**Driver.** Line i of the demand matrices is issued at cycle ``i + stalls``; the ifmap and
filter buffers answer at ``out`` (a hit costs 1 cycle), the ofmap buffer at ``out`` (no hit
latency), and the stalls grow by ``max(out_i - cycle - 1, out_f - cycle - 1, out_o - cycle)``.
"Total Cycles" is the last ofmap answer; "Total Cycles (incl. prefetch)" is the last ofmap
DRAM write minus the first ifmap or filter DRAM read.

**USER read buffer** (bandwidth ``bw`` words a cycle, buffer of ``S`` words, active half
``A = ceil(S/2)``, prefetch half ``S - A``). The prefetch order (``EMPTY`` slots included) is cut
into fetch rows of ``bw`` slots; its valid words into *lines* of ``e = ceil(S / 100)`` words
(``floor(n/e) + 1`` lines, the last one possibly empty). The active window holds
``min(lines, ceil(A/e))`` lines, a prefetch moves it by ``min(rest, ceil((S-A)/e))`` lines
(circularly). Before the first request the active half is fetched: ``n0 = min(ceil(A/bw),
fetch rows)`` rows ending at cycle -1 (DRAM reads ``n0 * bw``). A request whose word lies in no
line of the window triggers prefetches until it does; each reads ``ceil((S-A)/bw) * bw`` words
and ends ``ceil((S-A)/bw) + 1`` cycles after the previous one; with ``p`` the prefetch's end minus
the request's current answer cycle, the answer moves by ``p``, and by ``p`` once more when
``p > 0`` (SCALE-Sim's arithmetic, kept as it is).

**CALC read buffer** (SCALE-Sim sizes the bandwidth, reads never stall). Words are grouped in
order of first demand into sets of ``floor(S/100)`` distinct words; a word is new when it is in
neither the open set nor a closed set of the window (50 sets, moving by 50 each time 50 more
sets close). When the window's sets are complete they are prefetched: the first time in
``ceil(50 * set / 10)`` cycles ending 2 cycles before the first request, later ones spread over
the cycles since the previous prefetch. At the end the remaining sets are prefetched. DRAM
reads count the words of the prefetched sets; the DRAM cycles are those of the prefetch rows.

**Write buffer** (``bw`` = USER ``Bandwidth``, or the array's columns in CALC; buffer ``S``,
drain half ``D = S - ceil(S/2)``). Written words fill lines of ``bw``; whenever the buffer holds
more than ``D`` words and no drain is running, the open line is closed (even partly filled) and
``ceil(D/bw)`` lines drain, one a cycle; a drain of ``n`` lines counts ``n * bw`` words minus the
empty slots of its last line only (a partly filled line inside a drain counts as full, as in
SCALE-Sim). A write that finds the buffer full during a drain waits for its end. After the last
line everything left drains in the same way.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from aquant_sim.errors import InputError

jit = numba.njit(cache=True, nogil=True)

# Read buffer state (int64 array) and parameters; one set of indices for both modes.
FILLED, START, END, LAST, ACCESS, DRAM_MIN, DRAM_MAX = range(7)
CUR, ELEMS, READ_START, READ_END, PF_START, PF_END, LAST_START, LAST_END, FIRST, SEEN = range(7, 17)
READ_STATE = 17
NUM_LINES, ACTIVE_LINES, PREFETCH_LINES, FETCH_ROWS, BW, ACTIVE_SIZE, PREFETCH_SIZE, SET_WORDS = range(8)
CALC_SETS = 50
"""Sets in each half of SCALE-Sim's CALC-mode buffer (its 100 sets at an active fraction of 0.5)."""
CALC_FILL_BW = 10
"""Words a cycle of the CALC-mode first fill (SCALE-Sim's ``ifmap_backing_bw = 10``)."""
# Write buffer state and parameters.
W_FREE, W_FILL, W_LINES, W_PTR, W_DRAIN_END, W_ACCESS, W_DRAM_MIN, W_DRAM_MAX, W_VALID = range(9)
WRITE_STATE = 9
W_BW, W_TOTAL, W_DRAIN = range(3)

NO_CYCLE = np.iinfo(np.int64).max


@jit
def _in_window(word, start, end, indptr, lines):
    """Whether some line holding ``word`` lies in the circular window [start, end)."""
    lo, hi = indptr[word], indptr[word + 1]
    if lo == hi:
        return False
    if start < end:
        i = lo + np.searchsorted(lines[lo:hi], start)
        return i < hi and lines[i] < end
    return lines[hi - 1] >= start or lines[lo] < end


@jit
def _user_read(st, pa, row, cycle, indptr, lines):
    if st[FILLED] == 0:
        n = min(-(-pa[ACTIVE_SIZE] // pa[BW]), pa[FETCH_ROWS])
        st[ACCESS] += n * pa[BW]
        st[LAST] = cycle - 1
        st[DRAM_MIN] = cycle - n
        st[DRAM_MAX] = cycle - 1
        st[START], st[END], st[FILLED] = 0, pa[ACTIVE_LINES], 1
    offset = 1
    for word in row:
        if word < 0:
            continue
        if indptr[word] == indptr[word + 1]:
            raise ValueError("a demanded word is missing from the prefetch order")
        while not _in_window(word, st[START], st[END], indptr, lines):
            st[START] = (st[START] + pa[PREFETCH_LINES]) % pa[NUM_LINES]
            st[END] = (st[START] + pa[ACTIVE_LINES]) % pa[NUM_LINES]
            n = -(-pa[PREFETCH_SIZE] // pa[BW])
            st[ACCESS] += n * pa[BW]
            st[LAST] += n + 1
            st[DRAM_MAX] = max(st[DRAM_MAX], st[LAST])
            p = st[LAST] - (cycle + offset)
            offset += p
            if p > 0:
                offset += p
    return cycle + offset


@jit
def _calc_prefetch(st, first, last, closed, set_words):
    """Prefetch sets [first, last]: count their words and add the rows of the prefetch window
    [LAST_START, LAST_END] to the DRAM trace."""
    words = 0
    for s in range(first, last + 1):
        words += set_words if s < closed else st[ELEMS]
    st[ACCESS] += words
    if st[LAST_END] >= st[LAST_START]:
        if st[DRAM_MIN] == NO_CYCLE:
            st[DRAM_MIN] = st[LAST_START] + 1
        st[DRAM_MAX] = st[LAST_END] + 1


@jit
def _calc_read(st, pa, row, cycle, last_set):
    if st[SEEN] == 0:
        for word in row:
            if word >= 0:
                st[FIRST], st[SEEN] = cycle, 1
                break
    set_words = pa[SET_WORDS]
    for word in row:
        if word < 0:
            continue
        owner = last_set[word]
        if st[READ_START] <= owner < min(st[CUR], st[READ_END] + 1) or owner == st[CUR]:
            continue
        last_set[word] = st[CUR]
        st[ELEMS] += 1
        if st[ELEMS] < set_words:
            continue
        st[ELEMS] = 0
        st[CUR] += 1
        if st[CUR] != st[READ_END] + 1:
            continue
        if st[FILLED] == 0:
            st[LAST_END] = st[FIRST] - 2
            st[LAST_START] = st[LAST_END] - (-(-CALC_SETS * set_words // CALC_FILL_BW)) + 1
            _calc_prefetch(st, 0, CALC_SETS - 1, st[CUR], set_words)
            st[PF_START] = st[READ_END] + 1
            st[PF_END] = st[PF_START] + CALC_SETS - 1
            st[FILLED] = 1
        else:
            _calc_prefetch(st, st[PF_START], st[PF_END], st[CUR], set_words)
            st[PF_START] += CALC_SETS
            st[PF_END] += CALC_SETS
        st[READ_START] += CALC_SETS
        st[READ_END] += CALC_SETS
        st[LAST_START] = st[LAST_END] + 1
        st[LAST_END] = cycle
    return cycle + 1


@jit
def _calc_finish(st, pa):
    closed = st[CUR]
    if st[ELEMS] == 0:
        st[CUR] -= 1
    if st[FILLED] == 0:
        sets = st[CUR] + 1
        st[LAST_END] = -2
        st[LAST_START] = st[LAST_END] - (-(-sets * pa[SET_WORDS] // CALC_FILL_BW)) + 1
        _calc_prefetch(st, 0, sets - 1, closed, pa[SET_WORDS])
        st[FILLED] = 1
    else:
        _calc_prefetch(st, st[PF_START], st[CUR], closed, pa[SET_WORDS])


@jit
def _drain(ws, wp, fills, start):
    lines = -(-wp[W_DRAIN] // wp[W_BW])
    end = min(ws[W_PTR] + lines, ws[W_LINES])
    n = end - ws[W_PTR]
    if n == 0:
        raise ValueError("the ofmap buffer drains an empty trace")
    words = n * wp[W_BW] - (wp[W_BW] - fills[end - 1])
    ws[W_ACCESS] += words
    ws[W_FREE] += words
    ws[W_PTR] = end
    ws[W_DRAM_MIN] = min(ws[W_DRAM_MIN], start)
    ws[W_DRAM_MAX] = max(ws[W_DRAM_MAX], start + n - 1)
    ws[W_VALID] = 1
    return start + n - 1


@jit
def _close_line(ws, fills):
    if ws[W_FILL] != 0:
        fills[ws[W_LINES]] = ws[W_FILL]
        ws[W_LINES] += 1
        ws[W_FILL] = 0


@jit
def _write(ws, wp, fills, row, cycle):
    current = cycle
    active = wp[W_TOTAL] - wp[W_DRAIN]
    for word in row:
        if word < 0:
            continue
        ws[W_FILL] += 1
        ws[W_FREE] -= 1
        if ws[W_FILL] == wp[W_BW]:
            _close_line(ws, fills)
        if current < ws[W_DRAIN_END]:
            if ws[W_FREE] <= 0:
                current = ws[W_DRAIN_END]
        elif ws[W_FREE] < active:
            _close_line(ws, fills)
            ws[W_DRAIN_END] = _drain(ws, wp, fills, current)
    return current


@jit
def _mark(sram, at, row, out):
    """Record ``out`` as the first (once) and last answer cycle of a line with requests."""
    if row.max() >= 0:
        if sram[at] == NO_CYCLE:
            sram[at] = out
        sram[at + 1] = out


@jit
def simulate(ifmap, filters, ofmap, user, pa_i, pa_f, indptr_i, lines_i, indptr_f, lines_f, wp):
    """Replay one layer's demand lines through the three buffers. ``user``: USER bandwidth mode
    (else CALC). ``ifmap``/``filters`` hold dense word ids (``-1`` empty); ``indptr_*``/``lines_*``
    map a word id to the sorted lines of the prefetch order that hold it (USER mode). Returns
    the simulated figures in ``scalesim_compat.SIMULATED`` order."""
    st_i = np.zeros(READ_STATE, np.int64)
    st_f = np.zeros(READ_STATE, np.int64)
    for st in (st_i, st_f):
        st[DRAM_MIN], st[DRAM_MAX] = NO_CYCLE, -NO_CYCLE
        st[READ_END] = CALC_SETS - 1
        st[LAST_START], st[LAST_END] = -2, -1
    last_i = np.full(indptr_i.shape[0], -1, np.int64)
    last_f = np.full(indptr_f.shape[0], -1, np.int64)
    ws = np.zeros(WRITE_STATE, np.int64)
    ws[W_FREE], ws[W_DRAM_MIN], ws[W_DRAM_MAX] = wp[W_TOTAL], NO_CYCLE, -NO_CYCLE
    fills = np.zeros(ofmap.size + 2, np.int64)
    stalls = 0
    sram = np.full(6, NO_CYCLE, np.int64)  # first and last answer cycles of non-empty lines, i f o
    total = -NO_CYCLE
    out_o = 0
    for line in range(ifmap.shape[0]):
        cycle = line + stalls
        if user:
            out_i = _user_read(st_i, pa_i, ifmap[line], cycle, indptr_i, lines_i)
            out_f = _user_read(st_f, pa_f, filters[line], cycle, indptr_f, lines_f)
        else:
            out_i = _calc_read(st_i, pa_i, ifmap[line], cycle, last_i)
            out_f = _calc_read(st_f, pa_f, filters[line], cycle, last_f)
        out_o = _write(ws, wp, fills, ofmap[line], cycle)
        stalls += max(out_i - cycle - 1, out_f - cycle - 1, out_o - cycle)
        total = max(total, out_o)
        _mark(sram, 0, ifmap[line], out_i)
        _mark(sram, 2, filters[line], out_f)
        _mark(sram, 4, ofmap[line], out_o)
    if not user:
        _calc_finish(st_i, pa_i)
        _calc_finish(st_f, pa_f)
    _close_line(ws, fills)
    cycle = out_o
    while ws[W_PTR] < ws[W_LINES]:
        ws[W_DRAIN_END] = _drain(ws, wp, fills, cycle)
        cycle = ws[W_DRAIN_END] + 1
    incl = ws[W_DRAM_MAX] - min(st_i[DRAM_MIN], st_f[DRAM_MIN])
    return np.array([incl, total, stalls, sram[0], sram[1], sram[2], sram[3], sram[4], sram[5],
                     st_i[DRAM_MIN], st_i[DRAM_MAX], st_i[ACCESS], st_f[DRAM_MIN], st_f[DRAM_MAX], st_f[ACCESS],
                     ws[W_DRAM_MIN], ws[W_DRAM_MAX], ws[W_ACCESS]], dtype=np.int64)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (sort-based: numpy's hash-based ``unique`` is far slower on
    the millions of addresses of a large layer)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def dense_ids(demand: np.ndarray, prefetch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense word ids for a demand matrix and the sorted distinct words they index; a demanded
    word absent from the prefetch order is an InputError (SCALE-Sim would never find it)."""
    words = _distinct(prefetch[prefetch >= 0])
    ids = np.searchsorted(words, demand)
    valid = demand >= 0
    if not np.array_equal(words[np.minimum(ids[valid], len(words) - 1)], demand[valid]):
        raise InputError("a demanded word is missing from the prefetch order")
    return np.where(valid, ids, -1).astype(np.int64), words


def line_index(prefetch: np.ndarray, words: np.ndarray, set_words: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For each word id, the sorted lines of ``set_words`` valid prefetch slots that hold it
    (CSR: ``indptr``, ``lines``), and the number of lines (the valid slots' count over
    ``set_words``, plus one)."""
    valid = prefetch[prefetch >= 0]
    num_lines = len(valid) // set_words + 1
    ids = np.searchsorted(words, valid)
    pairs = _distinct(ids * num_lines + np.arange(len(valid)) // set_words)
    owner, lines = np.divmod(pairs, num_lines)
    indptr = np.searchsorted(owner, np.arange(len(words) + 1))
    return indptr.astype(np.int64), lines.astype(np.int64), num_lines


def read_params(prefetch: np.ndarray, num_lines: int, buffer_words: int, bandwidth: int) -> np.ndarray:
    """The parameter vector of one read buffer (indices ``NUM_LINES`` ... ``SET_WORDS``)."""
    active = math.ceil(buffer_words * 0.5)
    rest = buffer_words - active
    if bandwidth:
        per_line = math.ceil(buffer_words / 100)
        active_lines = min(num_lines, math.ceil(active / per_line))
        prefetch_lines = min(num_lines - active_lines, math.ceil(rest / per_line))
        fetch_rows = math.ceil(len(prefetch) / bandwidth)
    else:
        active_lines = prefetch_lines = fetch_rows = 0
    return np.array([num_lines, active_lines, prefetch_lines, fetch_rows, bandwidth, active, rest,
                     buffer_words // 100], dtype=np.int64)
