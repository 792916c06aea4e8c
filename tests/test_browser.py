"""Real-browser tests of the console: Debian chromium driven by Playwright (sync API).

A module-scoped fixture starts ``yunshu up --demo`` on a free port with a fresh ``YUNSHU_HOME``, so the
sample city (170 systems in 39 departments) is loaded and the admin user has a known password.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.live_server import free_port, live_server

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "Str0ng-Passw0rd!x"
SAMPLE_TOTAL = 170
PAGE_SIZE = 50
STARTUP_TIMEOUT = 60.0
REPO_ROOT = Path(__file__).resolve().parent.parent
SYSLOG_PORT = free_port()


def _count(text: str) -> int:
    """The number in a result count such as "共 8 个" or "8 in all"."""
    match = re.search(r"\d+", text)
    assert match, f"no number in result count {text!r}"
    return int(match.group())


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The running server's YUNSHU_HOME (tests may open its database, as a CLI on the same machine would)."""
    return tmp_path_factory.mktemp("yunshu-home")


@pytest.fixture(scope="module")
def server(server_home: Path) -> Iterator[str]:
    """Run ``yunshu up --demo`` on a free port with a fresh home; yield its base URL."""
    env = {"YUNSHU_ADMIN_PASSWORD": ADMIN_PASSWORD, "YUNSHU_SOC__SYSLOG_PORT": str(SYSLOG_PORT),
           "YUNSHU_PORTAL__MFA_REQUIRED_ROLES": "[]"}  # the second factor has its own test in test_auth.py
    with live_server(server_home, env, ["--demo"]) as base:
        yield base




@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page per test, with the server as base URL."""
    context = browser.new_context(base_url=server, locale="zh-CN", viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _login(page: Page, username: str, password: str) -> None:
    """Fill in and submit the login form."""
    page.goto("/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator("#login-submit").click()


def test_login_and_filter_systems(page: Page, server: str, tmp_path: Path) -> None:
    """Admin logs in, sees the dashboard, filters the systems list and gets the same total as the API."""
    _login(page, "admin", ADMIN_PASSWORD)
    expect(page).to_have_url(f"{server}/")
    expect(page.locator("#whoami")).to_be_visible()
    assert int(page.locator("#kpi-total").inner_text()) > 0

    page.goto("/systems")
    expect(page.locator("#result-count")).to_be_visible()
    assert _count(page.locator("#result-count").inner_text()) == SAMPLE_TOTAL
    assert page.locator("#systems tbody tr").count() == PAGE_SIZE
    expect(page.locator("#next-page")).to_be_visible()

    page.locator("#f-department").select_option("GAJ")
    page.locator("#f-mlps_level").select_option("3")
    with page.expect_navigation():
        page.locator("#filter-submit").click()
    assert "department=GAJ" in page.url
    assert "mlps_level=3" in page.url
    assert "hosting=" not in page.url  # empty filters are left out of the query string
    expect(page.locator("#f-department")).to_have_value("GAJ")
    expect(page.locator("#f-mlps_level")).to_have_value("3")

    filtered = _count(page.locator("#result-count").inner_text())
    assert 0 < filtered < SAMPLE_TOTAL
    rows = page.locator("#systems tbody tr")
    assert rows.count() == min(filtered, PAGE_SIZE)
    for i in range(rows.count()):
        row = rows.nth(i)
        assert row.get_attribute("data-department") == "GAJ", row.inner_text()
        assert row.get_attribute("data-level") == "3", row.inner_text()
    page.screenshot(path=str(tmp_path / "systems-filtered.png"), full_page=True)

    response = page.request.get(f"{server}/api/systems", params={"department": "GAJ", "mlps_level": "3"})
    assert response.status == 200, response.text()
    body = response.json()
    assert body["total"] == filtered
    assert {(s["department"], s["mlps_level"]) for s in body["items"]} <= {("GAJ", 3)}


def test_wrong_password_shows_error(page: Page, server: str) -> None:
    """A wrong password shows an alert and leaves the user on the login page."""
    _login(page, "admin", "Wrong-Passw0rd!x")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login(\?.*)?$"))
    expect(page.locator("#whoami")).to_have_count(0)


def test_api_docs_render_offline(page: Page) -> None:
    """/docs loads Swagger UI from the project's own static files (the city's networks are closed)."""
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    assert failed == []


def _send_syslog(lines: list[str]) -> None:
    """Newline-framed syslog over TCP to the server's receiver."""
    with socket.create_connection(("127.0.0.1", SYSLOG_PORT), timeout=10) as tcp:
        tcp.sendall("".join(f"{line}\n" for line in lines).encode())


