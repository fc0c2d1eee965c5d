"""Draw docs/images/review.png: the review page of a restore run, in headless Chromium.

The docs cannot run FLUX.1-dev, so the run is staged: scikit-image's sample photos (public domain /
CC0) are degraded here (downscaled, blurred, JPEG at quality 15) as the inputs, and the clean
photos stand in for the restored outputs. The report has the format ``restore --review --score``
writes (its scores are illustrative, not measured); one input is a broken file and one has a
hostile name. The page itself is made by the real command, ``lucidflux review REPORT``.
Needs scikit-image (eval extra), playwright (test extra) and Debian's chromium.

    python docs/review_screenshot.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter

ROOT = Path(__file__).parents[1]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# (input, output) NIQE and MUSIQ per photo: illustrative values in the report's format
SCORES = {
    "astronaut": ((6.1, 4.2), (38.0, 61.5)),
    "coffee": ((5.8, 6.4), (41.0, 35.2)),
    "chelsea": ((6.4, 4.0), (35.5, 64.0)),
    "rocket": ((5.9, 4.6), (40.2, 58.8)),
}


def stage(folder: Path) -> dict:
    import skimage.data

    photos, out = folder / "photos", folder / "restored"
    photos.mkdir()
    out.mkdir()
    files = []
    for name in PHOTOS:
        clean = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        small = clean.resize((clean.width // 4, clean.height // 4), Image.BICUBIC)
        small = small.filter(ImageFilter.GaussianBlur(1))
        small.resize(clean.size, Image.BICUBIC).save(photos / f"{name}.jpg", quality=15)
        clean.save(out / f"{name}.png")
        (niqe_in, niqe_out), (musiq_in, musiq_out) = SCORES[name]
        worse = (["niqe"] if niqe_out > niqe_in else []) + (["musiq"] if musiq_out < musiq_in else [])
        size = list(clean.size)
        files.append(
            {
                "event": "file",
                "source": f"photos/{name}.jpg",
                "output": f"restored/{name}.png",
                "status": "done",
                "seconds": 41.7,
                "details": {
                    "input_size": size,
                    "output_size": size,
                    "processing_size": size,
                    "pages": 1,
                    "tiles": 1,
                    "worse": worse,
                    "scores": {
                        "input": {"niqe": niqe_in, "musiq": musiq_in},
                        "output": {"niqe": niqe_out, "musiq": musiq_out},
                    },
                },
            }
        )
    (photos / "scan-0042.tif").write_bytes(b"II*\0 truncated")
    files.insert(
        0,
        {
            "event": "file",
            "source": "photos/scan-0042.tif",
            "output": None,
            "status": "failed",
            "seconds": 0.01,
            "error": "photos/scan-0042.tif: not a readable image (truncated file)",
        },
    )
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "tool": "lucidflux-cli",
        "command": "restore",
        "state": "finished",
        "started": now,
        "updated": now,
        "cwd": str(folder),
        "out_dir": str(out),
        "inputs": ["photos"],
        "planned": len(files),
        "done": len(files) - 1,
        "skipped": 0,
        "failed": 1,
        "not_started": 0,
        "files": files,
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    target = ROOT / "docs" / "images" / "review.png"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        document = stage(Path(tmp))
        report.write_text(json.dumps(document, indent=2))
        subprocess.run(
            [sys.executable, "-m", "lucidflux_cli", "review", str(report), "-q"],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        page = Path(document["out_dir"]) / "review" / "index.html"
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
            tab = browser.new_page(viewport={"width": 1100, "height": 1000})
            tab.goto(page.as_uri())
            tab.wait_for_function("Array.from(document.querySelectorAll('img.thumb')).every(i => i.complete)")
            tab.screenshot(path=str(target))
            browser.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
