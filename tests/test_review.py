"""Review pages (docs/review.md): a real ``restore --review`` run with tiny weights, its page driven
in a real headless Chromium, ``lucidflux review`` rebuilding it from the report alone, and the
eval and train pages through the same renderer."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import weight_args
from PIL import Image

from lucidflux_cli import review
from lucidflux_cli.commands.main import main
from lucidflux_cli.review import links, page
from lucidflux_cli.review.model import Page, Row
from lucidflux_cli.review.reports import validation_page

HOSTILE = "<img src=x onerror=alert(1)>.jpg"
FAST = ["--steps", "1", "--device", "cpu", "--min-side", "0"]
# Photos by height: the fake metric below makes the output of these worse (NIQE: lower is better).
WORSE_BY_HEIGHT = {80: 6.0, 72: 4.4}  # 4.0 before: a 50 % and a 10 % drop


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class FakeScorer:
    """A no-download stand-in for pyiqa's NIQE: 4.0 for an input, its output by image height."""

    def __init__(self, metrics, **_):
        self.metrics = tuple(metrics)

    def check(self) -> None:
        pass

    def score(self, images, references=None, labels=None):
        before, after = images
        return [{"niqe": 4.0}, {"niqe": WORSE_BY_HEIGHT.get(after.shape[0], 3.0)}]