def test_events_page_search_histogram_and_drill_down(page: Page, tmp_path: Path) -> None:
    """Events sent over syslog show up with their histogram and top values; clicking a top value filters."""
    lines = [f"<38>1 2026-11-20T02:{minute:02d}:00Z browser-web{minute % 2} sshd 42 - - Failed password for root "
             f"from 198.18.77.{1 if minute < 20 else minute} port 22 ssh2" for minute in range(30)]
    _send_syslog(lines)
    _login(page, "admin", ADMIN_PASSWORD)
    deadline = time.monotonic() + 30
    while True:
        page.goto("/soc/events?q=Failed&interval=15m")
        if _count(page.locator("#event-count").inner_text()) == 30:
            break
        assert time.monotonic() < deadline, "the 30 syslog events did not reach the store"
        time.sleep(0.5)

    bars = page.locator("#event-histogram rect.bar")
    assert [int(bars.nth(i).get_attribute("data-count") or 0) for i in range(bars.count())] == [15, 15]
    assert bars.first.get_attribute("data-key") == "2026-11-20T10:00:00+08:00"
    panel = page.locator('.term-panel[data-field="source.ip"]')
    top = panel.locator("li").first
    expect(top).to_contain_text("198.18.77.1")
    expect(top.locator(".count")).to_have_text("20")
    page.screenshot(path=str(tmp_path / "events.png"), full_page=True)

    with page.expect_navigation():
        top.locator("a").click()
    assert "source.ip=198.18.77.1" in page.url
    expect(page.locator("#e-source-ip")).to_have_value("198.18.77.1")
    assert _count(page.locator("#event-count").inner_text()) == 20
    rows = page.locator("#events tbody tr")
    assert rows.count() == 20
    assert all("198.18.77.1" in rows.nth(i).inner_text() for i in range(rows.count()))

    page.locator("#e-interval").select_option("1m")
    with page.expect_navigation():
        page.locator("#event-submit").click()
    assert page.locator("#event-histogram rect.bar").count() == 20  # one per minute of the filtered events


def test_alert_raised_from_syslog_and_handled_in_the_console(page: Page, tmp_path: Path) -> None:
    """A brute force sent over syslog becomes an alert; the analyst acknowledges and resolves it in the console."""
    _send_syslog([f"<38>1 2026-11-20T03:00:{i:02d}Z browser-bastion sshd 7 - - Failed password for root from "
                  f"203.0.113.201 port {41000 + i} ssh2" for i in range(12)])
    _login(page, "admin", ADMIN_PASSWORD)
    deadline = time.monotonic() + 30
    row = page.locator('#alerts tbody tr[data-status="new"]', has_text="203.0.113.201")
    while True:
        page.goto("/soc/alerts")
        if row.count():
            break
        assert time.monotonic() < deadline, "no alert for the brute force appeared"
        time.sleep(0.5)
    expect(row.first).to_contain_text("SSH")
    with page.expect_navigation():
        row.first.locator("a").first.click()
    expect(page.locator("#alert-status")).to_have_attribute("data-status", "new")

    page.locator("#t-status").select_option("acknowledged")
    with page.expect_navigation():
        page.locator("#t-submit").click()
    expect(page.locator("#alert-status")).to_have_attribute("data-status", "acknowledged")
    expect(page.locator("#alert-assignee")).to_have_text("admin")
    with page.expect_navigation():  # the hand-over field is required, but not for unassigning
        page.locator("#as-unassign").click()
    expect(page.locator("#alert-notice")).to_contain_text("已取消指派")
    expect(page.locator("#alert-assignee")).to_have_text("—")
    expect(page.locator("#alert-status")).to_have_attribute("data-status", "acknowledged")

    page.locator("#t-status").select_option("resolved")  # without a note: refused, nothing changes
    with page.expect_navigation():
        page.locator("#t-submit").click()
    expect(page.get_by_role("alert")).to_contain_text("note")
    expect(page.locator("#alert-status")).to_have_attribute("data-status", "acknowledged")

    page.locator("#t-status").select_option("resolved")
    page.locator("#t-note").fill("已在边界防火墙封禁 203.0.113.201")
    with page.expect_navigation():
        page.locator("#t-submit").click()
    expect(page.locator("#alert-status")).to_have_attribute("data-status", "resolved")
    expect(page.locator("#alert-notes")).to_contain_text("边界防火墙")
    assert page.locator("#alert-history li").count() == 3  # acknowledged, unassigned, resolved
    page.screenshot(path=str(tmp_path / "alert.png"), full_page=True)


