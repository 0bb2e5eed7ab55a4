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


class RecordError(ArchiveError):
    """A stored or imported record (`bento.yaml`, `model.yaml`) is unreadable or malformed."""


class ImageError(OcibuildError):
    """An image could not be read, assembled or written."""


class EngineError(OcibuildError):
    """The local container engine is unreachable or refused the image."""


class DigestError(ImageError, ValueError):
    """A digest read from an input is malformed (it never becomes a path)."""


class SchemaError(OcibuildError, ValueError):
    """A JSON value does not match its declared type; the message names the field."""


class MissingEnvError(OcibuildError):
    """A service's required environment variable is not set where it runs."""

    exit_code = 78  # EX_CONFIG


class ServeError(OcibuildError):
    """The service cannot listen where it was asked to (a port out of range or in use, a bad host)."""


class CredentialError(OcibuildError):
    """Registry credentials could not be read or obtained from a helper."""


class RegistryError(OcibuildError):
    """The registry refused, or could not be reached."""


class AuthError(RegistryError):
    """Wrong or missing credentials, or access denied."""


class DebianError(OcibuildError):
    """The Debian archive could not be read or did not verify."""


class ResolveError(OcibuildError):
    """A Debian package, or a dependency of one, cannot be found or satisfied."""


class WatchError(OcibuildError):
    """`build --watch` cannot watch the service's files (no fork, the watcher failed)."""
