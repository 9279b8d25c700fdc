"""The console's browser tests: Debian's chromium driven by Playwright, on the real stack.

One notify worker (real broker, real Redis, the session's stack) for the
module, with an ack timeout of :data:`ACK_TIMEOUT` so escalations happen
within the test. Chromium is the system one (``VIGIE_CHROMIUM``, else
``chromium`` on the PATH): Playwright never downloads a browser.
Screenshots go to ``.cache/screenshots/`` (``VIGIE_SCREENSHOTS`` elsewhere).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from shared.localstack import LocalStack, run_sync
from tests.kafkautil import produce
from tests.notifystack import start_notify
from vigie.stack import Pipeline

ACK_TIMEOUT = "15s"
# what an expectation waits for at most (notify on a loaded 2-core machine)
expect.set_options(timeout=30_000)
REPO = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    found = os.environ.get("VIGIE_CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("no chromium: `make install` installs Debian's chromium package")
    return found


@pytest.fixture(scope="session")
def screenshots() -> Path:
    return Path(os.environ.get("VIGIE_SCREENSHOTS") or REPO / ".cache" / "screenshots")


@pytest.fixture(scope="module")
def notify(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    work = tmp_path_factory.mktemp("console")
    uid = work.name.replace("-", "").replace("_", "")[-10:]
    p = start_notify(
        stack, work, f"test-console{uid}.", f"vigietest:console{uid}", ack_timeout=ACK_TIMEOUT
    )
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def base(notify: Pipeline) -> str:
    return f"http://127.0.0.1:{notify.services['notify'].port}/console"


@pytest.fixture(scope="module")
def publish(notify: Pipeline, stack: LocalStack) -> object:
    def send(*values: bytes) -> None:
        # in a thread: Playwright's sync API runs an event loop in this one
        run_sync(lambda: produce(stack.bootstrap, notify.topics.alerts, list(values)))

    return send


# Module scope, not session: Playwright's sync API keeps an event loop set as
# running in the main thread while it is open, and every pytest-asyncio test
# collected after the browser tests would then fail with "Runner.run() cannot
# be called from a running event loop".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: axe-core is injected as a script tag, which the console's CSP forbids
    ctx = browser.new_context(
        bypass_csp=True, locale="fr-FR", viewport={"width": 1280, "height": 900}
    )
    ctx.set_default_timeout(20_000)
    pg = ctx.new_page()
    yield pg
    ctx.close()
