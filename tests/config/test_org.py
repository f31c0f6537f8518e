"""config/model/org.py and checks.py: office, members, units, routing and their cross-references."""

from __future__ import annotations

from tests.config.yaml_cases import BASE, issue_at, issues_of, line_with, load


def test_catch_all_as_last_rule_is_fine() -> None:
    config = load(BASE + "  - unit: RXB\n")
    assert config.routing[-1].is_catch_all


def test_unknown_head_is_reported_with_line() -> None:
    text = BASE.replace("head: h1", "head: lisi")
    issue = issue_at(issues_of(text), "units[1].head")
    assert issue.message == 'unknown member "lisi"'
    assert issue.line == line_with(text, "head: lisi")


def test_head_deputy_and_team_must_be_unit_members() -> None:
    text = BASE.replace("deputies: [w1]", "deputies: [disp]").replace(
        "emergency_team: [w2]", "emergency_team: [w2, lead, ghost]"
    )
    text = text.replace("head: h1", "head: lead")
    issues = issues_of(text)
    head = issue_at(issues, "units[1].head")
    assert head.message == '"lead" is not a member of unit SR'
    assert head.line == line_with(text, "head: lead")
    assert issue_at(issues, "units[1].deputies[0]").message == '"disp" is not a member of unit SR'
    assert issue_at(issues, "units[1].emergency_team[1]").message == '"lead" is not a member of unit SR'
    ghost = issue_at(issues, "units[1].emergency_team[2]")
    assert ghost.message == 'unknown member "ghost"'
    assert ghost.line == line_with(text, "emergency_team:")


def test_unit_members_must_be_known() -> None:
    text = BASE.replace("members: [h1, w1, w2]", "members: [h1, w1, w2, zhangsan]")
    issue = issue_at(issues_of(text), "units[1].members[3]")
    assert issue.message == 'unknown member "zhangsan"'
    assert issue.line == line_with(text, "zhangsan")


def test_routing_to_unknown_unit() -> None:
    text = BASE.replace("  - unit: SR\n", "  - unit: SRJG\n")
    issue = issue_at(issues_of(text), "routing[0].unit")
    assert issue.message == 'unknown unit "SRJG"'
    assert issue.line == line_with(text, "unit: SRJG")


def test_routing_rule_without_condition_before_the_last() -> None:
    text = BASE.replace("routing:\n", "routing:\n  - unit: RXB\n")
    issue = issue_at(issues_of(text), "routing[0]")
    assert "no condition" in issue.message
    assert "only the last rule may be a catch-all" in issue.message
    assert issue.line == line_with(text, "- unit: RXB")


def test_office_unit_unknown() -> None:
    text = BASE.replace("  unit: RXB", "  unit: XYZ")
    issue = issue_at(issues_of(text), "office.unit")
    assert issue.message == 'unknown unit "XYZ"'
    assert issue.line == 3


def test_duplicate_userids_and_unit_codes() -> None:
    text = (
        BASE.replace("  - userid: w2\n", "  - userid: w1\n")
        .replace("members: [h1, w1, w2]", "members: [h1, w1]")
        .replace("emergency_team: [w2]", "emergency_team: []")
        .replace("  - code: SR\n", "  - code: RXB\n")
        .replace("  - unit: SR\n", "  - unit: RXB\n")
    )
    issues = issues_of(text)
    userid = issue_at(issues, "members[4].userid")
    assert userid.message == 'duplicate userid "w1" (see members[3])'
    assert userid.line == line_with(text, "userid: w1", 2)
    code = issue_at(issues, "units[1].code")
    assert code.message == 'duplicate unit code "RXB" (see units[0])'
    assert code.line == line_with(text, "code: RXB", 2)


def test_duplicate_unit_names() -> None:
    text = BASE.replace("name: 市容所", "name: 热线办")
    assert issue_at(issues_of(text), "units[1].name").message == '"热线办" already names unit RXB'
    text = BASE.replace("name: 市容所", "name: 市容所\n    aliases: [rxb]")
    assert issue_at(issues_of(text), "units[1].aliases[0]").message == '"rxb" already names unit RXB'
    text = BASE.replace("name: 热线办", "name: 热线办\n    aliases: [sr]")
    assert issue_at(issues_of(text), "units[1].code").message == '"SR" already names unit RXB'


def test_member_field_errors() -> None:
    text = BASE.replace("  - userid: w2\n    name: 承办人二\n", "  - userid: 10086\n    name: ''\n    mobile: '123'\n")
    text = text.replace("[h1, w1, w2]", "[h1, w1]").replace("emergency_team: [w2]", "emergency_team: []")
    issues = issues_of(text)
    assert (
        issue_at(issues, "members[4].userid").message
        == 'expected text, got the number 10086; put it in quotes ("10086")'
    )
    assert issue_at(issues, "members[4].name").line == line_with(text, "name: ''")
    assert issue_at(issues, "members[4].mobile").message == 'invalid mobile "123": 11 digits starting with 1'


def test_role_errors() -> None:
    text = BASE.replace("roles: [center_lead]", "roles: [center_led, unit_head]")
    issues = issues_of(text)
    assert issue_at(issues, "members[1].roles[0]").message == 'unknown role "center_led" (did you mean "center_lead"?)'
    text = BASE.replace("roles: [center_lead]", "roles: [unit_head]")
    issue = issue_at(issues_of(text), "members[1].roles")
    assert "lead heads no unit" in issue.message


def test_group_transport_needs_its_target() -> None:
    text = BASE.replace("    members: [disp]\n", "    members: [disp]\n    group: {transport: webhook}\n")
    issue = issue_at(issues_of(text), "units[0].group")
    assert issue.message == 'transport "webhook" needs webhook_key'
    assert issue.line == line_with(text, "group:")