def test_situation_page_draws_charts_and_refreshes(page: Page, server: str, server_home: Path,
                                                  tmp_path: Path) -> None:
    """态势感知: the charts are drawn by ECharts from the API, an alert past its SLA is listed, and the page
    refreshes itself."""
    from datetime import timedelta

    from sqlalchemy import select

    from core.runtime import open_runtime
    from core.settings import Settings
    from inventory.models import Host, System
    from soc.alerts.models import Alert

    rt = open_runtime(Settings(home=server_home))
    try:
        with rt.sessions() as session:  # a host of the sample register, so the alert names its system
            host, system_id = session.execute(select(Host.name, System.id).join(System)
                                              .where(System.department_code == "GAJ")
                                              .order_by(Host.name)).first()  # type: ignore[misc]
        _send_syslog([f"<38>1 2026-11-20T04:00:{i:02d}Z browser-gw sshd 7 - - Failed password for root from "
                      f"2001:db8:66::{i % 3 + 1} port {42000 + i} ssh2" for i in range(3)]
                     + [f"<38>1 2026-11-20T04:01:{i:02d}Z {host} sshd 7 - - Failed password for root from "
                        f"203.0.113.202 port {43000 + i} ssh2" for i in range(11)])
        _login(page, "admin", ADMIN_PASSWORD)
        deadline = time.monotonic() + 30
        while not (mine := [a for a in page.request.get(f"{server}/api/soc/alerts").json()["items"]
                            if a["source_ip"] == "203.0.113.202"]):
            assert time.monotonic() < deadline, "the brute force did not become an alert"
            time.sleep(0.5)
        alert = mine[0]
        assert (alert["system_id"], alert["department"]) == (system_id, "GAJ")
        with rt.transaction() as session:  # two days old: past its acknowledge and resolve deadlines
            row = session.get(Alert, alert["id"])
            assert row is not None
            for column in ("created_at", "acknowledge_due", "resolve_due"):
                setattr(row, column, getattr(row, column) - timedelta(days=2))
    finally:
        rt.close()
    api = page.request.get(f"{server}/api/soc/situation", params={"hours": "720"}).json()
    assert api["open_alerts"] >= 1 and api["ip_versions"]["ipv6"] >= 3
    assert any(c[0] == "credential-access" for c in api["attack_heatmap"]["cells"])
    assert alert["id"] in [o["id"] for o in api["overdue"]] and api["overdue_total"] >= 1
    system_name = next(s["name"] for s in api["top_systems"] if s["id"] == system_id)
    department_name = next(d["name"] for d in api["top_departments"] if d["code"] == "GAJ")
    assert next(o for o in api["overdue"] if o["id"] == alert["id"])["department_name"] == department_name

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/soc/situation")
    page.locator("#s-hours").select_option("720")
    expect(page.locator("#situation-updated")).to_have_attribute("data-loaded", re.compile(r"[1-9]"))
    for chart in ("c-timeline", "c-severity", "c-ipv", "c-sources", "c-systems", "c-departments", "c-risk",
                  "c-heatmap"):
        expect(page.locator(f"#{chart} svg")).to_have_count(1)
    expect(page.locator("#c-sources svg")).to_contain_text("203.0.113.202")
    # the bar charts' labels are truncated to their width; their first characters are always shown
    expect(page.locator("#c-systems svg")).to_contain_text(system_name[:4])
    expect(page.locator("#c-departments svg")).to_contain_text(department_name[:3])
    expect(page.locator("#c-heatmap svg")).to_contain_text("凭据访问")
    overdue = page.locator(f'#overdue tbody tr[data-id="{alert["id"]}"]')
    expect(overdue).to_have_count(1)
    expect(overdue).to_contain_text(alert["title"])
    department_cell = overdue.locator("td").nth(3)  # the register's name, with the code beside it
    expect(department_cell).to_contain_text(department_name)
    expect(department_cell).to_have_attribute("title", "GAJ")
    expect(department_cell.locator("small")).to_have_text("GAJ")
    assert int(page.locator("#k-open").inner_text()) >= 1
    assert int(page.locator("#k-overdue").inner_text()) >= 1
    assert page.locator("#k-ipv6").inner_text().endswith("%")
    page.screenshot(path=str(tmp_path / "situation.png"), full_page=True)

    loads = int(page.locator("#situation-updated").get_attribute("data-loaded") or 0)
    page.evaluate("document.getElementById('situation-updated').dataset.refresh = '1'")
    page.locator("#s-auto").uncheck()
    page.locator("#s-auto").check()  # reschedules with the one-second interval
    expect(page.locator("#situation-updated")).not_to_have_attribute("data-loaded", str(loads), timeout=5000)
    assert errors == []


