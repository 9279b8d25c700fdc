"""Page objects of the console: one helper per page; they wait for elements, never for time.

Each ``goto`` waits for the page's own landmark (a heading, a table), each
action for the element that proves it happened (a notice, a row).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

from playwright.sync_api import Locator, Page, expect

AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class ConsolePage:
    page: Page
    base: str
    path: str = ""

    def goto(self, query: str = "") -> Self:
        self.page.goto(f"{self.base}{self.path}{query}")
        expect(self.page.locator("main h1").first).to_be_visible()
        return self

    def heading(self) -> Locator:
        return self.page.locator("main h1").first

    def axe(self) -> list[dict[str, object]]:
        """axe-core's serious and critical violations on the page as it is."""
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(path=str(AXE_JS))
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,"
            " targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
        )
        return [v for v in result if v["impact"] in ("serious", "critical")]

    def screenshot(self, out: Path, name: str) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


class SignInPage(ConsolePage):
    def __init__(self, page: Page, base: str) -> None:
        super().__init__(page, base, "/login")

    def sign_in(self, token: str) -> AlertsPage:
        self.page.fill("#token", token)
        self.page.click("#signin")
        alerts = AlertsPage(self.page, self.base)
        expect(self.page.locator("#alert-rows")).to_be_attached()
        return alerts

    def refused(self) -> Locator:
        return self.page.locator(".fr-alert--error")


class AlertsPage(ConsolePage):
    def __init__(self, page: Page, base: str) -> None:
        super().__init__(page, base, "/alerts")

    def row(self, alert_id: str) -> Locator:
        return self.page.locator(f"#alert-{alert_id}")

    def live(self) -> None:
        """Wait until the SSE stream has delivered its first rows."""
        expect(self.page.locator("#alert-rows[data-version]")).to_be_attached()

    def sign_out(self) -> SignInPage:
        self.page.click("#signout")
        expect(self.page.locator("#token")).to_be_visible()
        return SignInPage(self.page, self.base)

    def switch_language(self) -> None:
        self.page.click("#lang-switch")


class AlertDetailPage(ConsolePage):
    def __init__(self, page: Page, base: str, alert_id: str) -> None:
        super().__init__(page, base, f"/alerts/{alert_id}")

    def acknowledge(self) -> None:
        self.page.click("#ack")
        expect(self.page.locator("#done")).to_be_visible()

    def state(self) -> Locator:
        return self.page.locator("#alert-state")


class SilencesPage(ConsolePage):
    def __init__(self, page: Page, base: str) -> None:
        super().__init__(page, base, "/silences")

    def fill(self, matchers: str, minutes: int, comment: str) -> None:
        self.page.fill("#matchers", matchers)
        self.page.fill("#duration", str(minutes))
        self.page.fill("#comment", comment)

    def preview(self) -> Locator:
        self.page.click("#preview")
        result = self.page.locator("#preview-result")
        expect(result).to_be_visible()
        return result

    def create(self) -> None:
        self.page.click("#create")
        expect(self.page.locator("#done")).to_be_visible()

    def listed(self) -> Locator:
        return self.page.locator("#silences tbody tr[data-silence]")


class HistoryPage(ConsolePage):
    def __init__(self, page: Page, base: str) -> None:
        super().__init__(page, base, "/history")

    def rows(self) -> Locator:
        return self.page.locator("#history tbody tr")


class MapPage(ConsolePage):
    def __init__(self, page: Page, base: str) -> None:
        super().__init__(page, base, "/map")

    def department(self, code: str) -> Locator:
        return self.page.locator(f'a[data-dept="{code}"]')

    def open_department(self, code: str) -> AlertsPage:
        self.department(code).click()
        expect(self.page.locator("#dept-filter")).to_have_text(code)
        return AlertsPage(self.page, self.base)
