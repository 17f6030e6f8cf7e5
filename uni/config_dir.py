"""Where the Hydra configs are: ``conf/`` at the top of the repository, which a wheel installs
as the package data ``uni/conf`` (``pyproject.toml`` maps one onto the other). A checkout and
an editable install read ``conf/`` itself, so both compose the same tree."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
CONF_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"


def method_entry(name: str) -> tuple[str, dict] | None:
    """A method entry of ``conf/method/`` that runs another method (``kind``: ``uni_idgi``,
    ``ig_blur_tuned``): that method and the options the entry sets beyond the method's own
    entry, as the Python API takes them (``uni.attribute(method="ig_blur_tuned")`` is
    ``method="ig_blur", sigma=20.0``); None for a name without such an entry."""
    import yaml

    def load(entry: str) -> dict:
        path = CONF_DIR / "method" / f"{entry}.yaml"
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    options = load(name)
    kind = options.pop("kind", None)
    if not isinstance(kind, str) or kind == name:
        return None
    own = load(kind)
    missing = object()
    return kind, {k: v for k, v in options.items() if own.get(k, missing) != v}
