"""decode_mask_bytes on every mode we accept, every mode we refuse, and damaged bytes.

Expected pixels come from the arrays the test images are built from, not from a decoder.
"""
from __future__ import annotations

import io
import pickle
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from transforms.decoding import DecodedMask, MaskDecodeError, decode_mask_bytes

RNG = np.random.default_rng(1234)


def packed_from_rgb(rgb: np.ndarray) -> np.ndarray:
    wide = rgb.astype(np.uint32)
    return (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, scanlines: bytes, palette: bytes = b"") -> bytes:
    """A PNG written by hand, for what Pillow cannot save (48-bit RGB, 2-bit grey, broken palettes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + (chunk(b"PLTE", palette) if palette else b"")
        + chunk(b"IDAT", zlib.compress(scanlines))
        + chunk(b"IEND", b"")
    )


def random_rgb(height: int = 6, width: int = 9) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def assert_decodes_to(data: bytes, expected_packed: np.ndarray, mode: str) -> DecodedMask:
    decoded = decode_mask_bytes(data)
    assert decoded.mode == mode
    assert (decoded.height, decoded.width) == expected_packed.shape
    assert decoded.packed.dtype == np.uint32
    np.testing.assert_array_equal(decoded.packed, expected_packed)
    return decoded


def assert_refused(data: bytes, code: str, *, max_pixels: int = 100_000_000) -> MaskDecodeError:
    with pytest.raises(MaskDecodeError) as caught:
        decode_mask_bytes(data, max_pixels=max_pixels)
    assert caught.value.code == code, caught.value.message
    return caught.value


# ---------------------------------------------------------------- accepted modes


def test_rgb_png():
    rgb = random_rgb()
    assert_decodes_to(encode(Image.fromarray(rgb)), packed_from_rgb(rgb), "RGB")


def test_rgba_png_ignores_alpha():
    rgba = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0  # fully transparent pixels keep their colour
    assert_decodes_to(encode(Image.fromarray(rgba, "RGBA")), packed_from_rgb(rgba[..., :3]), "RGBA")


def test_grey_png_is_v_v_v():
    grey = RNG.integers(0, 256, (4, 11), dtype=np.uint8)
    assert_decodes_to(encode(Image.fromarray(grey, "L")), packed_from_rgb(np.stack([grey] * 3, axis=-1)), "L")


def test_grey_alpha_png_ignores_alpha():
    grey_alpha = RNG.integers(0, 256, (4, 6, 2), dtype=np.uint8)
    grey = grey_alpha[..., 0]
    assert_decodes_to(encode(Image.fromarray(grey_alpha, "LA")), packed_from_rgb(np.stack([grey] * 3, axis=-1)), "LA")


def test_one_bit_png_is_black_and_white():
    bits = RNG.integers(0, 2, (7, 13)).astype(bool)
    expected = np.where(bits, 0xFFFFFF, 0).astype(np.uint32)
    assert_decodes_to(encode(Image.fromarray(bits)), expected, "1")


@pytest.mark.parametrize("bit_depth", [2, 4])
def test_low_bit_depth_grey_png_is_scaled_to_8_bits(bit_depth):
    levels = np.arange(8) % (1 << bit_depth)
    bits = "".join(format(int(v), f"0{bit_depth}b") for v in levels)
    row = int(bits, 2).to_bytes(len(bits) // 8, "big")
    data = raw_png(8, 1, bit_depth, 0, b"\x00" + row)
    grey = (levels * 255 // ((1 << bit_depth) - 1)).astype(np.uint32)
    assert_decodes_to(data, (grey * 0x010101)[None, :], "L")


def palette_image(indices: np.ndarray, palette: list[int]) -> Image.Image:
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette(palette)
    return image


def expected_from_palette(indices: np.ndarray, palette: list[int]) -> np.ndarray:
    entries = np.array(palette, dtype=np.uint8).reshape(-1, 3)
    return packed_from_rgb(entries[indices])


@pytest.mark.parametrize("n_entries", [3, 16, 256])
def test_palette_png_goes_through_its_palette(n_entries):
    """3 entries: a short palette (Pillow path); 16 and 256: full palettes of 4 and 8 bits (libspng)."""
    palette = RNG.integers(0, 256, 3 * n_entries).tolist()
    indices = RNG.integers(0, n_entries, (5, 9))
    options = {"bits": 4} if n_entries == 16 else {}
    data = encode(palette_image(indices, palette), **options)
    assert_decodes_to(data, expected_from_palette(indices, palette), "P")


def test_palette_png_with_transparency_keeps_the_palette_colour():
    palette = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    indices = np.array([[0, 1, 2], [2, 1, 0]])
    data = encode(palette_image(indices, palette), transparency=1)
    assert_decodes_to(data, expected_from_palette(indices, palette), "P")


def test_palette_index_past_the_palette_end_is_corrupt():
    data = raw_png(3, 1, 8, 3, b"\x00" + bytes([0, 1, 5]), palette=bytes(range(6)))
    error = assert_refused(data, "mask_corrupt")
    assert "palette index 5" in error.message


def test_palette_png_without_plte_is_corrupt():
    assert_refused(raw_png(2, 1, 8, 3, b"\x00\x00\x00"), "mask_corrupt")


def test_jpeg_decodes_close_to_its_colours():
    blocks = np.zeros((32, 32, 3), dtype=np.uint8)
    blocks[:, 16:] = (200, 30, 90)
    blocks[16:, :16] = (20, 180, 40)
    decoded = decode_mask_bytes(encode(Image.fromarray(blocks), "JPEG", quality=95))
    assert decoded.mode == "RGB" and (decoded.width, decoded.height) == (32, 32)
    channels = np.stack([(decoded.packed >> shift) & 0xFF for shift in (16, 8, 0)], axis=-1)
    # Block interiors survive lossy coding within a few levels (the tolerance in statistics handles it).
    assert np.abs(channels[4:12, 20:28].astype(int) - (200, 30, 90)).max() <= 6
    assert np.abs(channels[20:28, 4:12].astype(int) - (20, 180, 40)).max() <= 6


def test_grey_jpeg_is_v_v_v():
    grey = np.full((16, 16), 77, dtype=np.uint8)
    decoded = decode_mask_bytes(encode(Image.fromarray(grey, "L"), "JPEG", quality=95))
    assert decoded.mode == "L"
    np.testing.assert_array_equal(decoded.packed, np.full((16, 16), 77 * 0x010101, dtype=np.uint32))


@pytest.mark.parametrize("fmt, options", [("BMP", {}), ("WEBP", {"lossless": True})])
def test_lossless_other_formats_are_exact(fmt, options):
    rgb = random_rgb()
    assert_decodes_to(encode(Image.fromarray(rgb), fmt, **options), packed_from_rgb(rgb), "RGB")


# ---------------------------------------------------------------- refused modes


def test_16_bit_grey_png_is_unsupported():
    grey16 = np.array([[0, 4000], [65535, 300]], dtype=np.uint16)
    image = Image.fromarray(grey16)  # uint16 -> mode "I;16"
    error = assert_refused(encode(image), "mask_unsupported_mode")
    assert "16-bit" in error.message and "8-bit" in error.message


def test_48_bit_rgb_png_is_unsupported():
    # Pillow would read this as 8-bit RGB without a word: the header's bit depth must decide.
    scanline = b"\x00" + struct.pack(">6H", 1000, 2000, 3000, 65535, 0, 7)
    assert_refused(raw_png(2, 1, 16, 2, scanline), "mask_unsupported_mode")


def test_64_bit_rgba_png_is_unsupported():
    scanline = b"\x00" + struct.pack(">4H", 1, 2, 3, 4)
    assert_refused(raw_png(1, 1, 16, 6, scanline), "mask_unsupported_mode")


def test_cmyk_jpeg_is_unsupported():
    cmyk = Image.new("CMYK", (8, 8), (10, 20, 30, 40))
    error = assert_refused(encode(cmyk, "JPEG"), "mask_unsupported_mode")
    assert "CMYK" in error.message


def test_tiff_is_not_a_format_we_decode():
    cmyk = Image.new("CMYK", (8, 8), (10, 20, 30, 40))
    error = assert_refused(encode(cmyk, "TIFF"), "mask_corrupt")
    assert "PNG" in error.message  # tells the user which formats work


# ---------------------------------------------------------------- damaged bytes


@pytest.fixture(scope="module")
def good_png() -> bytes:
    return encode(Image.fromarray(random_rgb(40, 40)))


def test_zero_bytes_is_an_empty_file():
    assert_refused(b"", "mask_empty_file")


def test_truncated_png_is_corrupt(good_png):
    for cut in (len(good_png) // 2, len(good_png) - 12, 20, 9):
        assert_refused(good_png[:cut], "mask_corrupt")


def test_png_missing_iend_is_corrupt(good_png):
    assert good_png.endswith(chunk(b"IEND", b""))
    without_iend = good_png[:-12]
    Image.open(io.BytesIO(without_iend)).load()  # Pillow alone would accept it
    error = assert_refused(without_iend, "mask_corrupt")
    assert "IEND" in error.message


def test_bad_crc_is_corrupt(good_png):
    damaged = bytearray(good_png)
    damaged[-20] ^= 0x01  # inside the IDAT payload: its CRC no longer matches
    error = assert_refused(bytes(damaged), "mask_corrupt")
    assert "CRC" in error.message


def test_broken_deflate_data_with_a_valid_crc_is_corrupt():
    idat = bytearray(zlib.compress(b"\x00" + bytes(30) * 1))
    idat[3] ^= 0xFF
    ihdr = struct.pack(">IIBBBBB", 10, 1, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b"")
    assert_refused(data, "mask_corrupt")


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"\xff\xd8\xff\xe0" + b"\x00" * 30,  # JPEG start, then nothing
        b"BM" + b"\x00" * 60,
    ],
)
def test_garbage_is_corrupt(data):
    assert_refused(data, "mask_corrupt")


def test_random_damage_only_ever_raises_mask_decode_error(good_png):
    """Flip, cut and splice bytes of real PNG and JPEG files: decode or MaskDecodeError, nothing else."""
    jpeg = encode(Image.fromarray(random_rgb(24, 24)), "JPEG")
    rng = np.random.default_rng(7)
    for original in (good_png, jpeg):
        for _ in range(150):
            damaged = bytearray(original)
            for position in rng.integers(0, len(damaged), rng.integers(1, 4)):
                damaged[position] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                damaged = damaged[: int(rng.integers(1, len(damaged)))]
            try:
                decode_mask_bytes(bytes(damaged))
            except MaskDecodeError as error:
                assert error.code in {"mask_corrupt", "mask_unsupported_mode", "mask_too_large"}


def test_random_bytes_are_corrupt():
    rng = np.random.default_rng(3)
    for size in (1, 7, 100, 5000):
        assert_refused(rng.integers(0, 256, size, dtype=np.uint8).tobytes(), "mask_corrupt")


# ---------------------------------------------------------------- size limits


def test_huge_png_is_refused_from_its_header_before_decoding():
    # A real 40000x40000 1-bit PNG is ~200 KB; this one carries a token IDAT: if anything tried to
    # decode it, the answer would be mask_corrupt, not mask_too_large.
    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    started = time.perf_counter()
    error = assert_refused(data, "mask_too_large")
    assert time.perf_counter() - started < 0.05
    assert "1,600,000,000" in error.message and "--max-mask-pixels" in error.message


def test_max_pixels_is_inclusive(good_png):
    assert decode_mask_bytes(good_png, max_pixels=40 * 40).width == 40
    assert_refused(good_png, "mask_too_large", max_pixels=40 * 40 - 1)


def test_jpeg_size_limit_applies_before_decoding():
    jpeg = encode(Image.fromarray(random_rgb(20, 30)), "JPEG")
    assert_refused(jpeg, "mask_too_large", max_pixels=599)


# ---------------------------------------------------------------- header and error type


def test_mask_decode_error_survives_pickling_and_rejects_unknown_codes():
    error = pickle.loads(pickle.dumps(MaskDecodeError("mask_corrupt", "broken")))
    assert (error.code, error.message) == ("mask_corrupt", "broken")
    with pytest.raises(ValueError, match="findings.py"):
        MaskDecodeError("no_such_code", "x")
