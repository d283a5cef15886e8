"""The models folder shared by `train`, `model use`/`rollback` and the daemon's retrain: names
claimed, history kept and the folder bounded, with several processes at it at once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from waiting import HUNG_S

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
        thread.join(timeout=HUNG_S)
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
    from facesortd.models_folder import ADOPTED_KEPT, REJECTED_KEPT, TRAINED_KEPT, prune

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
    # Rolled back from, those left the history: with the model never put in force, the newest
    # TRAINED_KEPT of them stay.
    in_history, in_force = set(model_store.adopted(settings)), model_store.model_in_force(settings)
    outside = [p for p in model_store.user_models(settings) if p.name not in in_history and p != in_force]
    assert sorted(prune(settings)) == sorted(outside[:-TRAINED_KEPT])
    assert prune(settings) == []  # nothing more to remove


def test_models_never_put_in_force_are_kept_newest_first_up_to_a_bound(settings: Settings) -> None:
    """Every `train` without --activate stayed in the models folder for good, however many (about
    3 MB each); the newest TRAINED_KEPT stay now, and one a model in force was retrained from."""
    from facesortd.models_folder import TRAINED_KEPT, prune

    base = _model(settings)  # never in force itself, but what the model in force was retrained from
    trained = [_model(settings) for _ in range(TRAINED_KEPT + 2)]
    for path in trained:
        model_store.validation_path(path).write_bytes(b"its held-out faces")
    retrain = _model(settings, user_labels=5, base_file=base.name)
    model_store.adopt(settings, retrain)
    assert sorted(prune(settings)) == sorted(trained[:2])
    assert not any(p.exists() or model_store.validation_path(p).exists() for p in trained[:2])
    assert sorted(model_store.user_models(settings)) == sorted([base, *trained[2:], retrain])
    assert prune(settings) == []


def test_model_use_keeps_the_models_folder_bounded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder was pruned only after a retrain: a person who changed models by hand (`model use`,
    `train --activate`) only ever added to it and to the history."""
    from facesortd import cli

    monkeypatch.setattr("facesortd.models_folder.ADOPTED_KEPT", 3)  # the bound, not its size: 3 will do
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(settings.state_dir))
    history = [loadable_model(settings) for _ in range(3 + 2)]
    for path in history[:-1]:
        model_store.adopt(settings, path)
    assert cli.main(["model", "use", str(history[-1])]) == 0
    assert f"model in force is now {history[-1]}" in capsys.readouterr().out
    assert not history[0].exists() and not history[1].exists()
    assert all(path.is_file() for path in history[2:])
    assert model_store.adopted(settings) == [path.name for path in history[2:]]


