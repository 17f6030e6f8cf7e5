"""Where the Hydra configs are: ``conf/`` at the top of the repository, which a wheel installs
as the package data ``uni/conf`` (``pyproject.toml`` maps one onto the other). A checkout and
an editable install read ``conf/`` itself, so both compose the same tree."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
CONF_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"
