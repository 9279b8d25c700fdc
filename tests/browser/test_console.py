"""The duty-officer console in a real Chromium, against a real notify, broker and Redis.

Sign in; an alert published on vigie.alerts.v1 appears live (SSE, no reload);
acknowledged with the keyboard alone, its escalation never fires while a later
unacknowledged alert's does; a silence created in the console (with its
preview) mutes a matching alert; another cell's alert by URL is a 404; a POST
without the CSRF token is a 403; sign-out ends the session; axe-core finds no
serious or critical violation on any page. Screenshots are saved per page.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import (
    AlertDetailPage,
    AlertsPage,
    HistoryPage,
    MapPage,
    SignInPage,
    SilencesPage,
)
from tests.notifystack import TOKENS, alert
from vigie.stack import Pipeline

pytestmark = pytest.mark.integration

Publish = Callable[..., None]


def sign_in(page: Page, base: str, cell: str = "dept-13") -> AlertsPage:
    return SignInPage(page, base).goto().sign_in(TOKENS[cell])


def received(notify: Pipeline, cell: str) -> list[tuple[str, str]]:
    """(kind of notification, alert id) the cell's webhook got."""
    assert notify.receiver is not None
    return [
        (d.body.get("kind", "group"), a["fingerprint"])
        for d in notify.receiver.by_cell().get(cell, [])
        for a in d.body["alerts"]
    ]


def metric(notify: Pipeline, name: str) -> float:
    port = notify.services["notify"].port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M))