def test_model_use_of_the_model_in_force_says_it_is_in_force_already_and_changes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model use default` with the shipped model in force (or `model use FILE` of the model in
    force) said "model in force is now ...", as if it had changed, and added a history line. The
    shipped model standing in for a model lost since is not in force in that sense: `model use
    default` then puts it there (the pointer mended)."""
    from facesortd import cli

    monkeypatch.setenv("FACESORTD_STATE_DIR", str(settings.state_dir))
    shipped = model_store.shipped_model()
    assert shipped is not None
    assert cli.main(["model", "use", "default"]) == 0
    assert capsys.readouterr().out == f"model in force already: {shipped} (nothing changed)\n"
    assert model_store.adopted(settings) == []
    mine = loadable_model(settings)
    model_store.adopt(settings, mine)
    for named in (str(mine), mine.name):  # its file, or its name as `facesortd model` lists it
        assert cli.main(["model", "use", named]) == 0
        assert capsys.readouterr().out == f"model in force already: {mine} (nothing changed)\n"
    assert model_store.adopted(settings) == [mine.name]
    mine.unlink()  # lost: the shipped model stands in
    assert cli.main(["model", "use", "default"]) == 0
    assert capsys.readouterr().out == f"model in force is now {shipped}\n"
    assert model_store.adopted(settings) == [mine.name, model_store.DEFAULT]
    assert model_store.lost_in_force(settings) == ""


def test_model_use_of_a_copy_of_the_model_in_force_says_it_is_in_force_already(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`model use /elsewhere/copy` of the same bytes as the model in force (a backup of it, the same
    download twice) was judged by its path: copied into the models folder and put in force as a new
    model, with a history line, and `model rollback` then went back to the same model."""
    import shutil

    from facesortd import cli

    monkeypatch.setenv("FACESORTD_STATE_DIR", str(settings.state_dir))
    mine = loadable_model(settings)
    model_store.adopt(settings, mine)
    backup = tmp_path / "backup" / "mine.fsm.npz"
    backup.parent.mkdir()
    shutil.copyfile(mine, backup)
    assert cli.main(["model", "use", str(backup)]) == 0
    said = f"model in force already: {mine} ({backup} holds the same bytes) (nothing changed)\n"
    assert capsys.readouterr().out == said
    assert model_store.adopted(settings) == [mine.name] and model_store.user_models(settings) == [mine]
    other = loadable_model(settings)  # another model's bytes: put in force as ever
    shutil.copyfile(other, backup)
    assert cli.main(["model", "use", str(backup)]) == 0
    assert "model in force is now" in capsys.readouterr().out and len(model_store.adopted(settings)) == 2


_MADE = itertools.count()


def loadable_model(settings: Settings) -> Path:
    """A new model file in the models folder that `model use` and `train` can load: the shipped one,
    told apart from every other by its info, since `model use` judges a model by its bytes."""
    shipped = model_store.shipped_model()
    assert shipped is not None
    model = model_store.load_model(shipped)
    model.info["made_by_the_test"] = next(_MADE)
    return model_store.save_new_model(settings, model.save)


def test_a_change_by_hand_that_tells_no_one_still_waits_for_a_retrain(settings: Settings) -> None:
    """``retrain_lock`` given no callback does not wait: a caller of ``put_in_force`` without one
    would have changed the model under a running retrain."""
    from facesortd.model_change import put_in_force
    from facesortd.state import retrain_lock

    pointer = model_store.models_dir(settings) / model_store.CURRENT
    model_store.adopt(settings, before := loadable_model(settings))
    with retrain_lock(settings.state_dir) as mine:
        assert mine
        person = threading.Thread(target=put_in_force, args=(settings, model_store.DEFAULT))
        person.start()
        person.join(timeout=0.5)
        assert person.is_alive() and pointer.read_text() == before.name
    person.join(timeout=HUNG_S)
    assert pointer.read_text() == model_store.DEFAULT


class _Killed(BaseException):
    """The process killed at this point (kill -9, power cut): nothing after it runs."""


@pytest.mark.parametrize("change", ["adopt", "rollback"])
def test_a_crash_between_the_pointer_and_the_history_never_makes_rollback_go_forward(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A retrain (or `model use`) killed between writing the history and the pointer left a line
    naming its model, never put in force: the next `model rollback` put that model in force, the
    one the person was rolling back from staying as it was (a rollback that went forward)."""
    first, second, third = (_model(settings) for _ in range(3))
    for path in (first, second):
        model_store.adopt(settings, path)
    writes = 0
    real_writer = model_store.atomic_writer

    def killed_at_the_second_write(path: Path):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        if writes == 2:
            raise _Killed
        return real_writer(path)

    monkeypatch.setattr(model_store, "atomic_writer", killed_at_the_second_write)
    with pytest.raises(_Killed):
        model_store.adopt(settings, third) if change == "adopt" else model_store.rollback(settings)
    monkeypatch.setattr(model_store, "atomic_writer", real_writer)
    in_force = model_store.model_in_force(settings)
    # Either write may have been the one made; what rollback then does is go back, never forward.
    expected = {
        "adopt": {third: second, second: first},
        "rollback": {second: first, first: model_store.shipped_model()},
    }
    assert model_store.rollback(settings) == expected[change][in_force]
