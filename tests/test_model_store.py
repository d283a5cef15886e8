"""The models folder shared by `train`, `model use`/`rollback` and the daemon's retrain: names
claimed, history kept and the folder bounded, with several processes at it at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from facesortd import model_store
from facesortd.config import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path / "state")


def _together(*calls: Callable[[], object]) -> list[object]:
    """Run each call on its own thread at once; their results in order (a failure fails the test)."""
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], object]) -> None:
        try:
            results[i] = call()
        except BaseException as exc:  # handed to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def test_two_models_saved_in_the_same_second_each_keep_their_own_name(settings: Settings) -> None:
    """`train` and a retrain finishing together: each checked that the timestamp's name was free,
    then renamed its model onto it, and one model replaced the other."""
    both_written = threading.Barrier(2)

    def saver(content: bytes) -> Callable[[], object]:
        def write(dest: Path) -> None:
            both_written.wait(timeout=10)  # both have picked a name and are writing now
            dest.write_bytes(content)

        return lambda: model_store.save_new_model(settings, write)

    first, second = _together(saver(b"train's model"), saver(b"the retrain's model"))
    assert isinstance(first, Path) and isinstance(second, Path) and first != second
    assert first.read_bytes() == b"train's model" and second.read_bytes() == b"the retrain's model"
    assert sorted(model_store.user_models(settings)) == sorted([first, second])


def test_models_put_in_force_at_once_each_keep_their_history_line(settings: Settings) -> None:
    """`model use` beside a retrain's adopt: each read the history, added its line and wrote it back,
    so the one written last dropped the other's line (and `model rollback` could not go back to it)."""
    files = [
        model_store.save_new_model(settings, lambda dest: dest.write_bytes(b"a model")) for _ in range(20)
    ]

    def adopting(mine: list[Path]) -> Callable[[], object]:
        return lambda: [model_store.adopt(settings, path) for path in mine]

    _together(adopting(files[0::2]), adopting(files[1::2]))
    assert sorted(model_store.adopted(settings)) == sorted(path.name for path in files)
