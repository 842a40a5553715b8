"""Uploaded files: size and type checks, and a file name that is safe to echo back.

A file name is only ever shown back to the client, never used as a path; it is
still cut to its last path component and stripped of control characters, so a
name like ``../../etc/passwd`` or one carrying a newline cannot mislead anyone
reading the response or the logs, and of lone surrogates (what a part declared
in ``utf-7`` may decode to), which no UTF-8 response or header can carry.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from fastapi import UploadFile

from app.errors import EmptyUploadError, UnsupportedMediaTypeError, UploadTooLargeError
from app.pictures.imaging import SUPPORTED_MEDIA_TYPES

__all__ = ["Upload", "check_media_type", "read_upload", "read_uploads", "safe_filename"]

MAX_FILENAME_CHARS = 255
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, formats, surrogates, line breaks
# Clients that cannot tell the type send one of these; the bytes decide then.
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None


def safe_filename(name: str | None) -> str | None:
    """The last path component of ``name``, without control characters or surrogates, at most 255 characters."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Cs: lone surrogates (a part decoded as utf-7, say) cannot be encoded in JSON or a header
    cleaned = "".join(char for char in base if unicodedata.category(char) not in _DROPPED_CATEGORIES).strip()
    cleaned = cleaned[:MAX_FILENAME_CHARS]
    return cleaned if cleaned not in ("", ".", "..") else None


def check_media_type(file: UploadFile) -> None:
    """UnsupportedMediaTypeError when the part declares a type that is not a supported image."""
    declared = (file.content_type or "").split(";", 1)[0].strip().lower()
    if declared not in _UNTYPED and declared not in SUPPORTED_MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            f"file {safe_filename(file.filename) or '(unnamed)'} is declared as {declared!r}; "
            "send PNG, JPEG, GIF, BMP, WebP or TIFF (or application/octet-stream)"
        )


async def read_upload(file: UploadFile, max_bytes: int) -> Upload:
    """The bytes of one uploaded file, after its declared type and size are checked."""
    check_media_type(file)
    if file.size is not None and file.size > max_bytes:
        raise UploadTooLargeError(f"the file is {file.size} bytes; the limit is {max_bytes} bytes")
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"the file is larger than the limit of {max_bytes} bytes")
    if not data:
        raise EmptyUploadError("the uploaded file is empty (0 bytes)")
    return Upload(data, safe_filename(file.filename))


async def read_uploads(files: list[UploadFile], max_bytes: int) -> list[Upload]:
    """:func:`read_upload` for each file of a batch; an error names the file it is about."""
    uploads = []
    for index, file in enumerate(files):
        try:
            uploads.append(await read_upload(file, max_bytes))
        except (EmptyUploadError, UnsupportedMediaTypeError, UploadTooLargeError) as error:
            raise type(error)(f"file {index} ({safe_filename(file.filename) or 'unnamed'}): {error}") from error
    return uploads
