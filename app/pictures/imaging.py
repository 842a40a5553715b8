"""Decoding uploads safely: identify, check size, decode the first frame, orient, convert.

The order matters for safety: :func:`open_image` reads only the header, so the
pixel limit (a decompression-bomb guard) is enforced before a single pixel is
decoded. Only the formats the API documents are ever handed to a decoder.

Grey conversion follows what a person sees: transparency is flattened onto white
paper, palettes and colour spaces go through Pillow's ITU-R 601-2 luma, and
high bit depths are scaled (not clipped) to 8 bits.
"""

from __future__ import annotations

import base64
import io
import logging
import warnings

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from app.errors import CorruptImageError, EmptyUploadError, ImageTooLargeError, NotAnImageError

__all__ = [
    "SUPPORTED_FORMATS",
    "SUPPORTED_MEDIA_TYPES",
    "decode_image",
    "encode_png",
    "load_frame",
    "open_image",
    "png_base64",
    "to_display_pixels",
    "to_grey",
]

logger = logging.getLogger(__name__)

# Pillow warns about images over its own pixel limit as it opens them; the service enforces its own limit
# (GCNN_MAX_PIXELS) right after reading the header, so the warning would only be noise in the logs.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
MAX_JPEG_SCANS = 100  # libjpeg's progressive default writes 10 (colour) or 6 (grey); mozjpeg a few more
# What clients put in a multipart part's Content-Type for those formats (aliases included).
SUPPORTED_MEDIA_TYPES = frozenset(
    {
        "image/png",
        "image/x-png",
        "image/apng",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/gif",
        "image/bmp",
        "image/x-bmp",
        "image/x-ms-bmp",
        "image/webp",
        "image/tiff",
        "image/tif",
        "image/x-tiff",
    }
)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Identify ``data`` and check its declared size; no pixel is decoded yet.

    Raises:
        EmptyUploadError: ``data`` is empty.
        NotAnImageError: not one of :data:`SUPPORTED_FORMATS`.
        ImageTooLargeError: more than ``max_pixels`` pixels (width x height).
    """
    if not data:
        raise EmptyUploadError("the uploaded file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the image has too many pixels to decode safely ({error})") from error
    except UnidentifiedImageError as error:
        raise NotAnImageError(
            f"the file is not a supported image; send one of {', '.join(SUPPORTED_FORMATS)}"
        ) from error
    except Exception as error:  # Pillow's header parsers raise many types on malformed input
        raise CorruptImageError(f"the image header cannot be read: {error}") from error
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )
    _check_structure(data, image)
    return image


def _check_structure(data: bytes, image: Image.Image) -> None:
    """Refuse files whose decoding work is out of proportion to their size, before any decoding.

    A progressive JPEG is decoded scan by scan, each scan a pass over the whole
    image, and a scan header is ten bytes: a small file can declare thousands of
    them (2.5 ms each at 16 megapixels). Encoders write at most a few dozen.
    Every ``FF DA`` pair counts: in entropy-coded data an ``FF`` is always
    followed by ``00`` or a restart marker, so the count is exact except for
    embedded JPEGs (an EXIF thumbnail), which it includes.
    """
    if image.format == "JPEG":
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise CorruptImageError(
                f"the JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are decoded (encoders write a few dozen at most)"
            )


def decode_image(
    data: bytes, max_pixels: int, *, min_side: int | None = None, max_side: int | None = None
) -> Image.Image:
    """Decode the first frame of an upload, EXIF orientation applied: :func:`load_frame` of
    :func:`open_image` (the limits are checked on the header before any pixel is decoded)."""
    return load_frame(open_image(data, max_pixels), min_side=min_side, max_side=max_side)


def load_frame(image: Image.Image, *, min_side: int | None = None, max_side: int | None = None) -> Image.Image:
    """Decode the first frame of an image :func:`open_image` returned, EXIF orientation applied.

    Args:
        image: an opened upload whose header passed :func:`open_image`'s checks; no pixel decoded yet.
        min_side: when set, a JPEG may be decoded at a reduced scale (libjpeg's
            DCT scaling) as long as both sides stay at least this large. The
            classifier needs ~20 pixels per digit, so a phone photo need not be
            decoded at 12 megapixels.
        max_side: when set, a decoded image with a longer side is reduced by an
            integer factor (box filter) until it fits, so that the work after
            decoding does not grow with a scan's resolution.

    Raises:
        ImageTooLargeError: decoding needs more memory than one upload may use;
        CorruptImageError: the pixel data does not decode (truncated or damaged file).
    """
    try:
        image.seek(0)  # multi-frame GIF/TIFF/WebP/APNG: the first frame
        if min_side is not None and image.format == "JPEG":
            _draft(image, min_side)
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the image has too many pixels to decode safely ({error})") from error
    except MemoryError as error:  # a decode process's memory limit (app.pictures.sandbox)
        raise ImageTooLargeError("decoding this image needs more memory than one upload may use") from error
    except Exception as error:  # truncated data: OSError, SyntaxError, EOFError, struct.error, ...
        raise CorruptImageError(f"the image data cannot be decoded (truncated or damaged?): {error}") from error
    method = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    frame = image.transpose(method) if method is not None else image
    frame = _reduced(frame, max_side) if max_side is not None else frame
    if frame is not image:  # the caller still holds the opened image: free its decoded pixels (a scan's 64 MB)
        image.close()
    return frame


def _reduced(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` shrunk by the smallest integer factor that brings its longer side to ``max_side`` or less."""
    factor = -(-max(image.size) // max_side)
    if factor <= 1:
        return image
    if image.mode in ("P", "PA"):  # average colours, not palette indices
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    elif image.mode == "1" or image.mode in _SIXTEEN_BIT_MODES:
        image = image.convert("L" if image.mode == "1" else "I")
    return image.reduce(factor)


def _draft(image: Image.Image, min_side: int) -> None:
    width, height = image.size
    scale = min(width, height) / min_side
    if scale >= 2:
        grey = "L" if image.mode in ("L", "RGB") else None  # CMYK JPEGs keep their mode
        image.draft(grey, (int(width / scale), int(height / scale)))


def to_grey(image: Image.Image) -> np.ndarray:
    """The image as an 8-bit grey ``(H, W)`` array, 0 = black, 255 = white."""
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _flatten_on_white(image)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image).astype(np.float32)
        return _scale_to_uint8(values, _sensor_full_scale(float(values.max(initial=0))))
    if image.mode == "F":
        return _float_to_uint8(np.asarray(image).astype(np.float32))
    if image.mode == "LAB":
        return np.asarray(image.getchannel("L"))  # lightness L* scaled to 0..255
    return np.asarray(image.convert("L") if image.mode != "L" else image)


