"""The one exception hierarchy. Every message is written for the person at the terminal.

The CLI prints `str(error)` on one line and exits with `exit_code`; nothing else should ever
reach the user as a traceback unless they ask for `--verbose`. This module is shared by the
builder and the serving runtime, so it imports nothing.
"""


class OcibuildError(Exception):
    """Base of every error ocibuild reports to a user."""

    exit_code = 1


class SpecError(OcibuildError, ValueError):
    """A service or image definition is invalid (raised at definition time)."""


class ServiceLoadError(OcibuildError):
    """`service.py` could not be imported or does not define a service."""


class TagError(OcibuildError, ValueError):
    """A bento, model or image tag breaks the naming rules."""


class NotFoundError(OcibuildError):
    """A bento, model or image that was asked for does not exist."""


class AlreadyExistsError(OcibuildError):
    """Refusing to overwrite something that already exists."""


class LockError(OcibuildError):
    """Python requirements could not be resolved for the target."""


class ArchiveError(OcibuildError):
    """An archive (bento export, image tarball, base image) is corrupt or hostile."""


class ImageError(OcibuildError):
    """An image could not be read, assembled or written."""


class EngineError(OcibuildError):
    """The local container engine is unreachable or refused the image."""
