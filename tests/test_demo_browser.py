"""The Gradio demo (scripts/demo.py) in a real browser: Debian's headless chromium driven by selenium.

The app serves the shipped pipelines on a free loopback port in this process. Without chromium, chromedriver,
selenium or gradio the tests fail under CI (`CI=true`, which .ci/run sets; it installs chromium) and are skipped
elsewhere, with the install command as the reason.

Run as a script, this file also drives the page to write the docs' screenshots and timings:

    PYTHONPATH=src python tests/test_demo_browser.py --output_dir docs/images --repeats 3
"""

import argparse
import base64
import importlib.util
import io
import json
import os
import shutil
import socket
import statistics
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from original_taming import running_in_ci

REPO = Path(__file__).resolve().parents[1]
INSTALL = (
    'apt-get install chromium chromium-driver && pip install -e ".[dev]" (gradio and selenium; .ci/run does both)'
)
# A page on this machine may fetch from the app itself, or from data:/blob: URLs it made; nothing else.
LOCAL_SCHEMES = ("data", "blob", "about", "chrome", "devtools")

pytestmark = pytest.mark.browser


def missing_browser_tools() -> list:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    return missing + [name for name in ("selenium", "gradio") if importlib.util.find_spec(name) is None]


def require_browser_tools() -> None:
    """Missing chromium, chromedriver, selenium or gradio: a failure under CI, a skip elsewhere."""
    missing = missing_browser_tools()
    if missing:
        reason = f"The browser test needs {', '.join(missing)}; install with: {INSTALL}"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def load_demo_script():
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_demo(demo_script, pipelines):
    """Launch the app on a free loopback port in a background thread; yield its URL."""
    demo = demo_script.build_demo(pipelines)
    port = free_port()
    demo_script.launch_demo(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1200):
    """Debian's chromium and chromedriver (named explicitly, so selenium downloads nothing), logging the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_script_timeout(120)  # a loaded machine is slow to answer even small scripts
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list:
    """Every URL the page asked for since the last call (Chrome's DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign_urls(urls: list, app_url: str) -> list:
    host = urllib.parse.urlsplit(app_url).netloc
    return [
        url
        for url in urls
        if urllib.parse.urlsplit(url).scheme not in LOCAL_SCHEMES and urllib.parse.urlsplit(url).netloc != host
    ]


def wait_for(driver, condition, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message=f"waiting for {what}")


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def images_in(driver, selector: str) -> list:
    """The `src` of every loaded <img> under `selector`."""
    return [
        img.get_attribute("src")
        for img in css(driver, f"{selector} img")
        if img.get_attribute("src") and driver.execute_script("return arguments[0].naturalWidth", img) > 0
    ]


def fetch_image(src: str) -> PIL.Image.Image:
    """Download (or decode a data: URL of) an image the page shows, as the browser received it."""
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        with urllib.request.urlopen(src, timeout=10) as response:
            data = response.read()
    image = PIL.Image.open(io.BytesIO(data))
    image.load()
    return image


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    tab = driver.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']")
    tab.click()


def type_into(driver, selector: str, text: str) -> None:
    field = css(driver, f"{selector} textarea, {selector} input")[0]
    field.clear()
    field.send_keys(text)


def set_number(driver, selector: str, value) -> None:
    """A gr.Slider's or gr.Number's number box: type the value and leave the field, so Gradio takes it."""
    from selenium.webdriver.common.keys import Keys

    field = css(driver, f"{selector} input[type=number]")[0]
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(value), Keys.TAB)


def toast_with(driver, text: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.XPATH, f"//*[contains(@class, 'toast')][contains(., {json.dumps(text)})]")


def click_and_time(driver, button: str, result: str, timeout: float) -> tuple:
    """
    Click `button` and wait for a new image under `result`. Returns `(wall, cpu)`: the seconds until it showed, and
    the CPU seconds this process (the app's server and handlers; chromium is apart) spent meanwhile, a figure the
    other jobs on a shared machine do not inflate.
    """
    before = set(images_in(driver, result))
    css(driver, button)[0].click()
    started, cpu = time.perf_counter(), time.process_time()
    wait_for(driver, lambda d: set(images_in(d, result)) - before, timeout, f"an image in {result}")
    return time.perf_counter() - started, time.process_time() - cpu


# ------------------------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def app():
    require_browser_tools()
    demo_script = load_demo_script()
    pipelines = demo_script.load_pipelines(demo_script.parse_args([]))  # the shipped models
    with serve_demo(demo_script, pipelines) as url:
        yield demo_script, pipelines, url


@pytest.fixture(scope="module")
def page(app):
    _, _, url = app
    with headless_chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: css(d, "#text-prompt textarea"), 30, "the text tab")
        yield driver