def make_photos(folder: Path) -> dict[str, Path]:
    """a_good (64 px high), b_worse (80), c_slightly_worse (72), the hostile name, a broken file."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    files = {}
    shapes = (("a_good.png", 64), ("b_worse.png", 80), ("c_slightly_worse.png", 72), (HOSTILE, 64))
    for name, height in shapes:
        pixels = (rng.random((height, 96, 3)) * 255).astype(np.uint8)
        files[name] = folder / name
        Image.fromarray(pixels).save(files[name], format="PNG" if name.endswith(".png") else "JPEG")
    files["broken.jpg"] = folder / "broken.jpg"
    files["broken.jpg"].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return files


@pytest.fixture(scope="module")
def reviewed(tiny_release, tmp_path_factory):
    """``restore --review --score`` over the photos; (photos, output folder)."""
    root = tmp_path_factory.mktemp("review")
    photos = make_photos(root / "photos")
    out = root / "out"
    pages = []  # (the report's state, the photos on the page) of each page written during the run
    real_write = review.write_report_page

    def write(document, writer, higher_better):
        written = real_write(document, writer, higher_better)
        pages.append((document["state"], len(page_data(written)["rows"]) if written else None))
        return written

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("lucidflux_cli.metrics.scoring.Scorer", FakeScorer)
        patch.setattr(review, "write_report_page", write)
        result = run(
            "restore",
            str(root / "photos"),
            "-o",
            str(out),
            *FAST,
            *weight_args(tiny_release),
            "--score",
            "niqe",
            "--review",
            "--report-every",
            "0",
        )
    assert result.exit_code == 1, result.output  # the broken file failed, the rest went through
    # rewritten with the report as files finished (not-started files are rows too), then the last word
    assert len(pages) == 6  # a call per report write: 5 files and the end
    assert pages[0] == ("running", 5) and pages[-1] == ("finished", 5)
    return photos, out


def page_data(index: Path) -> dict:
    """The JSON blob of a written page, parsed as the page's script parses it."""
    text = index.read_text(encoding="utf-8")
    blob = re.search(r'<script id="review-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(blob.group(1))


# failed, worse by drop, then the rest in the run's order ("<" sorts before "a")
EXPECTED_ORDER = ["broken.jpg", "b_worse.png", "c_slightly_worse.png", HOSTILE, "a_good.png"]


def test_restore_review_writes_the_page_with_what_the_report_has(reviewed):
    photos, out = reviewed
    index = review.page_path(out)
    report = json.loads(review.default_report(out).read_text())
    assert report["state"] == "finished" and report["out_dir"] == str(out)
    data = page_data(index)
    assert [row["name"] for row in data["rows"]] == EXPECTED_ORDER
    assert data["counts"] == {"all": 5, "failed": 1, "worse": 2}
    broken, worse = data["rows"][0], data["rows"][1]
    assert broken["status"] == "failed" and "broken.jpg" in broken["reason"] and "\n" not in broken["reason"]
    facts = dict(worse["facts"])
    assert facts["size in"] == facts["size out"] == "96×80 px"
    assert facts["tiles"] == "1" and facts["pages"] == "1"
    assert worse["scores"] == [["niqe", "4.0000", "6.0000", "+2 (+50.0%)", True]]
    assert data["table"][0] == ["metric", "input", "output"] and data["table"][1][0] == "niqe ↓"
    # every link relative, percent-encoded, and to a file inside the run's folders
    for row in data["rows"]:
        for cell in row["cells"]:
            for url in (cell["link"], cell["thumb"], cell["view"]):
                assert url is None or (url.startswith(("./", "../")) and "<" not in url and "#" not in url)
    hostile_link = "../../photos/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.jpg"
    assert data["rows"][3]["cells"][0]["link"] == hostile_link
    thumbs = list((out / "review" / ".thumbs").iterdir())
    assert thumbs and all(Image.open(t).size[0] <= 320 and Image.open(t).format == "JPEG" for t in thumbs)
    text = index.read_text(encoding="utf-8")
    assert HOSTILE not in text and "<img src=x" not in text  # only ever inside the escaped JSON


def test_lucidflux_review_rebuilds_the_page_from_the_report_alone(reviewed, tmp_path):
    photos, out = reviewed
    moved = tmp_path / "moved-out"
    shutil.copytree(out, moved)  # a folder moved since the run: its outputs are found where it is now
    shutil.rmtree(moved / "review" / ".thumbs")
    (moved / "review" / "index.html").unlink()
    result = run("review", str(moved))
    assert result.exit_code == 0, result.output
    data = page_data(review.page_path(moved))
    assert [row["name"] for row in data["rows"]] == EXPECTED_ORDER
    output_cell = data["rows"][1]["cells"][1]
    assert output_cell["link"] == "../b_worse.png" and output_cell["thumb"].startswith("./.thumbs/")
    assert (moved / "review" / output_cell["thumb"]).is_file()
    # the report file named directly rebuilds the page of the folder the report names
    assert run("review", str(review.default_report(out))).exit_code == 0


def test_a_page_the_tool_did_not_write_is_never_overwritten(reviewed, tiny_release, tmp_path):
    photos, _ = reviewed
    out = tmp_path / "out"
    (out / "review").mkdir(parents=True)
    (out / "review" / "index.html").write_text("<p>my own notes</p>")
    result = run(
        "restore", str(photos["a_good.png"]), "-o", str(out), *FAST, *weight_args(tiny_release), "--review"
    )
    assert result.exit_code == 2
    assert "not written by lucidflux" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (out / "review" / "index.html").read_text() == "<p>my own notes</p>"
    refused = run("review", str(out / "review" / "index.html").replace("index.html", "report.json"))
    assert refused.exit_code != 0 and (out / "review" / "index.html").read_text() == "<p>my own notes</p>"


def test_embedded_json_cannot_end_its_script_block():
    text = page.embedded_json({"name": "</script><script>alert(1)</script>\u2028<!--"})
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert page.embedded_json("caf\udce9") == '"caf\\udce9"'  # a name that is not UTF-8 stays representable
    assert json.loads(text) == {"name": "</script><script>alert(1)</script>\u2028<!--"}


def test_links_stay_inside_the_run_folders(tmp_path):
    inside, outside = tmp_path / "out" / "a b#1.png", tmp_path / "elsewhere.png"
    inside.parent.mkdir()
    for path in (inside, outside):
        path.write_bytes(b"x")
    (tmp_path / "out" / "escape.png").symlink_to(outside)
    roots = [tmp_path / "out"]
    folder = tmp_path / "out" / "review"
    assert links.link(inside, folder, roots) == "../a%20b%231.png"
    assert links.link(outside, folder, roots) is None
    assert links.link(tmp_path / "out" / "escape.png", folder, roots) is None  # a symlink out
    assert links.link(tmp_path / "out" / ".." / "elsewhere.png", folder, roots) is None
    assert links.input_roots(["photos/*.jpg", "-"], tmp_path) == [tmp_path / "photos"]
    assert links.relative_url(tmp_path / "caf\udce9.png", tmp_path) == "./caf%E9.png"  # Latin-1 on disk


def test_eval_and_train_pages_use_the_same_columns_model(tmp_path):
    folder = tmp_path / "run" / "validation"
    for sub in ("lq", "step-10", "step-20"):
        (folder / sub).mkdir(parents=True)
        Image.new("RGB", (40, 30), "gray").save(folder / sub / "x.png")
    history = [{"step": 20, "niqe": 5.0}, {"step": 10, "niqe": 6.0}]
    made = validation_page(folder, [("x.jpg", "x.png")], history, lambda name: False)
    assert made.columns == ["LQ", "step 10", "step 20"]
    assert made.table[1] == ["niqe ↓", "–", "6.0000", "5.0000 ★"]
    written = review.PageWriter(tmp_path / "run").write(made)
    cells = page_data(written)["rows"][0]["cells"]
    assert [cell["link"] for cell in cells] == [
        "../validation/lq/x.png",
        "../validation/step-10/x.png",
        "../validation/step-20/x.png",
    ]
    assert all(cell["thumb"] for cell in cells)


def test_eval_report_gives_a_column_per_folder(tmp_path):
    for name in ("close", "far"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 30), "white").save(tmp_path / name / "0.png")
    document = {
        "command": "eval",
        "state": "finished",
        "cwd": str(tmp_path),
        "out_dir": str(tmp_path / "results"),
        "inputs": ["close/", "far"],
        "files": [
            {
                "source": f"{name}/0.png",
                "status": "done",
                "details": {"folder": name, "file": "0.png", "psnry": value},
            }
            for name, value in (("close", 30.0), ("far", 20.0))
        ],
        "summary": {"close": {"mean": {"psnry": 30.0}}, "far": {"mean": {"psnry": 20.0}}},
    }
    made, roots = review.page_for_report(document, None, lambda name: True)
    assert made.columns == ["close", "far"] and len(made.rows) == 1
    assert made.table == [["metric", "close", "far"], ["psnry ↑", "30.00 ★", "20.00"]]
    assert [cell.values for cell in made.rows[0].cells] == [{"psnry": 30.0}, {"psnry": 20.0}]