def test_drill_replayed_and_listed_with_its_report(page: Page, server: str) -> None:
    """An analyst replays the scripted drill; the drills page lists it and its printable report opens."""
    _login(page, "admin", ADMIN_PASSWORD)
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
    created = page.request.post(f"{server}/api/soc/drills", data={"scenario": "web-to-root"},
                                headers={"X-CSRF-Token": csrf})
    assert created.status == 201, created.text()
    drill_id = created.json()["drill"]["id"]
    replayed = page.request.post(f"{server}/api/soc/drills/{drill_id}/replay", headers={"X-CSRF-Token": csrf})
    assert replayed.status == 200, replayed.text()
    page.goto("/soc/drills")
    row = page.locator(f'#drills tr[data-id="{drill_id}"]')
    expect(row.locator(".coverage")).to_contain_text("86%")
    with page.context.expect_page() as popup:
        row.get_by_role("link", name="HTML").click()
    report = popup.value
    expect(report.locator("#coverage")).to_contain_text("86%")
    expect(report.locator("body")).to_contain_text("T1021.004")


JOB_PLAY = """
- name: Slow local job
  hosts: all
  gather_facts: false
  tasks:
    - name: First step
      ansible.builtin.command: sleep 3
      changed_when: false
    - name: Wait for the browser
      ansible.builtin.command: sleep 4
      changed_when: false
    - name: Last step
      ansible.builtin.command: "true"
      changed_when: true
"""


def test_network_page_kpis_and_a_job_followed_live(page: Page, server: str, server_home: Path,
                                                  tmp_path: Path) -> None:
    """网络迁移: KPIs agree with the API; a job started from the command line streams into its page as it runs."""
    import sys
    import threading

    from core.runtime import open_runtime
    from core.settings import Settings
    from infra.jobs import Jobs

    _login(page, "admin", ADMIN_PASSWORD)
    kpis = page.request.get(f"{server}/api/net/kpis").json()
    page.goto("/net")
    expect(page.locator("#kpi-dual")).to_have_text(f"{100 * kpis[-1]['dual_stack_rate']:.1f}%")
    expect(page.locator("#kpi-table tbody tr")).to_have_count(len(kpis) - 1)
    expect(page.locator("#waves tbody tr").first).to_contain_text("1")

    (tmp_path / "play.yml").write_text(JOB_PLAY)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    local-a:\n      ansible_connection: local\n"
                                      f"      ansible_python_interpreter: {sys.executable}\n")
    rt = open_runtime(Settings(home=server_home))
    try:
        jobs = Jobs(rt)
        job_id = jobs.create("playbook", str(tmp_path / "play.yml"), {"hosts": ["local-a"]}, "browser-test")
        worker = threading.Thread(target=jobs.run, args=(job_id, tmp_path / "inv.yml"))
        worker.start()
        deadline = time.monotonic() + 30
        while jobs.show(job_id, events=False)["status"] != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.1)
        page.goto(f"/net/jobs/{job_id}")
        expect(page.locator("#job-status")).to_have_attribute("data-status", "running")
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads
        assert "Wait for the browser" not in page.locator("#job-events").inner_text()  # not there yet
        # the sleeping task's start arrives while the page is open (no reload) and the job still runs
        expect(page.locator("#job-events")).to_contain_text("Wait for the browser", timeout=15_000)
        assert page.evaluate("window.__sameDocument === true")
        assert page.locator("#job-status").get_attribute("data-status") == "running"
        # then the finished record replaces the live view
        expect(page.locator("#job-events")).to_contain_text("Last step", timeout=30_000)
        expect(page.locator("#job-status")).to_have_attribute("data-status", "successful", timeout=30_000)
        expect(page.locator("#job-status")).to_have_text("成功")
        expect(page.locator("#job-stats")).to_contain_text("local-a")
        worker.join(30)
        page.goto("/net")
        expect(page.locator(f'#jobs a[href="/net/jobs/{job_id}"]')).to_have_count(1)
    finally:
        rt.close()
