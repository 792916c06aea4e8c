"""Console hand-over (转交) can also unassign an alert: the form's unassign button goes through the same service call
as the API's ``assignee: null`` (audited as alert.assign), with the same permission, and says what it did."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from soc.alerts.models import AlertHistory
from tests.conftest import Portal, open_portal
from tests.test_web_alert_pages import _alert, _browser, _csrf, _state


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The shared test portal, with no second factor required so the admin can use the console too."""
    with open_portal(tmp_path_factory, "console-handover", mfa_required_roles=[]) as opened:
        yield opened


def _assign_audit(portal: Portal, alert_id: int) -> list[AuditEntry]:
    with portal.rt.sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.assign",
                                                             AuditEntry.object_id == str(alert_id))))


def test_unassign_from_the_hand_over_form_clears_the_assignee_and_is_audited(portal: Portal) -> None:
    alert_id = _alert(portal, "GAJ", assignee="security-analyst")
    browser = _browser(portal, "security-analyst")
    page = browser.get(f"/soc/alerts/{alert_id}").text
    assert 'id="as-unassign"' in page and "取消指派" in page
    assert "Unassign" in browser.get(f"/soc/alerts/{alert_id}?lang=en").text

    done = browser.post(f"/soc/alerts/{alert_id}/assign", follow_redirects=False,
                        data={"unassign": "1", "assignee": "", "note": "退回待领取",
                              "csrf_token": _csrf(browser, f"/soc/alerts/{alert_id}")})
    assert done.status_code == 303 and done.headers["location"] == f"/soc/alerts/{alert_id}?done=unassigned"
    assert _state(portal, alert_id) == ("acknowledged", None)
    [entry] = _assign_audit(portal, alert_id)
    assert entry.actor == "security-analyst"
    assert json.loads(entry.payload) == {"from": "security-analyst", "to": None, "status": "acknowledged"}
    with portal.rt.sessions() as session:
        history = session.scalars(select(AlertHistory).where(AlertHistory.alert_id == alert_id)).all()
        assert [(h.actor, h.to_status, h.assignee) for h in history] == [("security-analyst", "acknowledged", None)]

    shown = browser.get(f"{done.headers['location']}&lang=zh-CN").text  # ?lang=en above is remembered
    assert re.search(r'id="alert-notice">已取消指派', shown) and re.search(r'id="alert-assignee">—<', shown)
    assert 'id="as-unassign"' not in shown and 'id="assign-form"' in shown  # nothing left to unassign
    assert "no assignee now" in browser.get(f"{done.headers['location']}&lang=en").text
    assert 'id="alert-notice"' not in browser.get(f"/soc/alerts/{alert_id}?done=bogus").text

    again = browser.post(f"/soc/alerts/{alert_id}/assign",
                         data={"unassign": "1", "csrf_token": _csrf(browser, f"/soc/alerts/{alert_id}")})
    assert again.status_code == 409 and "already unassigned" in again.text
    assert len(_assign_audit(portal, alert_id)) == 1


def test_unassign_ignores_a_typed_name(portal: Portal) -> None:
    """The unassign button wins over a name left in the hand-over field (even one that is not a valid assignee)."""
    alert_id = _alert(portal, "GAJ", assignee="admin")
    browser = _browser(portal, "security-analyst")
    done = browser.post(f"/soc/alerts/{alert_id}/assign", follow_redirects=False,
                        data={"unassign": "1", "assignee": "nobody-here", "csrf_token": _csrf(browser, "/soc/alerts")})
    assert done.status_code == 303 and _state(portal, alert_id) == ("acknowledged", None)


@pytest.mark.parametrize("username", ["department-user", "security-reviewer"])
def test_unassign_needs_the_alert_permission(portal: Portal, username: str) -> None:
    """Users who may read alerts but not work them neither see the button nor can post it."""
    alert_id = _alert(portal, "GAJ", assignee="security-analyst")
    browser = _browser(portal, username)
    page = browser.get(f"/soc/alerts/{alert_id}")
    assert page.status_code == 200 and 'id="as-unassign"' not in page.text
    refused = browser.post(f"/soc/alerts/{alert_id}/assign",
                           data={"unassign": "1", "csrf_token": _csrf(browser, "/soc/alerts")})
    assert refused.status_code == 403
    assert _state(portal, alert_id) == ("acknowledged", "security-analyst") and _assign_audit(portal, alert_id) == []
