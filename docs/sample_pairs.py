"""Draw docs/images/sample-pairs.png: pairs made by ``lucidflux data degrade`` from real photos.

The photos are scikit-image's bundled samples (public domain / CC0: ``coffee``, ``chelsea``),
enlarged to a short side of 1100 px first (they are smaller than the 1024 px GT crop, which the
pipeline would fill by mirroring, as the reference does), then degraded by the real command
(preset realesrgan, seed 0, 2 passes). Each row: the 1024 px HQ
(sharpened GT crop), the 256 px LQ shown with nearest-neighbour enlargement, and the LQ
upsampled to 1024 as the model sees it; every tile is shown at 256 px. Needs scikit-image
(installed with the ``eval`` extra).

    python docs/sample_pairs.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).parents[1]
TILE = 256
LABEL = 22


def main() -> None:
    import skimage.data

    with tempfile.TemporaryDirectory() as tmp:
        photos, pairs = Path(tmp) / "photos", Path(tmp) / "pairs"
        photos.mkdir()
        for name in ("coffee", "chelsea"):
            photo = Image.fromarray(getattr(skimage.data, name)())
            scale = 1100 / min(photo.size)
            photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS).save(
                photos / f"{name}.png"
            )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lucidflux_cli",
                "data",
                "degrade",
                str(photos),
                "-o",
                str(pairs),
                "--passes",
                "2",
                "--seed",
                "0",
                "-q",
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        rows = [(name, index) for name in ("coffee", "chelsea") for index in range(2)]
        sheet = Image.new("RGB", (3 * TILE, LABEL + len(rows) * TILE), "white")
        draw = ImageDraw.Draw(sheet)
        for column, title in enumerate(
            ("HQ 1024 (sharpened crop)", "LQ 256 (nearest x4)", "LQ up 1024 (bicubic)")
        ):
            draw.text((column * TILE + 6, 5), title, fill="black")
        for row, (name, index) in enumerate(rows):
            for column, folder in enumerate(("hq", "lq", "lq_up")):
                image = Image.open(pairs / folder / f"{name}_p{index}.png")
                resample = Image.NEAREST if folder == "lq" else Image.LANCZOS
                sheet.paste(image.resize((TILE, TILE), resample), (column * TILE, LABEL + row * TILE))
            draw.text((6, LABEL + row * TILE + 4), f"{name}, pass {index}", fill="yellow")
    target = ROOT / "docs" / "images" / "sample-pairs.png"
    sheet.save(target, optimize=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
