"""Where the run-time data (default config, schemas, directory) lives.

Only ``gateway/`` is importable (docs/architecture.md §8); the data folders ``conf/``,
``codecs/``, ``routing/`` and ``keys/`` sit beside it in a source checkout and
are bundled under ``gateway/_data/`` with the same layout in a wheel, so a
relative path in ``conf/gateway.toml`` such as ``../routing/directory.csv``
resolves the same way in both.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder that holds ``conf/``, ``codecs/``, ``routing/`` and ``keys/``."""
    bundled = _PKG / "_data"
    if (bundled / "conf").is_dir():
        return bundled
    return _PKG.parent


def default_config_path() -> Path:
    """The embedded default configuration, ``conf/gateway.toml``."""
    return data_root() / "conf" / "gateway.toml"


def corplink_schema_path() -> Path:
    """Our XSD for CorpLink v1 requests and responses."""
    return data_root() / "codecs" / "corplink.xsd"
