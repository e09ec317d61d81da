"""Builders for awkward and broken image files (used by several test modules)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature + IHDR claiming ``width`` x ``height``, and a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def bad_files(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """Files that must raise a typed error."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    out["zero-byte"] = folder / "empty.jpg"
    out["zero-byte"].write_bytes(b"")
    data = good_jpeg.read_bytes()
    out["truncated"] = folder / "truncated.jpg"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["text"] = folder / "notes.jpg"
    out["text"].write_text("this is not an image\n" * 20)
    out["bomb"] = png_header_only(folder / "bomb.png", 30000, 30000)
    return out


def odd_files(folder: Path, photo: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Files that must decode, each with the RGB pixels a correct loader returns (approximately)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.open(photo).convert("RGB").resize((96, 64))
    ref = np.asarray(rgb)
    out: dict[str, tuple[Path, np.ndarray]] = {}

    p = folder / "cmyk.jpg"
    rgb.convert("CMYK").save(p, quality=95)
    out["cmyk"] = (p, ref)

    grey16 = (np.linspace(0, 65535, 96, dtype=np.float64)[None, :].repeat(64, 0)).astype(np.uint16)
    p = folder / "grey16.png"
    Image.fromarray(grey16).save(p)
    expect = np.round(grey16 / 65535 * 255).astype(np.uint8)
    out["16-bit"] = (p, np.stack([expect] * 3, axis=-1))

    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal_arr = np.asarray(pal).copy()
    pal_arr[:, :48] = 0  # left half: palette index 0, declared transparent
    pal_img = Image.fromarray(pal_arr).convert("P")
    pal_img.putpalette(pal.getpalette())
    p = folder / "palette.png"
    pal_img.save(p, transparency=0)
    expect = np.asarray(pal_img.convert("RGB")).copy()
    expect[:, :48] = 255
    out["palette-transparent"] = (p, expect)

    rgba = rgb.convert("RGBA")
    alpha = np.full((64, 96), 255, np.uint8)
    alpha[32:] = 0
    rgba.putalpha(Image.fromarray(alpha))
    p = folder / "rgba.png"
    rgba.save(p)
    expect = ref.copy()
    expect[32:] = 255
    out["rgba"] = (p, expect)

    la = rgb.convert("L").convert("LA")
    la.putalpha(Image.fromarray(alpha))
    p = folder / "la.png"
    la.save(p)
    expect = np.stack([np.asarray(rgb.convert("L"))] * 3, axis=-1).copy()
    expect[32:] = 255
    out["la"] = (p, expect)

    frames = [rgb, Image.new("RGB", rgb.size, (255, 0, 0)), Image.new("RGB", rgb.size, (0, 0, 255))]
    p = folder / "animated.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["animated-gif"] = (p, np.asarray(Image.open(p).convert("RGB")))  # frame 0 as GIF stores it

    rotated = rgb.transpose(Image.Transpose.ROTATE_90)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 CW to display"
    p = folder / "exif-rotated.jpg"
    rotated.save(p, exif=exif, quality=95)
    out["exif-rotated"] = (p, ref)
    return out


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
