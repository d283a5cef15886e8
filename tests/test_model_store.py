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


def _model(settings: Settings, folder: Path | None = None, **info: object) -> Path:
    """A model file as far as the models folder needs one (its info), under a new name."""
    from facesortd.emotion import FORMAT_VERSION, write_model_file

    meta = {"format_version": FORMAT_VERSION, "info": info}
    return model_store.save_new_model(settings, lambda dest: write_model_file(dest, meta, {}), folder)


def test_the_models_folder_keeps_what_rollback_and_retraining_need_and_no_more(settings: Settings) -> None:
    """Every retrain added about 3 MB, adopted or rejected, and nothing was ever removed."""
    from facesortd.models_folder import ADOPTED_KEPT, REJECTED_KEPT, prune

    base = _model(settings)  # `train --activate`: what every retrain starts from
    model_store.validation_path(base).write_bytes(b"its held-out faces")
    model_store.adopt(settings, base)
    mine = _model(settings)  # a `train` never put in force: a person's own, kept
    retrains = [_model(settings, user_labels=5, base_file=base.name) for _ in range(ADOPTED_KEPT + 4)]
    for path in retrains:
        model_store.adopt(settings, path)
    model_store.adopt(settings, retrains[0])  # `model use` of an old one: in force, kept
    rejected = [_model(settings, model_store.rejected_dir(settings)) for _ in range(REJECTED_KEPT + 3)]

    removed = prune(settings)

    # The newest ADOPTED_KEPT distinct names of the history: retrains[0] (the newest line) and the
    # ADOPTED_KEPT - 1 newest of the rest; the older ones go with their history lines.
    kept_retrains = [retrains[0], *retrains[-(ADOPTED_KEPT - 1) :]]
    gone = [path for path in retrains if path not in kept_retrains] + rejected[:3]
    assert sorted(removed) == sorted(gone) and not any(path.exists() for path in gone)
    assert sorted(model_store.user_models(settings)) == sorted([base, mine, *kept_retrains])
    assert model_store.validation_path(base).is_file()
    assert sorted(model_store.rejected_dir(settings).iterdir()) == sorted(rejected[3:])
    assert model_store.model_in_force(settings) == retrains[0]
    history = model_store.adopted(settings)
    assert not {path.name for path in gone if path in retrains} & set(history)
    assert history[-1] == retrains[0].name
    # Rollback steps through what is kept, never past a removed model without a word.
    seen = [model_store.rollback(settings) for _ in range(len(set(history)) - 1)]
    assert set(seen) <= {base, *kept_retrains}
    assert prune(settings) == []  # nothing more to remove
