"""Errors the harness reports to a user in one line, before any work starts."""


class ConfigError(ValueError):
    """A setting that cannot work: names the setting and what is allowed."""


class InputError(ValueError):
    """A tensor handed to the Python API that cannot be what it should be (images in
    [0, 1], class indices, attributions shaped like the images): says what is wrong and,
    where there is one, the usual fix."""
