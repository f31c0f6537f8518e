"""Two years of an office's history for the reports benchmark: a configuration of 200 units (U001 … U200, the example
config's office and people kept) and tickets with their deadlines, visits and audit entries, generated in the
database in a few statements (PostgreSQL: ``generate_series``; SQLite: a recursive CTE), the same SQL on both but
for how a number becomes a timestamp, a unit code or JSON.

Every choice is a deterministic hash of the ticket's number (no ``random()``: the same history every run). The mix,
per ticket: kinds 80 % regular, 5 % urgent, 5 % semi-urgent, 8 % 随身拍, 2 % 市级复核; 30 categories (six of them
三个二, with a 20-minute contact deadline); dispatched evenly over the two years before ``now``, in any hour. Its
accept, first-contact, return-window and handling deadlines (and a re-handling one after a dissatisfied visit): 97 %
met on time; of the other 3 %, two fifths met late, three tenths missed, a tenth cancelled and a fifth still open
past due; those not yet due are open. 97 % is the low end of what published bulletins show (宣城, April 2022: 597 of
601 closed on time; 大英, March 2017: 71 of 2,495 answered late); ``on_time`` sets another share (nine in ten:
a report three times as long). 0.8 % of tickets cancelled, 0.5 % 不纳入测评, 0.5 % media exposure, 5 % repeats
(``repeat_count`` 2–4), 1 % flagged repeats by the platform. The platform's deadline is the handling deadline plus
two days; 90 % submitted well before it, 6 % after, 4 % never. 88 % of submitted tickets visited a day later (满意
80 %, 基本满意 10 %, 不满意 5 %, 联系不上 5 %; solved 85 %, partly 7 %, unsolved 8 %), each visit with its audit entry
(the unit, ``to_state`` warning after 不满意). 3 % of tickets asked to be returned (audit entries with their unit and
``suggested_unit``): 60 % approved (the accept deadline then counts for the unit that returned it), 30 % rejected,
10 % pending. Citizens' names vary (thousands of them), as they do ticket by ticket. Other audit actions (claims,
contacts …) are left out: the reports read the audit log by
``(action, at)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import drop_for_load
from config.loader import load_config_text
from config.model import BotConfig

UNITS = 200
DAY = 86_400
CATEGORIES = (
    "市容景观", "环卫", "社区绿化", "公园", "工地渣土", "废油脂",  # the 三个二 categories (contact_20m)
    "店招店牌", "景观灯光", "户外广告", "公共厕所", "垃圾分类", "绿地养护", "树木修剪", "毁绿占绿", "噪音扰民",
    "占道经营", "乱堆乱放", "违法建设", "餐饮油烟", "道路保洁", "积水", "井盖", "路灯", "非机动车",
    "宠物管理", "楼道堆物", "渣土撒漏", "夜间施工", "小区绿化", "其他",
)  # fmt: skip
THREE_TWOS = 6  # the first six categories
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "建国秀英伟芳敏静丽强磊军洋勇艳杰娟涛明超兰霞"
TABLES = ("tickets", "deadlines", "audit_log")


def office_config(base: Path) -> BotConfig:
    """``base`` (the example config) with its units replaced by U001 … U200 besides the office's own, each with a
    head and a handler of its own; one routing rule (the benchmark inserts its tickets directly)."""
    data = yaml.safe_load(base.read_text(encoding="utf-8"))
    office_unit = next(u for u in data["units"] if u["code"] == data["office"]["unit"])
    members = [m for m in data["members"] if "handler" not in (m.get("roles") or [])]
    keep = {m["userid"] for m in members}
    office_unit["members"] = [m for m in office_unit["members"] if m in keep]
    units = [office_unit]
    for i in range(1, UNITS + 1):
        head, handler = f"head{i:03d}", f"handler{i:03d}"
        members += [
            {"userid": head, "name": f"负责人{i:03d}", "roles": ["handler"]},
            {"userid": handler, "name": f"承办人{i:03d}", "roles": ["handler"]},
        ]
        units.append(
            {
                "code": f"U{i:03d}",
                "name": f"第{i:03d}承办单位",
                "categories": [CATEGORIES[i % len(CATEGORIES)]],
                "head": head,
                "members": [head, handler],
                "group": {"chatid": f"wrBENCH_U{i:03d}"},
            }
        )
    data.update(members=members, units=units, routing=[{"unit": "U001", "categories": [CATEGORIES[0]]}])
    return load_config_text(yaml.safe_dump(data, allow_unicode=True), "bench-reports", base.parent)


class _Sql:
    """The few expressions that differ between the two databases."""

    def __init__(self, postgres: bool) -> None:
        self.pg = postgres

    def series(self) -> tuple[str, str]:
        """(what goes before SELECT, the FROM item) for the numbers 1 … :n as ``g``."""
        if self.pg:
            return "", "generate_series(CAST(1 AS bigint), CAST(:n AS bigint)) AS s(g)"
        return "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) ", "s"

    def ts(self, seconds: str) -> str:
        """Seconds after :base as the column's timestamp (NULL stays NULL)."""
        if self.pg:
            return f"(CAST(:base AS timestamptz) + ({seconds}) * interval '1 second')"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :epoch + ({seconds}), 'unixepoch') || '.000000')"

    def code(self, prefix: str, number: str, width: int) -> str:
        if self.pg:
            return f"('{prefix}' || lpad(CAST({number} AS text), {width}, '0'))"
        return f"printf('{prefix}%0{width}d', {number})"

    def json(self, *pairs: str) -> str:
        return f"{'json_build_object' if self.pg else 'json_object'}({', '.join(pairs)})"


