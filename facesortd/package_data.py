"""Files shipped inside the facesortd package (facesortd/data/), named in one place so the model
store, the feature net and the service installer agree on them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SHIPPED_MODEL = "default_emotion.fsm.npz"
"""The emotion model used when the user has none of their own (provenance: facesortd/data/README.md)."""
SERVICE_TEMPLATE = "facesortd.service.in"
"""The systemd user unit `facesortd install-service` fills in."""


def data_file(name: str) -> Path:
    """Where a shipped file is (it may be missing from a partial build: callers check)."""
    return Path(str(resources.files("facesortd").joinpath("data", name)))
