"""Failed sends are counted by channel and code for the operator's dashboard and alerts: WeCom's errcode as its
table has it, ``other`` for a code outside it (so that a misbehaving endpoint cannot make a series per value), and
``transport`` when no answer could be read. Against the fake WeCom over real HTTP, on both databases."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.web.metrics import Metrics
from notifiers.wecom import WECOM_APP
from tests.notifiers.conftest import Rig


def errors(metrics: Metrics) -> dict[tuple[str, str], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.labels["channel"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "hotline_outbox_send_errors_total"
    }


async def test_send_errors_by_wecoms_errcode(rig: Rig) -> None:
    metrics = Metrics()
    worker = rig.worker()
    worker.on_error, worker.on_sent = metrics.send_failed, metrics.sent_one
    rig.fake.inject(60020, path="/cgi-bin/message/send")  # the server's IP is not trusted
    rig.fake.inject(123_456_789, path="/cgi-bin/message/send")  # no errcode of WeCom's table
    await rig.enqueue(WECOM_APP, "wuhao", [{"msgtype": "text", "text": {"content": "一"}}])
    await rig.enqueue(WECOM_APP, "wuhao", [{"msgtype": "text", "text": {"content": "二"}}])
    await rig.enqueue(WECOM_APP, "wuhao", [{"msgtype": "text", "text": {"content": "三"}}])
    await worker.run_once()
    assert errors(metrics) == {(WECOM_APP, "60020"): 1, (WECOM_APP, "other"): 1}
    assert len(rig.fake.messages_to(userid="wuhao")) == 1  # the third went out
