"""Errors the harness reports to a user in one line, before any work starts."""


class ConfigError(ValueError):
    """A setting that cannot work: names the setting and what is allowed."""


class InputError(ValueError):
    """A tensor handed to the Python API that cannot be what it should be (images in
    [0, 1], class indices, attributions shaped like the images): says what is wrong and,
    where there is one, the usual fix."""


class RunError(RuntimeError):
    """A run that could not finish (an I/O fault) or whose results for a method are
    unusable: one line, exit status 1, with what was written kept."""


def os_error_line(err: OSError) -> str:
    """An I/O fault in one line: the file and the system's reason (a full disk, a
    read-only or missing directory), without a traceback."""
    reason = err.strerror or (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"{reason}: {err.filename}" if err.filename else reason
