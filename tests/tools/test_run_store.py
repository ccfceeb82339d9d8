"""The JSONL store of finished runs: durable appends, torn last lines, one sweep at a time."""

import json

import pytest

from aquant_sim.errors import ConfigError, InputError
from run_store import RunStore


def test_appended_records_read_back_in_order(tmp_path):
    """Each append is one line; reading gives the records in order, no torn line."""
    store = RunStore(tmp_path / "runs" / "r.jsonl")
    with store.lock():
        for i in range(3):
            store.append({"run": i, "text": "a\nb"})
    assert store.read() == ([{"run": 0, "text": "a\nb"}, {"run": 1, "text": "a\nb"}, {"run": 2, "text": "a\nb"}], b"")
    assert len(store.path.read_bytes().splitlines()) == 3


def test_a_torn_last_line_is_not_a_run_and_is_cut_before_appending(tmp_path, capsys):
    """A record cut short by a crash is reported by read, and lock drops it before new appends, so
    the next record starts on its own line."""
    store = RunStore(tmp_path / "r.jsonl")
    store.path.write_bytes(json.dumps({"run": 0}).encode() + b"\n" + b'{"run": 1, "acc')
    assert store.read() == ([{"run": 0}], b'{"run": 1, "acc')
    with store.lock():
        store.append({"run": 2})
    assert "dropping a torn last line of 15 bytes" in capsys.readouterr().out
    assert store.read() == ([{"run": 0}, {"run": 2}], b"")


@pytest.mark.parametrize("line, message", [(b"{not json", "r.jsonl:2: not a JSON record"), (b"[1, 2]", "r.jsonl:2: a record must be a JSON object")])
def test_a_bad_complete_line_is_one_clear_error(tmp_path, line, message):
    """A complete line that is not a JSON object names the file and line."""
    store = RunStore(tmp_path / "r.jsonl")
    store.path.write_bytes(b'{"run": 0}\n' + line + b"\n")
    with pytest.raises(InputError, match=message):
        store.read()


def test_one_sweep_at_a_time(tmp_path):
    """While one sweep holds the file, a second cannot take it; afterwards it can."""
    first, second = RunStore(tmp_path / "r.jsonl"), RunStore(tmp_path / "r.jsonl")
    with first.lock():
        with pytest.raises(ConfigError, match="another sweep is writing this file"):
            with second.lock():
                pass
    with second.lock():
        second.append({"run": 0})
    assert second.read()[0] == [{"run": 0}]
