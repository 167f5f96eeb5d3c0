"""Decode mask image bytes into one packed uint32 colour per pixel (``r<<16 | g<<8 | b``).

This is the hot path of the product, so each format takes its fastest *exact* route:

* PNG: we walk the chunks ourselves first (signature, IHDR, every CRC, IEND). That is cheap
  (crc32 runs at GB/s), lets us refuse huge or 16-bit images from the header before any pixel
  is inflated, and catches damage that the decoders let through (pyspng ignores CRCs; Pillow
  loads a PNG without IEND). Pixels then come from pyspng (libspng, ~2x faster than Pillow) as
  RGBA8, which libspng expands exactly like Pillow's ``convert("RGB")`` for every PNG colour
  type of 8 bits or less (checked in tests/test_decoding.py). Palette PNGs whose palette is
  shorter than their bit depth allows go through Pillow instead, because only the raw indices
  show an index past the palette's end (libspng and Pillow both silently paint it black).
* JPEG, BMP, WebP: Pillow, opened with ``formats=[...]`` so no other decoder sees user bytes.

Only ``MaskDecodeError`` leaves this module for bad bytes; its ``code`` is a findings code.
"""
from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import deflate
import numpy as np
import pyspng
from PIL import Image

from transforms.findings import CODES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow decoders allowed for non-PNG masks. PNG never reaches Pillow's format detection.
PILLOW_FORMATS = ("JPEG", "BMP", "WEBP")
# Pillow modes that are exact 8-bit RGB (alpha dropped). Everything else is refused.
EXACT_MODES = frozenset({"RGB", "RGBA", "P", "PA", "L", "LA", "1"})

# PNG colour type -> (Pillow-style mode name, allowed bit depths).
_PNG_COLOUR_TYPES: dict[int, tuple[str, tuple[int, ...]]] = {
    0: ("L", (1, 2, 4, 8, 16)),
    2: ("RGB", (8, 16)),
    3: ("P", (1, 2, 4, 8)),
    4: ("LA", (8, 16)),
    6: ("RGBA", (8, 16)),
}
_IHDR = struct.Struct(">IIBBBBB")
_CHUNK_HEAD = struct.Struct(">I4s")


class MaskDecodeError(Exception):
    """Bad mask bytes. ``code`` is one of findings.CODES; ``message`` says what to do about it."""

    def __init__(self, code: str, message: str):
        if code not in CODES:
            raise ValueError(f"unknown finding code {code!r}: register it in transforms/findings.py")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):  # picklable across Beam workers despite the two-argument __init__
        return (type(self), (self.code, self.message))


@dataclass(frozen=True)
class DecodedMask:
    width: int
    height: int
    mode: str  # the file's own mode: "RGB", "RGBA", "P", "L", "LA", "1", ...
    packed: np.ndarray  # (height, width) uint32, r<<16 | g<<8 | b, alpha dropped


@dataclass(frozen=True)
class _PngHeader:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    palette: bytes | None  # PLTE payload, 3 bytes per entry
    interlace: int = 0
    idat: tuple[tuple[int, int], ...] = ()  # (offset, length) of each IDAT chunk's payload, in order

    @property
    def mode(self) -> str:
        if self.colour_type == 0 and self.bit_depth == 1:
            return "1"
        return _PNG_COLOUR_TYPES[self.colour_type][0]


# Decode + statistics + crops of a 1080p mask cost ~33 ns per pixel on this machine under load
# (bench/decode_bench.py); 50 ns is the pessimistic rate used to refuse a mask before decoding it.
WORST_SECONDS_PER_PIXEL = 50e-9