def _flatten_on_white(image: Image.Image) -> np.ndarray:
    """Composite onto white paper; a shape drawn only in the alpha channel becomes dark ink."""
    if image.mode == "La":  # premultiplied grey: Pillow converts it only to LA
        image = image.convert("LA")
    rgba = image.convert("RGBA")
    pixels = np.asarray(rgba).astype(np.float32)  # (H, W, 4)
    alpha = pixels[..., 3:] / 255.0
    flat = pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)
    grey = flat @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Pillow's "L" weights
    if np.ptp(grey) < 8 and np.ptp(pixels[..., 3]) >= 64:
        # e.g. white ink on a transparent canvas: invisible on white, but the alpha is the drawing
        grey = 255.0 - pixels[..., 3]
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


# Bit depths of the data that 16- and 32-bit integer images carry: 8-bit data stored wide, and
# 10-, 12-, 14- and 16-bit sensor or scanner data.
_SENSOR_BITS = (8, 10, 12, 14, 16)


def _sensor_full_scale(peak: float) -> float:
    """The white level of integer data whose brightest value is ``peak``: the smallest common bit
    depth that holds it (a 12-bit scan, 0..4095, is scaled by 4095, not by 65535 into near-black)."""
    return next((2.0**bits - 1 for bits in _SENSOR_BITS if peak <= 2**bits - 1), 65535.0)


def _scale_to_uint8(values: np.ndarray, full_scale: float) -> np.ndarray:
    return np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    """Float images: [0, 1] or [0, 255] as they are, any other range stretched to 0..255."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if low >= 0.0 and high <= 1.0:
        return _scale_to_uint8(values, 1.0)
    if low >= 0.0 and high <= 255.0:
        return _scale_to_uint8(values, 255.0)
    return _scale_to_uint8(values - low, high - low)


def encode_png(pixels: np.ndarray) -> bytes:
    """``(H, W)`` grey, ``(H, W, 2)`` grey + alpha, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 pixels as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # speed over size
    return buffer.getvalue()


def png_base64(pixels: np.ndarray) -> str:
    return base64.b64encode(encode_png(pixels)).decode("ascii")


def to_display_pixels(image: Image.Image) -> np.ndarray:
    """8-bit pixels for display: ``(H, W)`` grey, or ``(H, W, C)`` grey+alpha, RGB or RGBA.

    Grey and colour stay as they are; palettes, CMYK and other colour spaces
    become RGB (RGBA when transparent); high bit depths become 8-bit grey.
    """
    if image.mode in ("L", "RGB") and "transparency" in image.info:
        return np.asarray(image.convert("RGBA"))
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F", "LAB"):
        return to_grey(image)
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    if image.mode == "La":
        return np.asarray(image.convert("LA"))
    transparent = image.mode in _ALPHA_MODES or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if transparent else "RGB"))
