"""Built-in formats that Pillow encodes (PNG and TIFF have their own modules)."""

from __future__ import annotations

from typing import Any, BinaryIO, ClassVar

import pillow_heif
from PIL import Image

from lucidflux_cli.imageio.formats.base import FormatCapabilities, OutputImage
from lucidflux_cli.imageio.formats.builtin import ALL_METADATA, GRAY, BuiltinFormat, pillow_metadata, quality

pillow_heif.register_heif_opener()  # Pillow's HEIF reader and writer

_JPEG_SEGMENT_LIMIT = 65000
_HEIF_TILE = 512


class PillowFormat(BuiltinFormat):
    """Encoded by Pillow's writer ``pil_name``; subclasses add their encoder arguments."""

    pil_name: ClassVar[str]

    def save_arguments(self, image: OutputImage) -> dict[str, Any]:
        """Pixels-only formats: the ICC profile where Pillow can embed one."""
        return {"icc_profile": image.icc_profile} if image.icc_profile else {}

    def write(self, fp: BinaryIO, image: OutputImage) -> None:
        samples = self.samples(image)
        if image.form is not None and image.form.colour == "cmyk":  # fromarray reads 4 channels as RGBA
            picture = Image.frombytes("CMYK", (samples.shape[1], samples.shape[0]), samples.tobytes())
        else:
            picture = Image.fromarray(samples)
        picture.save(fp, self.pil_name, **self.save_arguments(image))


class JPEG(PillowFormat):
    summary = "JPEG (4:4:4 at quality >= 90)"
    pil_name = "JPEG"
    aliases = ("jpg", "jpe", "jfif", "mpo")  # Pillow calls many camera JPEGs (with a preview frame) MPO
    read_extensions = (".jpe", ".jfif")
    capabilities = FormatCapabilities(
        (".jpg", ".jpeg"), quality=True, colours=("cmyk",), **GRAY, **ALL_METADATA
    )

    def save_arguments(self, image: OutputImage) -> dict[str, Any]:
        q = quality(image)
        # 4:4:4 chroma at high quality: restored fine colour detail should survive the encode.
        subsampling = 0 if q >= 90 else 2
        return {
            "quality": q,
            "subsampling": subsampling,
            **pillow_metadata(image, segment_limit=_JPEG_SEGMENT_LIMIT),
        }


class WebP(PillowFormat):
    summary = "WebP (quality 100 is lossless)"
    pil_name = "WEBP"
    pillow_feature = "webp"
    capabilities = FormatCapabilities((".webp",), alpha=True, quality=True, **ALL_METADATA)

    def save_arguments(self, image: OutputImage) -> dict[str, Any]:
        q = quality(image)
        return {"quality": q, "lossless": q >= 100, **pillow_metadata(image)}


class HEIF(PillowFormat):
    summary = "HEIF/HEIC (pillow-heif)"
    pil_name = "HEIF"
    aliases = ("heic", "hif")
    read_extensions = (".hif",)
    capabilities = FormatCapabilities((".heic", ".heif"), alpha=True, quality=True, **ALL_METADATA)

    def save_arguments(self, image: OutputImage) -> dict[str, Any]:
        # 512-pixel grid tiles, as phones write them: libde265 fails to decode single-frame
        # HEVC pictures of ~24 MP at high quality, and tiles also compress better.
        return {"quality": quality(image), "tile_size": _HEIF_TILE, **pillow_metadata(image)}


class AVIF(PillowFormat):
    summary = "AVIF"
    pil_name = "AVIF"
    pillow_feature = "avif"
    capabilities = FormatCapabilities((".avif",), alpha=True, quality=True, **ALL_METADATA)

    def save_arguments(self, image: OutputImage) -> dict[str, Any]:
        return {"quality": quality(image), **pillow_metadata(image)}


class BMP(PillowFormat):
    summary = "BMP, pixels only"
    pil_name = "BMP"
    aliases = ("dib",)
    capabilities = FormatCapabilities((".bmp",), **GRAY)


class PPM(PillowFormat):
    summary = "PPM, pixels only"
    pil_name = "PPM"
    aliases = ("pgm", "pbm", "pnm")
    read_extensions = (".pgm", ".pnm")
    capabilities = FormatCapabilities((".ppm",), **GRAY)  # gray: a PGM


class TGA(PillowFormat):
    summary = "TGA, pixels only"
    pil_name = "TGA"
    capabilities = FormatCapabilities((".tga",), **GRAY)


class JPEG2000(PillowFormat):
    summary = "JPEG 2000, pixels only"
    pil_name = "JPEG2000"
    pillow_feature = "jpg_2000"
    aliases = ("jp2", "j2k", "j2c")
    read_extensions = (".j2k", ".j2c")
    capabilities = FormatCapabilities((".jp2",), **GRAY)

    def save_arguments(self, image: OutputImage) -> dict[str, Any]:
        # A .j2k/.j2c name means a bare codestream; Pillow would wrap it in a JP2 box, as it
        # only sees the temp file's name.
        bare = image.path.suffix.lower() in (".j2k", ".j2c")
        return {"no_jp2": bare, **({} if bare else super().save_arguments(image))}