class DecodeDeadline:
    """A per-mask wall-clock budget (--mask-decode-timeout), checked between steps, never interrupting one.

    Why no interruption: ``signal.setitimer`` only works in a process's main thread (Beam runs DoFns in
    worker threads), a thread cannot be stopped inside a C call (it would leak, still decoding), and a
    process per mask costs more than most masks take to decode. Each step here is one C call whose time
    is bounded by the pixel count (inflate and PNG unfiltering are linear in the output, and
    --max-mask-pixels caps it), so: refuse a mask whose size alone predicts more than the budget
    (``check_budget``, before decoding), and check the clock after each step (``check``). A mask then
    costs at most the budget plus one step.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.started = clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def check_budget(self, pixels: int) -> None:
        predicted = pixels * WORST_SECONDS_PER_PIXEL
        if predicted > self.seconds - self.elapsed():
            raise MaskDecodeError("mask_decode_timeout", f"the mask has {pixels:,} pixels, predicted to take {predicted:.2f} s to decode "
                                  f"and analyse, over --mask-decode-timeout={self.seconds:g} s; refused before decoding. "
                                  "Raise --mask-decode-timeout for masks this large")

    def check(self, step: str) -> None:
        elapsed = self.elapsed()
        if elapsed > self.seconds:
            raise MaskDecodeError("mask_decode_timeout", f"{step} took the mask to {elapsed:.2f} s, over --mask-decode-timeout="
                                  f"{self.seconds:g} s. Raise the limit if the workers are just slow or busy")


def decode_mask_bytes(data: bytes, *, max_pixels: int = 100_000_000, deadline: DecodeDeadline | None = None) -> DecodedMask:
    """Decode one mask image; raise MaskDecodeError (never anything else) for bad bytes or a spent deadline."""
    if len(data) == 0:
        raise MaskDecodeError("mask_empty_file", "the mask file has zero bytes; re-export or re-upload it")
    if data[:8] == PNG_SIGNATURE:
        decoded = _decode_png(data, max_pixels, deadline)
    else:
        decoded = _decode_with_pillow(data, max_pixels, deadline)
    if deadline is not None:
        deadline.check("decoding")
    return decoded


# ---------------------------------------------------------------- the fused path


class MaskPixels:
    """A decoded mask, ready for ``statistics.analyse_mask``: for a PNG, its inflated scanlines.

    Non-interlaced PNGs of every colour type and bit depth we accept keep their raw scanlines: the first
    ``classify`` defilters them in place and classifies each row while it is in cache (transforms/kernel.py),
    later ones (another colour table for the same file) only classify. Everything else carries packed
    pixels from the reference decoders below (``decode_mask_bytes``): interlaced PNGs, JPEG, BMP, WebP.
    When the kernel meets damage that the chunk walk cannot see (a filter byte > 4, a palette index
    past the palette) the reference decoder decides, so the findings and messages are the same as
    before: it raises MaskDecodeError or, if it accepts the bytes, its pixels are classified.
    """

    def __init__(self, width: int, height: int, mode: str, *, packed: np.ndarray | None = None,
                 scanlines: np.ndarray | None = None, layout: int = 0, bit_depth: int = 8,
                 lut: np.ndarray | None = None, data: bytes = b"", max_pixels: int = 0):
        self.width, self.height, self.mode = width, height, mode
        self._packed = packed
        self._scanlines = scanlines
        self._layout, self._bit_depth, self._lut = layout, bit_depth, lut
        self._defiltered = False
        self._data, self._max_pixels = data, max_pixels

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def fused(self) -> bool:
        """True while the PNG fast path holds the pixels (False after a fallback, and for other formats)."""
        return self._scanlines is not None

    @property
    def packed(self) -> np.ndarray:
        """The (h, w) uint32 pixels, decoded on first use by the reference decoder (the kernel never needs them)."""
        if self._packed is None:
            self._fall_back()
        return self._packed

    def classify(self, declared_rgb: np.ndarray, tolerance: int):
        """kernel.LabelPass of these pixels for the (n, 3) int64 declared colours."""
        from transforms import kernel

        if self._scanlines is None:
            return kernel.classify_packed(self.packed, declared_rgb, tolerance)
        n = len(declared_rgb)
        lab, acc, keys, table_labels, counts = kernel.start_pass(self.height, self.width, declared_rgb)
        status, keys, table_labels, counts = kernel.png_pass(
            self._scanlines, self.height, self.width, self._layout, self._bit_depth, self._lut, self._defiltered,
            lab, keys, table_labels, counts, declared_rgb, int(tolerance), kernel.undeclared_label(n), acc, n)
        if status == kernel.OK:
            self._defiltered = True
            return kernel.LabelPass(lab, acc, keys, table_labels, counts)
        if status == kernel.BAD_SIZES:
            raise AssertionError("png_pass refused the sizes open_mask gave it")
        self._fall_back()  # raises MaskDecodeError for what the reference decoders refuse
        return kernel.classify_packed(self._packed, declared_rgb, tolerance)

    def _fall_back(self) -> None:
        self._scanlines = None  # possibly half defiltered: never read again
        self._packed = _decode_png(self._data, self._max_pixels).packed


def open_mask(data: bytes, *, max_pixels: int = 100_000_000, deadline: DecodeDeadline | None = None) -> MaskPixels:
    """Check and inflate a mask for ``statistics.analyse_mask``; raise MaskDecodeError (only) for bad bytes.

    PNG: the chunk walk of ``decode_mask_bytes`` (CRCs, IHDR limits, IEND), then the IDAT inflated with
    libdeflate (~10x zlib's speed); defiltering waits for the kernel's pass. A stream libdeflate
    refuses (bad data, wrong length, checksum) goes to the reference decoder, which decides.
    """
    if len(data) == 0 or data[:8] != PNG_SIGNATURE:
        decoded = decode_mask_bytes(data, max_pixels=max_pixels, deadline=deadline)
        return MaskPixels(decoded.width, decoded.height, decoded.mode, packed=decoded.packed)
    header = _read_png_header(data, max_pixels)
    if deadline is not None:
        deadline.check_budget(header.width * header.height)
    layout = _kernel_layout(header)
    if layout is None:  # interlaced: measured fallback (libspng deinterlaces)
        pixels = MaskPixels(header.width, header.height, header.mode, packed=_decode_png(data, max_pixels).packed)
    else:
        kind, lut = layout
        bits = {0: 24, 1: 32, 2: 16}.get(kind, header.bit_depth)
        expected = header.height * ((header.width * bits + 7) // 8 + 1)
        view = memoryview(data)
        idat = view[header.idat[0][0] : sum(header.idat[0])] if len(header.idat) == 1 else b"".join(
            view[offset : offset + length] for offset, length in header.idat)
        try:
            raw = deflate.zlib_decompress(idat, expected)
        except deflate.DeflateError:
            raw = None
        if raw is None or len(raw) != expected:
            pixels = MaskPixels(header.width, header.height, header.mode, packed=_decode_png(data, max_pixels).packed)
        else:
            pixels = MaskPixels(header.width, header.height, header.mode, scanlines=np.frombuffer(raw, dtype=np.uint8),
                                layout=kind, bit_depth=header.bit_depth, lut=lut, data=data, max_pixels=max_pixels)
    if deadline is not None:
        deadline.check("decoding")
    return pixels


def _kernel_layout(header: _PngHeader) -> tuple[int, np.ndarray] | None:
    """How the kernel reads this PNG's scanlines, with its 256-entry colour table; None: not the kernel's."""
    from transforms import kernel

    if header.interlace:
        return None
    if header.colour_type == 2:
        return kernel.RGB8, _NO_TABLE
    if header.colour_type == 6:
        return kernel.RGBA8, _NO_TABLE
    if header.colour_type == 4:
        return kernel.GREY_ALPHA8, _GREY_TABLE
    if header.colour_type == 0:
        return kernel.INDEXED, _GREY_TABLES[header.bit_depth]
    lut = np.full(256, kernel.EMPTY, dtype=np.uint32)  # entries past the palette's end: an error if used
    entries = _palette_lookup_table(header.palette)[: len(header.palette) // 3]
    lut[: len(entries)] = entries
    return kernel.INDEXED, lut


# ---------------------------------------------------------------- PNG


def _read_png_header(data: bytes, max_pixels: int) -> _PngHeader:
    """Walk every chunk: IHDR first and sane, size within max_pixels, CRCs right, IEND present."""
    view = memoryview(data)
    offset = 8
    header: tuple[int, ...] | None = None
    palette: bytes | None = None
    idat: list[tuple[int, int]] = []
    while True:
        if offset + 12 > len(data):
            raise _corrupt("the PNG is truncated (no IEND chunk); the file was cut short while copying")
        length, chunk_type = _CHUNK_HEAD.unpack_from(data, offset)
        end = offset + 8 + length + 4
        if length > 0x7FFFFFFF or end > len(data):
            raise _corrupt(f"the PNG is truncated inside its {chunk_type!r} chunk; the file was cut short")
        if header is None:
            if chunk_type != b"IHDR" or length != 13:
                raise _corrupt("the PNG does not start with an IHDR chunk; it is not a valid PNG")
            # Refuse by size before reading further: a 40000x40000 1-bit PNG is only ~200 KB.
            header = _IHDR.unpack_from(data, offset + 8)
            _check_png_ihdr(header, max_pixels)
        (stored_crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[offset + 4 : end - 4]) != stored_crc:
            raise _corrupt(f"the PNG's {chunk_type.decode('latin-1')!r} chunk fails its CRC; the file is damaged")
        if chunk_type == b"PLTE":
            palette = bytes(view[offset + 8 : end - 4])
            if length == 0 or length % 3 or length > 768:
                raise _corrupt(f"the PNG palette has {length} bytes, not 3 per entry for 1..256 entries")
        elif chunk_type == b"IDAT":
            idat.append((offset + 8, length))
        elif chunk_type == b"IEND":
            break
        offset = end
    width, height, bit_depth, colour_type = header[:4]
    if not idat:
        raise _corrupt("the PNG has no IDAT chunk, so it holds no pixels")
    if colour_type == 3 and palette is None:
        raise _corrupt("the palette PNG has no PLTE chunk, so its pixels have no colours")
    return _PngHeader(width, height, bit_depth, colour_type, palette, header[6], tuple(idat))


def _check_png_ihdr(ihdr: tuple[int, ...], max_pixels: int) -> None:
    width, height, bit_depth, colour_type, compression, filter_method, interlace = ihdr
    if width == 0 or height == 0 or width > 0x7FFFFFFF or height > 0x7FFFFFFF:
        raise _corrupt(f"the PNG header gives an impossible size {width}x{height}")
    _check_pixel_count(width, height, max_pixels)
    if colour_type not in _PNG_COLOUR_TYPES or bit_depth not in _PNG_COLOUR_TYPES[colour_type][1]:
        raise _corrupt(f"the PNG header has bit depth {bit_depth} with colour type {colour_type}, which PNG does not allow")
    if compression or filter_method or interlace > 1:
        raise _corrupt("the PNG header names an unknown compression, filter or interlace method")
    if bit_depth == 16:
        mode = _PNG_COLOUR_TYPES[colour_type][0]
        raise MaskDecodeError(
            "mask_unsupported_mode",
            f"the mask is a 16-bit-per-channel {mode} PNG; mask colours must be 8-bit "
            "(save it as 8-bit RGB, palette or grayscale; 16-bit values would be clipped or truncated)",
        )


def _decode_png(data: bytes, max_pixels: int, deadline: DecodeDeadline | None = None) -> DecodedMask:
    header = _read_png_header(data, max_pixels)
    if deadline is not None:
        deadline.check_budget(header.width * header.height)
    palette = header.palette
    if header.colour_type == 3 and len(palette) // 3 < (1 << header.bit_depth):
        packed = _decode_short_palette_png(data, header)
    else:
        try:
            rgba = pyspng.load(data, "RGBA")
        except Exception as error:  # libspng reports bad deflate data, short IDAT, bad filters...
            raise _corrupt(f"the PNG's pixel data cannot be decoded ({error}); the file is damaged") from error
        packed = _pack_rgba(rgba)
    return DecodedMask(header.width, header.height, header.mode, packed)


def _decode_short_palette_png(data: bytes, header: _PngHeader) -> np.ndarray:
    """Indices through Pillow, so an index past the end of the palette is an error, not black."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            indices = np.asarray(image)
    except Exception as error:
        raise _corrupt(f"the PNG's pixel data cannot be decoded ({error}); the file is damaged") from error
    n_entries = len(header.palette) // 3
    highest = int(indices.max())
    if highest >= n_entries:
        raise _corrupt(
            f"a pixel uses palette index {highest} but the palette has only {n_entries} entries; "
            "its colour is undefined (re-save the mask with a complete palette)"
        )
    return _palette_lookup_table(header.palette)[indices]


# ---------------------------------------------------------------- other formats via Pillow


def _decode_with_pillow(data: bytes, max_pixels: int, deadline: DecodeDeadline | None = None) -> DecodedMask:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
    except Image.DecompressionBombError as error:  # only when max_pixels exceeds Pillow's own limit
        raise MaskDecodeError("mask_too_large", f"{error}; raise Image.MAX_IMAGE_PIXELS as well") from error
    except Exception as error:
        raise _corrupt(
            f"the bytes are not an image we decode ({type(error).__name__}); masks must be PNG, JPEG, BMP or WebP"
        ) from error
    with image:
        width, height = image.size
        _check_pixel_count(width, height, max_pixels)
        if deadline is not None:
            deadline.check_budget(width * height)
        mode = image.mode
        if mode not in EXACT_MODES:
            raise MaskDecodeError(
                "mask_unsupported_mode",
                f"the {image.format} mask has pixel mode {mode!r}, which is not exact 8-bit RGB; "
                "save it as 8-bit RGB, palette or grayscale",
            )
        try:
            image.load()
            if mode == "L":  # (v, v, v) through a table: cheaper than Pillow's convert
                packed = _GREY_TABLE[np.asarray(image)]
            else:
                packed = _pack_rgba(np.asarray(image.convert("RGBA")))
        except Exception as error:  # truncated JPEG, broken stream, ...
            raise _corrupt(f"the {image.format} image cannot be decoded ({error}); the file is damaged") from error
    return DecodedMask(width, height, mode, packed)


# ---------------------------------------------------------------- packing


def _pack_rgba(rgba: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 RGBA -> (h, w) uint32 r<<16|g<<8|b, reusing the buffer when possible.

    Each pixel's 4 bytes already form one aligned uint32; byte-swapping it on a little-endian
    host gives r<<24|g<<16|b<<8|a and one shift drops alpha: two vectorised passes (~1.3 ms
    for 1080p), against ~5 ms for widening and or-ing the three channels.
    """
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    words = rgba.view(np.uint32).reshape(rgba.shape[:2])
    if np.little_endian:
        if not words.flags.writeable:
            words = words.copy()
        words.byteswap(inplace=True)
    else:
        words = words.copy()
    words >>= 8
    return words


def _palette_lookup_table(palette: bytes) -> np.ndarray:
    entries = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    table = np.zeros(256, dtype=np.uint32)
    table[: len(entries)] = (entries[:, 0] << 16) | (entries[:, 1] << 8) | entries[:, 2]
    return table


_GREY_TABLE = np.arange(256, dtype=np.uint32) * 0x010101
_NO_TABLE = np.zeros(256, dtype=np.uint32)  # RGB and RGBA scanlines hold their colours
# Grey of 1, 2, 4 bits scaled to 8 as libspng and Pillow do (v * 255 / (2^d - 1)); past 2^d: unused.
_GREY_TABLES = {depth: np.array([(v * 255 // ((1 << depth) - 1) if v < (1 << depth) else 0) * 0x010101 for v in range(256)],
                                dtype=np.uint32) for depth in (1, 2, 4, 8)}


def _check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise MaskDecodeError(
            "mask_too_large",
            f"the mask is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}; "
            "raise --max-mask-pixels if it is genuine",
        )


def _corrupt(message: str) -> MaskDecodeError:
    return MaskDecodeError("mask_corrupt", message)
