"""Files shipped inside the facesortd package (facesortd/data/, the README and the example config),
named in one place so the model store, the feature net, the service installer and `config` agree on them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SHIPPED_MODEL = "default_emotion.fsm.npz"
"""The emotion model used when the user has none of their own (provenance: facesortd/data/README.md)."""
SERVICE_TEMPLATE = "facesortd.service.in"
"""The systemd user unit `facesortd install-service` fills in."""

README = "README.md"
"""The user's manual: facesortd/README.md links to the repository's README, which a wheel installs
as a copy, so an installed facesortd has its manual beside it (the unit's ``Documentation=``)."""

CONFIG_EXAMPLE = "config.example.toml"
"""Every config key, its default and what it does: facesortd/config.example.toml links to the
repository's, which a wheel installs as a copy, so that `facesortd config --example` prints it to a
user of the installed command (who has no source folder to find it in)."""


def package_file(name: str) -> Path:
    """Where a file shipped at the package's top is (``README``, ``CONFIG_EXAMPLE``)."""
    return Path(str(resources.files("facesortd").joinpath(name)))


def data_file(name: str) -> Path:
    """Where a shipped file is (it may be missing from a partial build: callers check)."""
    return package_file("data") / name