def wait_until(fact: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Check ``fact`` every 0.1 s until it holds (a record, a metric), ``timeout`` at most."""
    deadline = time.monotonic() + timeout
    while not fact():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_sign_in_refused_with_a_bad_token_then_signed_in_and_out(page: Page, base: str) -> None:
    page.goto(base)  # the console's root leads to sign-in
    expect(page.locator("#token")).to_be_visible()
    signin = SignInPage(page, base).goto()
    page.fill("#token", "not-a-token")
    page.click("#signin")
    expect(signin.refused()).to_be_visible()
    alerts = signin.sign_in(TOKENS["dept-13"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "vigie_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    alerts.sign_out()
    page.goto(f"{base}/alerts")
    expect(page.locator("#token")).to_be_visible()  # the session is gone


def test_a_published_alert_appears_live(
    page: Page, base: str, publish: Publish, screenshots: Path
) -> None:
    alerts = sign_in(page, base)
    alerts.live()
    page.evaluate(
        "() => new MutationObserver((_, obs) => { if (document.querySelector('#alert-al00101'))"
        " { window.seenAt = Date.now(); obs.disconnect(); } })"
        ".observe(document.getElementById('alert-rows'), {childList: true})"
    )
    published = time.time()
    publish(alert(101))
    row = alerts.row("al00101")
    expect(row).to_be_visible()
    lag = page.evaluate("() => window.seenAt") / 1000 - published
    # reported, not asserted: publish -> Kafka -> notify records -> SSE -> the page
    print(f"alert on the page {lag:.3f} s after it was published on vigie.alerts.v1")
    expect(row).to_contain_text("13")
    expect(row).to_contain_text("douane, police")
    expect(row.locator("time.countdown")).to_be_visible()  # escalation armed
    alerts.screenshot(screenshots, "console-alerts")


def test_keyboard_acknowledgement_stops_escalation(
    page: Page, base: str, publish: Publish, notify: Pipeline, screenshots: Path
) -> None:
    alerts = sign_in(page, base)
    alerts.live()
    publish(alert(201))
    expect(alerts.row("al00201")).to_be_visible()
    # keyboard alone: Tab to the alert's link, Enter, Tab to Acknowledge, Enter
    link = alerts.row("al00201").locator("a")
    for _ in range(60):
        page.keyboard.press("Tab")
        if link.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the alert's link")
    page.keyboard.press("Enter")
    detail = AlertDetailPage(page, base, "al00201")
    expect(page.locator("#ack")).to_be_visible()
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.locator("#ack").evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached Acknowledge")
    page.keyboard.press("Enter")
    expect(page.locator("#done")).to_be_visible()
    expect(detail.state()).to_contain_text("dept-13")
    detail.screenshot(screenshots, "console-alert-detail")
    # A later alert nobody acknowledges escalates to antenne-marseille: by then the
    # acknowledged one's (earlier) timer has come and gone without escalating.
    publish(alert(202))
    expect(AlertsPage(page, base).goto().row("al00202")).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('#alert-al00202')?.textContent.includes('antenne-marseille')"
        " && document.querySelector('#alert-al00202 time.countdown') === null",
        timeout=60_000,
    )
    got = received(notify, "antenne-marseille")
    assert ("escalation", "al00202") in got
    assert not any(aid == "al00201" for _, aid in got)


def test_silence_with_preview_mutes_a_matching_alert(
    page: Page, base: str, publish: Publish, notify: Pipeline, screenshots: Path
) -> None:
    alerts = sign_in(page, base)
    publish(alert(301, rule="noisy_rule"))
    expect(alerts.row("al00301")).to_be_visible()
    silences = SilencesPage(page, base).goto()
    silences.fill('rule="noisy_rule"', 30, "bruit connu")
    preview = silences.preview()
    expect(preview.locator("#alert-al00301")).to_be_visible()
    silences.screenshot(screenshots, "console-silences")
    silences.create()
    expect(silences.listed()).to_have_count(1)
    before = metric(notify, 'vigie_notify_muted_total{reason="silenced"}')
    publish(alert(302, rule="noisy_rule"), alert(303))
    # recorded by notify, routed to the cell, muted: on the live page as such
    alerts = AlertsPage(page, base).goto()
    expect(alerts.row("al00302")).to_have_attribute("data-status", "muted")
    # the next alert is notified; the silenced one is counted as muted, never sent
    muted = 'vigie_notify_muted_total{reason="silenced"}'
    assert wait_until(
        lambda: (
            ("group", "al00303") in received(notify, "dept-13") and metric(notify, muted) > before
        )
    )
    assert metric(notify, 'vigie_notify_muted_total{reason="silenced"}') > before
    assert not any(aid == "al00302" for _, aid in received(notify, "dept-13"))


def test_another_cells_alert_by_url_is_not_found(page: Page, base: str, publish: Publish) -> None:
    publish(alert(401, dept="76"))
    other = sign_in(page.context.browser.new_context().new_page(), base, "dept-76")  # type: ignore[union-attr]
    expect(other.row("al00401")).to_be_visible()
    other.page.context.close()
    sign_in(page, base, "dept-13")
    response = page.goto(f"{base}/alerts/al00401")
    assert response is not None and response.status == 404
    expect(page.locator("#error")).to_be_visible()


def test_post_without_csrf_token_is_refused(page: Page, base: str, publish: Publish) -> None:
    publish(alert(501))
    alerts = sign_in(page, base)
    expect(alerts.row("al00501")).to_be_visible()
    refused = page.request.post(f"{base}/alerts/al00501/ack", form={"x": "1"})
    assert refused.status == 403
    forged = page.request.post(f"{base}/alerts/al00501/ack", form={"csrf": "forged"})
    assert forged.status == 403
    detail = AlertDetailPage(page, base, "al00501").goto()
    expect(detail.state()).to_contain_text("Active")  # still firing, not acknowledged


def test_map_filters_and_language_switch(page: Page, base: str, publish: Publish) -> None:
    publish(alert(601, dept="13"))
    alerts = sign_in(page, base)
    expect(alerts.row("al00601")).to_be_visible()
    m = MapPage(page, base).goto()
    expect(m.department("13").locator("path")).not_to_have_class("lvl-0")
    expect(m.department("974")).to_be_attached()
    filtered = m.open_department("13")
    expect(filtered.row("al00601")).to_be_visible()
    filtered.switch_language()
    expect(page.locator("main h1")).to_have_text("Live alerts")
    page.click("#lang-switch")
    expect(page.locator("main h1")).to_have_text("Alertes en cours")


def test_axe_finds_no_serious_violation_on_any_page(
    page: Page, base: str, publish: Publish, screenshots: Path
) -> None:
    publish(alert(701))
    signin = SignInPage(page, base).goto()
    results: dict[str, list[dict[str, object]]] = {"login": signin.axe()}
    signin.screenshot(screenshots, "console-login")
    alerts = signin.sign_in(TOKENS["dept-13"])
    expect(alerts.row("al00701")).to_be_visible()
    pages = {
        "alerts": AlertsPage(page, base),
        "alert-detail": AlertDetailPage(page, base, "al00701"),
        "silences": SilencesPage(page, base),
        "history": HistoryPage(page, base),
        "map": MapPage(page, base),
    }
    for name, po in pages.items():
        po.goto()
        results[name] = po.axe()
        po.screenshot(screenshots, f"console-{name}")
    (screenshots / "axe.json").write_text(json.dumps(results, indent=1))
    assert all(v == [] for v in results.values()), results


@pytest.mark.parametrize("tls", [True, False])
def test_session_cookie_is_secure_behind_tls(base: str, tls: bool) -> None:
    """Behind the TLS-terminating ingress (X-Forwarded-Proto: https) the cookie is Secure."""
    headers = {"X-Forwarded-Proto": "https"} if tls else {}
    with httpx.Client(headers=headers, timeout=10) as c:
        form = c.get(f"{base}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        # a Secure cookie is not sent back over plain HTTP: hand it back as the
        # browser would behind the ingress
        login_cookie = form.cookies["vigie_login_csrf"]
        r = c.post(
            f"{base}/login",
            data={"csrf": csrf.group(1), "token": TOKENS["dept-13"], "next": "/console/alerts"},
            headers={"Cookie": f"vigie_login_csrf={login_cookie}"},
        )
        assert r.status_code == 303
        cookie = next(v for v in r.headers.get_list("set-cookie") if "vigie_session=" in v)
        assert ("; Secure" in cookie) is tls
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie


def test_alert_above_the_cells_clearance_is_a_pointer(
    page: Page, base: str, publish: Publish
) -> None:
    """Need-to-know as in the channels: no summary detail, no evidence, whom to call."""
    publish(alert(801, handling="secret"))
    sign_in(page, base)
    detail = AlertDetailPage(page, base, "al00801")
    expect(AlertsPage(page, base).goto().row("al00801")).to_be_visible()
    detail.goto()
    expect(page.locator("#redacted")).to_contain_text("antenne-marseille")
    expect(page.locator("main")).not_to_contain_text("DNRED-801")
    expect(page.locator("#summary")).not_to_contain_text("douane")
