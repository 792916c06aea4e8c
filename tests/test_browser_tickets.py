"""Real-browser test of tickets: a department user submits a ticket in the console, a security reviewer and a
resource approver (two different people) approve it, and the ticket is delivered with its plan (plan mode).
Debian chromium through Playwright against ``yunshu up`` on a free port (fixtures copied from test_browser.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.security import create_user
from tests.conftest import PASSWORD, load_sample, make_runtime
from tests.live_server import free_port, live_server

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "Str0ng-Passw0rd!x"
USERS = (("gaj-user", "department_user", "GAJ"), ("reviewer", "security_reviewer", None),
         ("approver", "resource_approver", None))
RESOURCES = """\
tenant:
  ipv4_cidr: 198.18.36.0/24
systems:
  - name: 出入境预约
    instances:
      - {name: crj-web, flavor: g.2c4g, image: kylin-v10-sp3, count: 2, role: web}
    ingress:
      - {protocol: tcp, port_min: 443, remote_cidr: 198.18.0.0/15}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``yunshu up`` on a home that already holds the sample city and the three users of the test."""
    home = tmp_path_factory.mktemp("yunshu-tickets-home")
    rt = make_runtime(home)
    load_sample(rt)
    with rt.transaction() as session:
        for name, role, dept in USERS:
            create_user(session, rt.audit, rt.settings.portal, actor="test", username=name, role=role,
                        password=PASSWORD, department=dept)
    rt.close()
    env = {"YUNSHU_ADMIN_PASSWORD": ADMIN_PASSWORD, "YUNSHU_SOC__SYSLOG_PORT": str(free_port()),
           "YUNSHU_PORTAL__MFA_REQUIRED_ROLES": "[]"}
    with live_server(home, env, []) as base:
        yield base




def _as(browser: Browser, server: str, username: str) -> Page:
    """A fresh context (own cookies) logged in as ``username``."""
    context = browser.new_context(base_url=server, locale="zh-CN", viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    expect(page.locator("#whoami")).to_be_visible()
    return page


def _fill_ticket(page: Page, title: str, resources: str) -> None:
    page.goto("/tickets/new")
    page.locator("#n-type").select_option("cloud_resources")
    page.locator("#n-department").select_option("GAJ")
    page.locator("#n-title").fill(title)
    page.locator("#n-new-name").fill("出入境业务网上预约")
    page.locator("#n-new-desc").fill("出入境证件办理预约")
    page.locator("#n-g-info-object").select_option("public_order")
    page.locator("#n-g-info-degree").select_option("serious")
    page.locator("#n-g-service-object").select_option("citizen_rights")
    page.locator("#n-g-service-degree").select_option("general")
    page.locator("#n-data-class").select_option("important")
    page.locator("#n-expires").fill("2027-12-31")
    page.locator("#n-catalog").fill("DC-GAJ-2026-0099")
    page.locator("#n-crypto").fill("MMYY-GAJ-2026-011")
    page.locator("#n-justification").fill("出入境窗口预约上线")
    page.locator("#n-resources").fill(resources)
    with page.expect_navigation():
        page.locator("#n-submit").click()


def test_submit_review_approve_in_the_console(browser: Browser, server: str, tmp_path: Path) -> None:
    user = _as(browser, server, "gaj-user")
    _fill_ticket(user, "出入境预约系统上云", RESOURCES)
    assert "/tickets/TKT-" in user.url, user.content()[:2000]
    ticket_url = user.url
    expect(user.locator("#ticket-state")).to_have_attribute("data-state", "security_review")
    expect(user.locator("#ticket-state")).to_have_text("待安全审核")
    expect(user.locator("#plan-notice")).to_contain_text("计划模式，未实际执行")
    assert user.locator('#policy-results tr[data-passed="false"]').count() == 0
    assert user.locator("#review-form").count() == 0  # department users do not review
    assert user.locator("#ticket-facts").inner_text().count("第三级") == 1  # level 3 from the grading answers

    # a second ticket opening SSH to the whole Internet is refused, and the console says why
    _fill_ticket(user, "错误示例：SSH 对全网开放", RESOURCES + "      - {protocol: tcp, port_min: 22, "
                                                               "remote_cidr: 0.0.0.0/0}\n")
    expect(user.locator("#ticket-state")).to_have_attribute("data-state", "rejected")
    expect(user.locator('#admission tr[data-check="policy"]')).to_have_attribute("data-passed", "false")
    expect(user.locator('#policy-results tr[data-rule="YS-CLOUD-001"] .violation')).to_contain_text("0.0.0.0/0")
    user.screenshot(path=str(tmp_path / "ticket-refused.png"), full_page=True)

    reviewer = _as(browser, server, "reviewer")
    reviewer.goto(ticket_url)
    reviewer.locator("#review-note").fill("端口与来源范围符合要求")
    with reviewer.expect_navigation():
        reviewer.locator("#review-approve").click()
    expect(reviewer.locator("#ticket-state")).to_have_attribute("data-state", "resource_approval")
    assert reviewer.locator("#approve-form").count() == 0  # the reviewer may not also approve

    approver = _as(browser, server, "approver")
    approver.goto(ticket_url)
    with approver.expect_navigation():
        approver.locator("#approve-approve").click()
    deadline = time.monotonic() + 60
    while approver.locator("#ticket-state").get_attribute("data-state") != "delivered":
        assert time.monotonic() < deadline, approver.locator("#ticket-state").inner_text()
        time.sleep(0.5)
        approver.reload()
    expect(approver.locator('#jobs tr[data-kind="provision"]')).to_have_attribute("data-status", "planned")
    expect(approver.locator('#jobs tr[data-kind="onboard"]')).to_have_attribute("data-status", "not_run")
    history = approver.locator("#ticket-history li")
    assert [history.nth(i).get_attribute("data-action") for i in range(history.count())][-4:] == [
        "review", "approve", "provision", "deliver"]
    approver.screenshot(path=str(tmp_path / "ticket-delivered.png"), full_page=True)

    user.goto("/tickets?state=")
    row = user.locator(f'#tickets tr[data-id="{ticket_url.rsplit("/", 1)[1]}"]')
    expect(row).to_have_attribute("data-state", "delivered")
    for page in (user, reviewer, approver):
        page.context.close()
