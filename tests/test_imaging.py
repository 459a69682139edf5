"""Decoding every kind of awkward input: each is usable or gets a clear message, never a traceback."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from hematovision.core.imaging import (
    MAX_PIXELS,
    ImageLoadError,
    centre_square,
    decode_image,
    load_model_input,
    to_model_input,
)
from tests.conftest import encode, synthetic_cell


def test_plain_jpeg_decodes_to_rgb():
    decoded = decode_image(encode(synthetic_cell(0, 1), "JPEG", quality=95))
    assert decoded.rgb.shape == (120, 120, 3) and decoded.rgb.dtype == np.uint8
    assert decoded.notes == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all" * 10, "not a recognised image format"),
    ],
)
def test_unusable_bytes_are_explained(payload, message):
    with pytest.raises(ImageLoadError, match=message):
        decode_image(payload)


def test_truncated_jpeg_is_reported_as_damaged():
    data = encode(synthetic_cell(0, 2, size=300), "JPEG", quality=95)
    with pytest.raises(ImageLoadError, match="damaged or incomplete"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    side = int(np.sqrt(MAX_PIXELS)) + 100
    # A real PNG header that claims a huge size: what a bomb looks like, without the gigabytes.
    data = encode(np.zeros((8, 8), np.uint8), "PNG")
    start = data.index(b"IHDR")
    chunk = b"IHDR" + side.to_bytes(4, "big") * 2 + data[start + 12 : start + 17]
    bomb = data[:start] + chunk + zlib.crc32(chunk).to_bytes(4, "big") + data[start + 21 :]
    with pytest.raises(ImageLoadError, match="the limit is 50 megapixels"):
        decode_image(bomb)


def test_tiny_image_is_refused():
    with pytest.raises(ImageLoadError, match="at least 32 px"):
        decode_image(encode(np.zeros((20, 40, 3), np.uint8)))


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        decode_image(tmp_path / "nothing.png")


def test_sixteen_bit_png_is_rescaled_not_clipped():
    gradient = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    decoded = decode_image(encode(gradient, "PNG"))
    assert decoded.rgb.shape == (64, 64, 3)
    # Clipping at 255 would make almost every pixel white; rescaling keeps the ramp.
    assert decoded.rgb[0, 0, 0] == 0 and decoded.rgb[0, -1, 0] == 255
    assert 100 < decoded.rgb[0, 32, 0] < 160
    assert any("16-bit" in note for note in decoded.notes)


def test_greyscale_is_converted_and_noted():
    decoded = decode_image(encode(synthetic_cell(0, 3)[..., 0], "PNG"))
    assert decoded.rgb.shape == (120, 120, 3)
    assert any("greyscale" in note for note in decoded.notes)


def test_rgba_is_flattened_on_white():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:32, :, 3] = 255  # top half opaque red, bottom half transparent
    decoded = decode_image(encode(rgba, "PNG"))
    assert tuple(decoded.rgb[0, 0]) == (200, 0, 0)
    assert tuple(decoded.rgb[-1, 0]) == (255, 255, 255)


def test_palette_png_is_converted():
    image = Image.fromarray(synthetic_cell(1, 4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.rgb.shape == (120, 120, 3)


def test_cmyk_jpeg_is_converted():
    buffer = io.BytesIO()
    Image.fromarray(synthetic_cell(1, 5)).convert("CMYK").save(buffer, format="JPEG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.rgb.shape == (120, 120, 3)
    assert any("CMYK" in note for note in decoded.notes)


@pytest.mark.parametrize("fmt", ["TIFF", "GIF"])
def test_multi_frame_file_uses_first_frame_and_says_so(fmt):
    first = Image.fromarray(np.full((64, 64, 3), (255, 0, 0), np.uint8))
    second = Image.fromarray(np.full((64, 64, 3), (0, 0, 255), np.uint8))
    buffer = io.BytesIO()
    first.save(buffer, format=fmt, save_all=True, append_images=[second])
    decoded = decode_image(buffer.getvalue())
    assert decoded.rgb[10, 10, 0] > 200 and decoded.rgb[10, 10, 2] < 50
    assert any("first of 2 frames" in note for note in decoded.notes)


def test_exif_orientation_is_honoured():
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :40] = (255, 0, 0)  # left half red
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    decoded = decode_image(buffer.getvalue())
    assert decoded.size == (40, 80)  # now tall
    assert decoded.rgb[5, 20, 0] > 200  # the red half is on top after rotation


def test_model_input_is_centre_square_resized():
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[:, 50:150] = 255
    assert centre_square(rgb).shape == (100, 100, 3)
    assert centre_square(rgb).min() == 255  # the centre square is the white band
    out = to_model_input(rgb, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_load_model_input_matches_two_step_path():
    data = encode(synthetic_cell(2, 6), "PNG")
    np.testing.assert_array_equal(load_model_input(data, 50), to_model_input(decode_image(data).rgb, 50))
