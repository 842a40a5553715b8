"""What can go wrong with a request, as plain exceptions (no HTTP here).

Every class names one problem type. :mod:`app.guard.problems` maps each to an HTTP
status and an RFC 9457 ``type``; the code that detects a problem only says what
it is and why, in words a user can act on.
"""

from __future__ import annotations

__all__ = [
    "CorruptImageError",
    "DecodeBudgetError",
    "EmptyUploadError",
    "ImageTooLargeError",
    "InputError",
    "InvalidFormError",
    "InvalidTransformError",
    "ModelsUnavailableError",
    "NoInkError",
    "NotAnImageError",
    "ServiceOverloadedError",
    "TooManyFilesError",
    "UnsupportedMediaTypeError",
    "UploadTooLargeError",
]


class InputError(ValueError):
    """The request cannot be served as sent; the message says why."""


class EmptyUploadError(InputError):
    """The file field is present but holds zero bytes."""


class NotAnImageError(InputError):
    """The bytes are not an image in one of the supported formats."""


class CorruptImageError(InputError):
    """The bytes start like a supported image but do not decode (truncated, damaged)."""


class InvalidFormError(InputError):
    """The multipart form is well formed but does not hold what the endpoint takes (two ``file`` parts)."""


class DecodeBudgetError(InputError):
    """Decoding the image took longer than the per-image budget (see :mod:`app.pictures.sandbox`)."""


class UnsupportedMediaTypeError(InputError):
    """The request or a file declares a content type the service does not accept."""


class UploadTooLargeError(InputError):
    """A file or the whole request body is larger than the configured limit."""


class ImageTooLargeError(InputError):
    """The image declares more pixels than the decode limit (a decompression bomb guard)."""


class TooManyFilesError(InputError):
    """More files in one batch than the configured limit."""


class NoInkError(InputError):
    """The image has no contrast: nothing that could be a digit (all white, all black, 1x1)."""


class InvalidTransformError(InputError):
    """The requested group, element or angle does not name a transformation."""


class ModelsUnavailableError(RuntimeError):
    """The models are not loaded (still starting, or loading failed)."""


class ServiceOverloadedError(RuntimeError):
    """As many upload requests (or bytes) are in flight as admission control allows."""
