"""Photos of a fault attached to an RMA item: JPEG or PNG, checked by their content.

The file name and the browser's content type are never trusted: the bytes must start
with the format's signature AND Pillow must parse and verify them as that format. The
name is kept only as a display name, cleaned of paths and control characters.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import warnings
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from PIL import Image, UnidentifiedImageError

_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png"}
DISPLAY_NAME_MAX = 200
# A photo of a token needs no more: refuse larger images before decoding (pixel bombs).
MAX_PIXELS = 80_000_000


class PhotoError(ValueError):
    """A photo was refused. ``code`` is ``bad_photo`` or ``photo_too_large``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedPhoto:
    filename: str  # display name only
    content_type: str  # from the detected format
    size: int
    sha256: str
    data: bytes


def display_name(raw: str | None, image_format: str | None = None) -> str:
    """The last path component of ``raw`` without control characters, at most 200
    characters; ``photo.jpg``/``photo.png`` when nothing usable is left."""
    text = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(
        ch for ch in text if unicodedata.category(ch)[0] != "C" and ch not in '<>:"|?*'
    )
    text = " ".join(text.split()).strip(". ")
    if not text:
        return "photo" + _EXTENSIONS.get(image_format or "", "")
    if len(text) > DISPLAY_NAME_MAX:
        stem, dot, ext = text.rpartition(".")
        if dot and len(ext) <= 10:
            text = stem[: DISPLAY_NAME_MAX - len(ext) - 1] + "." + ext
        else:
            text = text[:DISPLAY_NAME_MAX]
    return text


def _signature_format(data: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def _pillow_format(data: bytes) -> str | None:
    """The format Pillow reads and verifies, or None when it is not a sound image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format
                width, height = image.size
                if width < 1 or height < 1 or width * height > MAX_PIXELS:
                    return None
                image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    return image_format


def check_photo(filename: str | None, data: bytes) -> CheckedPhoto:
    """Accept a JPEG or PNG of at most ``PHOTO_MAX_BYTES`` (5 MB by default).

    Raises :class:`PhotoError` with a translated message that names the file."""
    name = display_name(filename)
    limit = current_app.config["PHOTO_MAX_BYTES"]
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PhotoError("bad_photo", _("%(name)s could not be read.", name=name))
    data = bytes(data)
    if len(data) > limit:
        raise PhotoError(
            "photo_too_large",
            _("%(name)s is larger than %(mb)s MB.", name=name, mb=_megabytes(limit)),
        )
    expected = _signature_format(data)
    found = _pillow_format(data) if expected else None
    if expected is None or found != expected:
        raise PhotoError(
            "bad_photo", _("%(name)s is not a JPEG or PNG photo.", name=name)
        )
    return CheckedPhoto(
        filename=display_name(filename, found),
        content_type=CONTENT_TYPES[found],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )


def _megabytes(size: int) -> str:
    value = size / (1024 * 1024)
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
