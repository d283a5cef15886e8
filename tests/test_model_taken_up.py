"""The model a worker takes up is journaled as the one whose bytes it loaded, whatever changes meanwhile."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from review_setup import install_model
from synthetic import draw_screenshot, stub_pipeline

from facesortd import model_store
from facesortd.config import Settings, load_settings
from facesortd.ensemble import load_model
from facesortd.journal import ModelId
from facesortd.service import Service


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(model_store, "shipped_model", lambda: None)
    return load_settings(inbox=tmp_path / "inbox", library=tmp_path / "lib", state_dir=tmp_path / "state")


def _two_models(settings: Settings) -> tuple[Path, Path]:
    """A model in force (A) and another, of other bytes, not in force (B)."""
    install_model(settings)
    first = model_store.model_in_force(settings)
    assert first is not None
    model = load_model(first)
    model.info["made_as"] = "B"
    second = model.save(first.with_name("20260102-000000.fsm.npz"))
    return first, second


def _worker_takes_up(settings: Settings, service: Service) -> Path:
    """a.png dropped and sorted by a worker that takes the model in force up first; returns a.png."""
    settings.inbox.mkdir(parents=True, exist_ok=True)
    dropped = settings.inbox / "a.png"
    cv2.imwrite(str(dropped), draw_screenshot("happy", np.random.default_rng(1))[0])
    service.enqueue(dropped)
    service._queue.put(None)  # then the worker stops
    pipeline = stub_pipeline(settings)
    service._work(pipeline, None)  # holds no model yet: takes up the one in force
    assert pipeline.model is not None and pipeline.model.info.get("made_as") == "B"  # what judged a.png
    return dropped


@pytest.mark.parametrize("change", ["model use", "file copied over it"])
def test_a_file_is_journaled_under_the_model_whose_bytes_judged_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """The worker read the model's name and content, then loaded the model in force, asking anew
    which it was: a `model use` (or `rollback`), or a model file copied over the one in force, landing
    between the two had it sort with B and journal A, so `undo --model A` put back B's files."""
    first, second = _two_models(settings)
    real = model_store.model_in_force

    def changed_as_it_loads(s: Settings) -> Path | None:
        if change == "model use":
            model_store.adopt(s, second)
        else:
            shutil.copy(second, first.with_name("copy"))
            os.replace(first.with_name("copy"), first)
        return real(s)

    service = Service(settings)
    try:
        monkeypatch.setattr(model_store, "model_in_force", changed_as_it_loads)
        dropped = _worker_takes_up(settings, service)
        monkeypatch.setattr(model_store, "model_in_force", real)
        move = service.journal.done_from(dropped)
        assert move is not None
        in_force = model_store.model_in_force(settings)
        assert move.judged_by == model_store.model_id(in_force)
        assert move.judged_by == ModelId(in_force.name, model_store.model_id(second).version)  # B's bytes
    finally:
        service.journal.close()


def test_sort_journals_the_model_it_loaded_not_one_put_in_force_meanwhile(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort` loaded the model, then asked which was in force to journal it: a `model use` while its
    detectors loaded had its files journaled as the new model's, which never looked at them."""
    from facesortd import cli
    from facesortd.cli import sort
    from facesortd.journal import Journal

    monkeypatch.setattr(model_store, "shipped_model", lambda: None)
    first, second = _two_models(cli_settings)
    real = sort.pipeline_for

    def model_use_meanwhile(s: Settings, model: object) -> object:
        model_store.adopt(s, second)
        return real(s, model)  # type: ignore[arg-type]

    monkeypatch.setattr(sort, "pipeline_for", model_use_meanwhile)
    dropped = cli_settings.inbox / "a.png"
    cv2.imwrite(str(dropped), draw_screenshot("happy", np.random.default_rng(1))[0])
    assert cli.main(["sort", "--workers", "1"]) == 0
    journal = Journal.for_state_dir(cli_settings.state_dir)
    try:
        move = journal.done_from(dropped)
        assert move is not None and move.judged_by == model_store.model_id(first)
    finally:
        journal.close()
