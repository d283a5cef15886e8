"""vn_faces-style folders: transparent sprites over backgrounds, labelled, grouped by repository."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import draw_face

from facesortd.faces import FaceSpec, box_in_crop
from facesortd.learn.backdrops import Backdrops, composite, picture_window, read_rgba
from facesortd.learn.datasets import EMOTIONS, VN_BOX, DatasetError, is_vn_faces, load_items, vn_backgrounds
from facesortd.learn.training import collect_faces


def write_vn_folder(root: Path) -> Path:
    """Two repositories, RGBA crops whose face is the middle half, one background picture."""
    rng = np.random.default_rng(0)
    groups = {}
    for repo in ("alice/game", "bob/novel"):
        name = repo.replace("/", "__") + "__hero"
        (root / "faces" / name).mkdir(parents=True)
        files = {}
        for emotion in ("happy", "sad", "other"):
            crop = np.zeros((192, 192, 4), np.uint8)
            crop[48:144, 48:144, :3] = cv2.cvtColor(
                draw_face(emotion if emotion != "other" else "happy", 96, rng), cv2.COLOR_GRAY2BGR
            )
            crop[40:152, 40:152, 3] = 255  # the character; the rest is transparent
            cv2.imwrite(str(root / "faces" / name / f"{emotion}.webp"), crop, [cv2.IMWRITE_WEBP_QUALITY, 101])
            files[emotion] = {"emotion": emotion, "raw": emotion, "path": f"{emotion}.png"}
        groups[name] = {"repo": repo, "files": files}
    (root / "backgrounds").mkdir()
    cv2.imwrite(str(root / "backgrounds" / "room.jpg"), np.full((300, 400, 3), 90, np.uint8))
    (root / "index.json").write_text(json.dumps({"groups": groups, "backgrounds": {}}))
    return root


def test_vn_items_are_the_main_emotions_grouped_by_repository(tmp_path: Path) -> None:
    root = write_vn_folder(tmp_path / "vn")
    assert is_vn_faces(root) and not is_vn_faces(tmp_path)
    items = load_items(root)
    assert sorted(i.label for i in items) == ["happy", "happy", "sad", "sad"]  # "other" is not a class
    assert {i.group for i in items} == {"alice/game", "bob/novel"} and all(i.box == VN_BOX for i in items)
    assert box_in_crop((192, 192)) == VN_BOX and set(EMOTIONS) >= {"embarrassed", "worried"}
    assert vn_backgrounds(root) == [root / "backgrounds" / "room.jpg"]


def test_sprites_get_the_same_background_every_run_and_keep_their_opacity(tmp_path: Path) -> None:
    root = write_vn_folder(tmp_path / "vn")
    items = load_items(root)
    spec = FaceSpec(size=32)
    read = [
        collect_faces(items, None, spec, "vn", backdrops=Backdrops(vn_backgrounds(root))) for _ in range(2)
    ]
    assert np.array_equal(read[0].faces, read[1].faces) and read[0].alpha is not None
    assert read[0].groups[0] == "vn:alice/game"
    alpha = read[0].alpha[0]
    assert alpha[16, 16] == 255 and alpha[0, 0] == 0  # the face is drawn, the corner of the crop is not


def test_composite_lays_a_sprite_over_its_background() -> None:
    sprite = np.zeros((2, 2, 4), np.uint8)
    sprite[0, 0] = (200, 200, 200, 255)
    sprite[1, 1] = (200, 200, 200, 128)
    out = composite(sprite, np.full((2, 2, 3), 100, np.uint8))
    assert out[0, 0, 0] == 200 and out[0, 1, 0] == 100 and out[1, 1, 0] == 150  # 150.2, rounded


def test_picture_window_is_a_window_of_the_picture_enlarged_to_cover_it() -> None:
    """Sprite backdrops and scene backgrounds cut their pictures alike (backdrops.picture_window)."""
    picture = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    exact = picture_window(picture, rng, (20, 30), (1.0, 1.0), cv2.INTER_AREA)  # just covers it: all of it
    assert np.array_equal(exact, cv2.resize(picture, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    for _ in range(20):
        window = picture_window(picture, rng, (20, 10), (1.0, 3.0), cv2.INTER_LINEAR)
        assert window.shape == (20, 10, 3) and window.flags.owndata  # a copy: the caller may draw on it


def test_composite_pastes_at_an_offset_and_drops_what_falls_outside() -> None:
    """How a scene pastes a character: anywhere, cut by the frame, the background left as it was."""
    sprite = np.zeros((3, 3, 4), np.uint8)
    sprite[..., :3], sprite[..., 3] = 200, 255
    scene = np.full((4, 5, 3), 100, np.uint8)
    out = composite(sprite, scene, (3, -1))  # its top row above the frame, its right column past it
    assert (scene == 100).all()  # a copy: the background is not changed
    assert (out[:2, 3:, 0] == 200).all() and (out[2:, :, 0] == 100).all() and (out[:, :3, 0] == 100).all()
    assert np.array_equal(composite(sprite, scene, (9, 9)), scene)  # wholly outside: nothing pasted


def test_read_rgba_gives_opaque_images_full_alpha_or_refuses_them_when_told(tmp_path: Path) -> None:
    """Scenes paste a character by its transparency (``need_alpha``); faces over backdrops take
    any image."""
    opaque, grey = tmp_path / "opaque.png", tmp_path / "grey.png"
    cv2.imwrite(str(opaque), np.full((3, 5, 3), 70, np.uint8))
    cv2.imwrite(str(grey), np.full((3, 5), 70, np.uint8))
    for path in (opaque, grey):
        image = read_rgba(path)
        assert image.shape == (3, 5, 4) and (image[..., 3] == 255).all() and (image[..., :3] == 70).all()
        with pytest.raises(DatasetError, match="no transparency"):
            read_rgba(path, need_alpha=True)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="not an image"):
        read_rgba(tmp_path / "broken.png")
