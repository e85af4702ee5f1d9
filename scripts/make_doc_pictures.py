"""Make the README's two pictures from the quickstart's model and clip: the page tracking it, and its success plot.

Run after `bash scripts/quickstart.sh` (it needs `om_model/` and `demo/colour_clip`):

    .venv/bin/python scripts/make_doc_pictures.py

It tracks the demo clip again in plain SAM 2 mode for the plot's second curve,
then serves the SAMURAI run on a loopback port and photographs the page with
Debian's headless chromium (`chromium`, `chromium-driver`, which
`scripts/setup.sh` installs) through Selenium.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from loguru import logger

from app.benchmarks.datasets import PROTOCOL_GENERIC, read_boxes
from app.benchmarks.metrics import curve_scores, sequence_curves
from app.benchmarks.plots import plot_runs
from app.benchmarks.report import RunScores

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "demo" / "colour_clip"
TRUTH = REPO / "demo" / "colour_clip_groundtruth.txt"
BROWSER, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WINDOW = "--window-size=1000,720"
# The page is photographed once the run has tracked the clip to its end and the page shows it.
PAGE_TIMEOUT_S = 300.0
POLL_S = 0.5


def track(model_dir: Path, out: Path, *extra: str) -> None:
    command = [sys.executable, str(REPO / "app" / "run.py"), "--video", str(CLIP), "--bbox-file", str(TRUTH),
               "--model-dir", str(model_dir), "--output", str(out), "--no-display", *extra]
    subprocess.run(command, check=True, cwd=REPO)


def success_plot(model_dir: Path, work: Path, target: Path) -> None:
    """SAMURAI and plain SAM 2 selection on the demo clip, one curve each."""
    truth = read_boxes(TRUTH)
    runs = []
    for name, mode in (("SAMURAI", "samurai"), ("SAM 2", "sam2")):
        out = work / mode
        track(model_dir, out, "--mode", mode)
        curves = sequence_curves(read_boxes(out / "track.txt"), truth, PROTOCOL_GENERIC)
        curve_lists = {k: v.tolist() for k, v in asdict(curves).items() if k != "mean_overlap"}
        runs.append(RunScores(name, out, curve_scores(curves), {}, curve_lists))
    plots = plot_runs(runs, work / "plots")
    shutil.copyfile(next(p for p in plots if p.name == "success_plot.png"), target)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/api/status", timeout=5) as answer:
        return json.load(answer)


def page_picture(model_dir: Path, work: Path, target: Path) -> None:
    """The page once the demo clip has been tracked to its end (the page stays up after the source ends)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(REPO / "app" / "run.py"), "--video", str(CLIP), "--bbox-file", str(TRUTH),
               "--model-dir", str(model_dir), "--output", str(work / "page"), "--no-display", "--serve", str(port)]
    server = subprocess.Popen(command, cwd=REPO)
    try:
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while True:
            try:
                if status(base)["state"] == "ended":
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the tracking run ended or stalled before the page showed the whole clip")
            time.sleep(POLL_S)
        options = webdriver.ChromeOptions()
        options.binary_location = BROWSER
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", WINDOW, f"--user-data-dir={work / 'browser'}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        try:
            driver.get(base + "/")
            time.sleep(2.0)  # the MJPEG picture and the status table arrive after the page itself
            driver.save_screenshot(str(target))
        finally:
            driver.quit()
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/stop", method="POST"), timeout=5).close()
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "om_model")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="where the two PNGs go")
    args = parser.parse_args(argv)
    missing = [p for p in (args.model_dir / "manifest.json", CLIP, TRUTH, Path(BROWSER), Path(DRIVER)) if not p.exists()]
    if missing:
        logger.error("{} missing; run `bash scripts/quickstart.sh` first (it sets up chromium too)",
                     ", ".join(map(str, missing)))
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        success_plot(args.model_dir, Path(work), args.out / "success_plot.png")
        page_picture(args.model_dir, Path(work), args.out / "page.png")
    for name in ("success_plot.png", "page.png"):
        path = args.out / name
        logger.info("{} ({} kB)", path, os.path.getsize(path) // 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