def _hash(multiplier: int, modulus: int) -> str:
    """A pseudo-random number 0–999 from the ticket's number ``g``: mixed enough that two of them look independent."""
    return f"(((g * {multiplier}) % 1000003) * (g % {modulus} + 1) % 1000003 % 1000)"


_HASHES = {
    "hu": (48271, 9973),
    "hk": (69621, 9967),
    "hc": (40692, 9949),
    "hj": (16807, 9941),
    "ra": (39373, 9931),
    "rf": (41358, 9929),
    "rh": (65539, 9923),
    "rc": (33614, 9907),
    "rr": (50021, 9901),
    "rv": (27893, 9887),
    "rs": (61417, 9883),
    "ro": (12345, 9871),
    "rx": (54321, 9859),
    "rt": (31337, 9857),
    "rw": (22222, 9851),
}


def _status(r: str, start: str, due: str, on_time: int) -> tuple[str, str]:
    """(status, met_at) in seconds for a deadline from ``start`` to ``due`` whose mix number is ``r``: ``on_time`` in
    1000 met on time; of the rest, 40 % met late, 30 % missed, 10 % cancelled, 20 % still open past due."""
    rest = 1000 - on_time
    late_to, missed_to, cancelled_to = (on_time + rest * share // 100 for share in (40, 70, 80))
    late = f"{due} + 600 + ({r} % 40) * 3600"
    status = (
        f"CASE WHEN state = 'cancelled' THEN 'cancelled' WHEN {due} > :now_s THEN 'open' WHEN {r} < {late_to} "
        f"THEN 'met' WHEN {r} < {missed_to} THEN 'missed' WHEN {r} < {cancelled_to} THEN 'cancelled' ELSE 'open' END"
    )
    met = (
        f"CASE WHEN state = 'cancelled' OR {due} > :now_s THEN NULL "
        f"WHEN {r} < {on_time} THEN {start} + ({due} - {start}) * ({r} % 90 + 5) / 100 "
        f"WHEN {r} < {late_to} THEN CASE WHEN {late} > :now_s THEN :now_s ELSE {late} END END"
    )
    return status, met


ON_TIME = 970  # deadlines met on time, in 1000: what the published bulletins show (the module's docstring)


async def generate(
    engine: AsyncEngine, count: int, now: datetime, *, years: int = 2, on_time: int = ON_TIME
) -> dict[str, int]:
    """``count`` tickets over ``years`` years before ``now`` (see the module's docstring), ``on_time`` in 1000 of
    their deadlines met on time; returns the rows made."""
    sql = _Sql(engine.dialect.name == "postgresql")
    base = now - timedelta(days=365 * years + 1)
    params: dict[str, Any] = {
        "n": count,
        "base": base,
        "epoch": int(base.timestamp()),
        "now_s": int((now - base).total_seconds()),
        "span": int((now - base).total_seconds()) - 7200,
    }
    hashes = ", ".join(f"{_hash(m, p)} AS {name}" for name, (m, p) in _HASHES.items())
    with_, from_ = sql.series()
    categories = " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(CATEGORIES))
    plan = f"""
        CREATE TEMP TABLE bench_plan AS {with_}
        SELECT g, u, kind, cat, d, l, acc, state, sub, vis, sat, solved, rx, rt, ra, rf, rh, rc, rw,
            CASE WHEN rt < 18 THEN (u + 1) % {UNITS} ELSE u END AS first_u
        FROM (
            SELECT g, u, kind, cat, d, l, acc, state, sub, rx, rt, ra, rf, rh, rc, rw, rs, ro,
                CASE WHEN sub IS NOT NULL AND rv < 880 AND sub + {DAY} + rv * 60 <= :now_s
                     THEN sub + {DAY} + rv * 60 END AS vis,
                CASE WHEN rs < 800 THEN 'satisfied' WHEN rs < 900 THEN 'basically_satisfied'
                     WHEN rs < 950 THEN 'dissatisfied' ELSE 'unreachable' END AS sat,
                CASE WHEN rs >= 950 THEN NULL WHEN ro < 850 THEN 'solved' WHEN ro < 920 THEN 'partly'
                     ELSE 'unsolved' END AS solved
            FROM (
                SELECT *,
                    CASE WHEN state <> 'closed' THEN NULL
                         WHEN rr < 900 THEN d + l * (50 + rr % 40) / 100
                         WHEN rr < 960 THEN d + l + 2 * {DAY} + 3600 * (1 + rr % 24) END AS sub
                FROM (
                    SELECT *,
                        CASE WHEN rx < 8 THEN 'cancelled' WHEN d + l > :now_s THEN 'claimed' ELSE 'closed' END
                            AS state
                    FROM (
                        SELECT g, hu % {UNITS} AS u, hc % {len(CATEGORIES)} AS cat,
                            CASE WHEN hk < 800 THEN 'regular' WHEN hk < 850 THEN 'urgent'
                                 WHEN hk < 900 THEN 'semi_urgent' WHEN hk < 980 THEN 'photo'
                                 ELSE 'city_review' END AS kind,
                            (g - 1) * :span / :n + (hj * 37) % 3600 AS d,
                            CASE WHEN hk >= 800 AND hk < 850 THEN {DAY} WHEN hk >= 900 AND hk < 980 THEN 3 * {DAY}
                                 ELSE 7 * {DAY} END AS l,
                            CASE WHEN hk >= 800 AND hk < 850 THEN 7200 ELSE {DAY} END AS acc,
                            ra, rf, rh, rc, rr, rv, rs, ro, rx, rt, rw
                        FROM (SELECT g, {hashes} FROM {from_}) h
                    ) a
                ) b
            ) c
        ) e
    """
    unit = sql.code("U", "u + 1", 3)
    ticket_no = sql.code("R", "g", 8)

    # the citizen's name: a surname and a two-character given name, thousands of names (masked in every title)
    def pick(chars: str, number: str) -> str:
        return f"substr('{chars}', CAST(1 + ({number}) % {len(chars)} AS integer), 1)"

    name = f"({pick(SURNAMES, 'g')} || {pick(GIVEN, 'g / 7')} || {pick(GIVEN, 'g / 131')})"
    said = f"{name} || '反映' || category"
    tickets = f"""
        INSERT INTO tickets (id, ticket_no, kind, category, title, content, address, citizen_name, is_repeat, is_media,
            unit_code, handler_userid, state, evaluation, return_count, redispatch_count, rehandle_count, cycle,
            satisfaction, hotline_deadline, dispatched_at, received_at, updated_at, closed_at, submitted_at,
            visited_at, visit_unit, solved, visit_solved, repeat_count, repeat_of, repeat_reason, source, payload_hash,
            version, extra, extension_count)
        SELECT g, {ticket_no}, kind, category, {said} || '问题（幸福里小区' || (g % 500) || '号）',
            '市民' || {name} || '反映：幸福里小区' || (g % 500) || '号附近' || category || '问题，请尽快处理。',
            '幸福里小区' || (g % 500) || '号', {name}, rx >= 150 AND rx < 160, rx >= 13 AND rx < 18,
            {unit}, {sql.code("handler", "u + 1", 3)}, state,
            CASE WHEN rx >= 8 AND rx < 13 THEN 'excluded' ELSE 'normal' END,
            CASE WHEN rt < 27 THEN 1 ELSE 0 END, CASE WHEN rt < 18 THEN 1 ELSE 0 END,
            CASE WHEN vis IS NOT NULL AND sat = 'dissatisfied' THEN 1 ELSE 0 END, 1,
            CASE WHEN vis IS NOT NULL THEN sat END,
            {sql.ts(f"d + l + 2 * {DAY}")}, {sql.ts("d")}, {sql.ts("d")}, {sql.ts("COALESCE(vis, sub, d)")},
            {sql.ts(f"CASE WHEN state = 'closed' THEN COALESCE(vis, sub + 3 * {DAY}, d + l) END")},
            {sql.ts("sub")}, {sql.ts("vis")}, CASE WHEN vis IS NOT NULL THEN {unit} END,
            CASE WHEN sub IS NOT NULL THEN 'solved' END,
            CASE WHEN vis IS NOT NULL THEN solved END,
            CASE WHEN rx >= 100 AND rx < 150 THEN 2 + rx % 3 ELSE 1 END,
            CASE WHEN rx >= 100 AND rx < 150 THEN {sql.code("R", "g - 1", 8)} END,
            CASE WHEN rx >= 100 AND rx < 150 THEN CASE rx % 3 WHEN 0 THEN 'phone' WHEN 1 THEN 'address'
                 ELSE 'phone+address' END END,
            'api', 'h' || g, 1, '{{}}', 0
        FROM (SELECT *, CASE cat {categories} END AS category FROM bench_plan) p
    """
    # the deadlines: (name, policy, cycle, start, due, mix number, unit, which tickets)
    kinds = [
        ("accept", "1wd", 1, "d", "d + acc", "ra", sql.code("U", "first_u + 1", 3), "1 = 1"),
        ("first_contact", "1wd", 1, "d", "d + acc", "rf", unit, "1 = 1"),
        ("return_window", "2wd", 1, "d", f"d + 2 * {DAY}", "0", unit, "1 = 1"),
        ("handle", "5wd", 1, "d", "d + l", "rh", unit, "1 = 1"),
        ("contact_20m", "20m", 1, "d", "d + 1200", "rc", unit, f"cat < {THREE_TWOS}"),
        ("rehandle", "3wd", 2, "vis", f"vis + 3 * {DAY}", "rw", unit, "vis IS NOT NULL AND sat = 'dissatisfied'"),
    ]
    deadlines = []
    for name, policy, cycle, start, due, r, owner, which in kinds:
        status, met = _status(r, start, due, on_time)
        deadlines.append(
            f"""
            INSERT INTO deadlines (ticket_id, name, cycle, policy, started_at, due_at, unit_code, status, met_at,
                next_due_at, stage, extended_days)
            SELECT g, '{name}', {cycle}, '{policy}', {sql.ts(start)}, {sql.ts(due)}, {owner}, {status},
                {sql.ts(met)}, CASE WHEN {status} = 'open' THEN {sql.ts(due)} END, 0, 0
            FROM bench_plan p WHERE {which}
            """
        )
    asked_by, suggested = (
        sql.code("U", "first_u + 1", 3),
        sql.code("U", "CASE WHEN rt < 18 THEN u ELSE rt % 200 END + 1", 3),
    )
    returns = sql.json("'reason'", "'非本单位职责范围'", "'suggested_unit'", suggested) + f", {asked_by}"
    visit_data = sql.json("'result'", "sat")
    audits = [
        # each visit; the dissatisfied ones made warning tickets
        f"""
        SELECT g, {ticket_no}, {sql.ts("vis")}, 'visit', 'submitted',
            CASE WHEN sat = 'dissatisfied' THEN 'warning' ELSE 'closed' END, {visit_data}, {unit}
        FROM bench_plan p WHERE vis IS NOT NULL
        """,
        f"""
        SELECT g, {ticket_no}, {sql.ts("d + 3 * 3600")}, 'request_return', 'claimed', 'return_requested', {returns}
        FROM bench_plan p WHERE rt < 30
        """,
        f"""
        SELECT g, {ticket_no}, {sql.ts(f"d + {DAY}")}, CASE WHEN rt < 18 THEN 'approve_return'
            ELSE 'reject_return' END, 'return_requested', CASE WHEN rt < 18 THEN 'dispatched' ELSE 'claimed' END,
            {returns}
        FROM bench_plan p WHERE rt < 27 AND d + {DAY} <= :now_s
        """,
    ]
    async with engine.begin() as conn:
        dropped = await drop_for_load(conn, TABLES, postgres=sql.pg)
        await conn.execute(text(plan), params)
        await conn.execute(text(tickets), params)
        for statement in deadlines:
            await conn.execute(text(statement), params)
        for select in audits:
            await conn.execute(
                text(
                    "INSERT INTO audit_log (ticket_id, ticket_no, at, action, from_state, to_state, data, unit_code, "
                    "actor) "
                    f"SELECT q.*, 'bench' FROM ({select}) q"
                ),
                params,
            )
        await conn.execute(text("DROP TABLE bench_plan"))
        if sql.pg:  # the tickets were given their ids
            await conn.execute(text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), :n)"), params)
        for statement in dropped:
            await conn.execute(text(statement))
        rows = {t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()) for t in TABLES}
    # as autovacuum leaves a table that was written to: its statistics, and its pages marked all-visible (what an
    # index-only scan relies on)
    async with engine.connect() as conn:
        if sql.pg:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in TABLES:
                await conn.execute(text(f"VACUUM ANALYZE {table}"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    return rows