def test_eval_review_puts_each_compared_folder_in_a_column(tmp_path):
    pytest.importorskip("pyiqa")
    rng = np.random.default_rng(1)
    for index in range(2):
        truth = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        for name, sigma in (("ref", 0), ("close", 4), ("far", 30)):
            (tmp_path / name).mkdir(exist_ok=True)
            noisy = np.clip(truth + rng.normal(0, sigma, truth.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(tmp_path / name / f"{index}.png")
    out = tmp_path / "results"
    result = run(
        "eval",
        str(tmp_path / "close"),
        str(tmp_path / "far"),
        "--reference",
        str(tmp_path / "ref"),
        "--metrics",
        "psnr-y",
        "-o",
        str(out),
        "--review",
    )
    assert result.exit_code == 0, result.output
    data = page_data(review.page_path(out))
    assert data["columns"] == [str(tmp_path / "close"), str(tmp_path / "far")]
    assert [row["name"] for row in data["rows"]] == ["0.png", "1.png"]
    assert data["table"][1][0] == "psnr-y ↑" and data["table"][1][1].endswith("★")  # the closer folder best
    assert [cell["link"] for cell in data["rows"][0]["cells"]] == ["../../close/0.png", "../../far/0.png"]


def test_order_failed_then_largest_drop_then_the_rest():
    from lucidflux_cli.review.model import Score

    rows = [
        Row("ok"),
        Row("small", "worse", scores=[Score("niqe", 4.0, 4.4, True)]),
        Row("bad", "failed"),
        Row("big", "worse", scores=[Score("musiq", 60.0, 30.0, True)]),
    ]
    assert [r.name for r in Page("t", ["a"], rows).ordered()] == ["bad", "big", "small", "ok"]


# ------------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def opened(browser, reviewed):
    """The page of the run opened from file://, every request and dialog recorded."""
    _, out = reviewed
    tab = browser.new_page(viewport={"width": 1280, "height": 6000})
    requests, dialogs = [], []
    tab.on("request", lambda request: requests.append(request.url))
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())  # nothing may leave file://
    tab.goto(review.page_path(out).as_uri())
    wait_until(tab, "() => Array.from(document.querySelectorAll('img.thumb')).every(i => i.complete)")
    yield tab, requests, dialogs
    tab.close()


def wait_until(tab, predicate: str, timeout_s: float = 30.0) -> None:
    """Poll ``predicate`` from outside the page: Playwright's wait_for_function compiles its text
    inside the page, which the page's Content-Security-Policy (no 'unsafe-eval') refuses."""
    deadline = time.monotonic() + timeout_s
    while not tab.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        tab.wait_for_timeout(50)


def names(tab) -> list[str]:
    return tab.locator("article.row .name").all_text_contents()


@pytest.mark.slow
def test_the_page_in_chromium(opened):
    tab, requests, dialogs = opened
    thumbs = tab.eval_on_selector_all("img.thumb", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(thumbs) == 8 and all(done and width > 0 for done, width in thumbs)  # 4 photos x in/out
    assert names(tab) == EXPECTED_ORDER  # the hostile name shown as text, in its place

    tab.click("button[data-filter=failed]")
    assert names(tab) == ["broken.jpg"]
    assert "broken.jpg" in tab.locator("article.row .reason").text_content()
    tab.click("button[data-filter=worse]")
    assert names(tab) == ["b_worse.png", "c_slightly_worse.png"]
    tab.click("button[data-filter=all]")
    assert names(tab) == EXPECTED_ORDER

    tab.fill("#name-filter", "onerror")
    assert names(tab) == [HOSTILE]
    tab.fill("#name-filter", "")
    assert len(names(tab)) == 5

    assert not dialogs and all(url.startswith("file://") for url in requests), (dialogs, requests)


@pytest.mark.slow
def test_the_before_after_slider_in_chromium(opened):
    tab, requests, dialogs = opened
    before_opening = list(requests)
    assert not any("b_worse" in url for url in before_opening)  # full files load only when opened
    tab.locator("article.row", has_text="b_worse.png").locator("button.compare").click()
    wait_until(
        tab,
        "() => ['compare-before', 'compare-after'].every(id => document.getElementById(id).naturalWidth > 0)",
    )
    frame = tab.locator(".compare-frame")

    def slide(value: int) -> bytes:
        move = "(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }"
        tab.eval_on_selector("#compare-slider", move, value)
        return frame.screenshot()

    assert slide(5) != slide(95)
    assert tab.eval_on_selector("#compare-before", "i => i.style.clipPath") == "inset(0px 5% 0px 0px)"
    assert not dialogs and all(url.startswith("file://") for url in requests), (dialogs, requests)


def test_a_running_run_rewrites_its_page_only_a_small_share_of_the_time(tmp_path, monkeypatch):
    writer = review.PageWriter(tmp_path)
    running = {"command": "restore", "state": "running", "out_dir": str(tmp_path), "files": []}
    assert review.write_report_page(running, writer) is not None  # the first page at once
    writer.cost = 60.0  # as if it had taken a minute: the next running page waits ten
    assert review.write_report_page(running, writer) is None
    finished = {**running, "state": "finished"}
    assert review.write_report_page(finished, writer) is not None  # the last one always