def test_page_loads_offline_with_three_tabs(app, page):
    _, _, url = app
    tabs = [tab.text for tab in css(page, "button[role=tab]")]
    assert tabs == ["Text to emoji", "VQGAN+CLIP", "Class samples"]
    urls = requested_urls(page)
    assert urls, "the network log is empty"
    assert foreign_urls(urls, url) == []


def test_text_tab_generates_an_image_of_the_pipelines_size(app, page):
    _, pipelines, url = app
    open_tab(page, "Text to emoji")
    type_into(page, "#text-prompt", "red heart")
    set_number(page, "#text-num-images", 1)
    click_and_time(page, "#text-generate", "#text-gallery", timeout=300)
    sources = images_in(page, "#text-gallery")
    assert len(sources) == 1
    image = fetch_image(sources[0])
    resolution = pipelines.text.vqgan.config.resolution  # 64 for the shipped emoji pipeline
    assert image.size == (resolution, resolution)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 1.0, "the generated image is blank"
    assert foreign_urls(requested_urls(page), url) == []


def test_text_tab_empty_prompt_shows_the_message(app, page):
    demo_script, _, _ = app
    open_tab(page, "Text to emoji")
    type_into(page, "#text-prompt", "   ")
    css(page, "#text-generate")[0].click()
    wait_for(page, lambda d: toast_with(d, demo_script.EMPTY_PROMPT), 20, "the empty-prompt message")
    assert not toast_with(page, "Traceback")


# ------------------------------------------------------------------------------------ screenshots and timings

SCENARIOS = {
    # tab, inputs, button, result, what to wait for before the screenshot
    "text": ("Text to emoji", {"#text-prompt": "red heart"}, "#text-generate", "#text-gallery", None),
    "text_rerank": (
        "Text to emoji",
        {"#text-prompt": "red heart", "rerank": True},
        "#text-generate",
        "#text-gallery",
        None,
    ),
    "vqgan_clip": (
        "VQGAN+CLIP",
        {"#vqgan-prompt": "red heart:1 | blurry:-0.5"},
        "#vqgan-generate",
        "#vqgan-image",
        "#vqgan-gif a",
    ),
    "classes": ("Class samples", {}, "#class-generate", "#class-grid", None),
}


def set_inputs(driver, inputs: dict) -> None:
    from selenium.webdriver.common.by import By

    for selector, value in inputs.items():
        if selector == "rerank":
            box = driver.find_element(By.XPATH, "//label[contains(., 'Rerank with CLIP')]//input[@type='checkbox']")
            if box.is_selected() != value:
                box.click()
        else:
            type_into(driver, selector, value)


def run_scenario(driver, name: str, seed: int, timeout: float = 600) -> dict:
    """
    Fill a tab, click, and time the first image and the end of the run (the GIF link, for VQGAN+CLIP). Each run
    takes its own seed: the page caches files by content, so the same image again would not show as new.
    """
    tab, inputs, button, result, done = SCENARIOS[name]
    open_tab(driver, tab)
    set_inputs(driver, inputs)
    set_number(driver, f"#{button[1:].split('-')[0]}-seed", seed)
    started, cpu = time.perf_counter(), time.process_time()
    first, first_cpu = click_and_time(driver, button, result, timeout)
    if done is not None:
        wait_for(driver, lambda d: css(d, done), timeout, done)
    total, total_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"first_image_s": first, "first_image_cpu_s": first_cpu, "total_s": total, "total_cpu_s": total_cpu}


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Screenshots and click-to-first-image times of the demo's tabs.")
    parser.add_argument("--output_dir", type=str, default=None, help="Write demo_<scenario>.png here.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per scenario (after one warm-up).")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    return parser.parse_args(input_args)


def main(args: argparse.Namespace) -> None:
    missing = missing_browser_tools()
    if missing:
        sys.exit(f"Missing {', '.join(missing)}; install with: {INSTALL}")
    demo_script = load_demo_script()
    pipelines = demo_script.load_pipelines(demo_script.parse_args([]))
    with serve_demo(demo_script, pipelines) as url, headless_chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: css(d, "#text-prompt textarea"), 60, "the page")
        print(f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}", flush=True)
        for name in args.scenarios:
            run_scenario(driver, name, seed=100)  # warm-up (first calls allocate and compile)
            runs = [run_scenario(driver, name, seed) for seed in range(args.repeats)]
            if runs:
                median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                print(
                    f"{name}: click to first image {median['first_image_s']:.1f} s wall / "
                    f"{median['first_image_cpu_s']:.1f} s CPU, to the end {median['total_s']:.1f} s wall / "
                    f"{median['total_cpu_s']:.1f} s CPU (medians of {len(runs)})",
                    flush=True,
                )
            if args.output_dir:
                driver.execute_script("window.scrollTo(0, 0)")
                driver.save_screenshot(os.path.join(args.output_dir, f"demo_{name}.png"))
        print(f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}", flush=True)
        print(f"foreign requests: {foreign_urls(requested_urls(driver), url)}")


if __name__ == "__main__":
    main(parse_args())
