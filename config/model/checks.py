"""Cross-reference checks over plain data (the YAML as loaded, or a model dump).

Tolerant of malformed parts (field validation reports those), so the loader can also report cross-reference
problems when some fields are invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from config.model.fields import Loc
from config.vocabulary import Role


class CrossReferenceError(ValueError):
    """Raised from BotConfig's validator with every cross-reference problem found."""

    def __init__(self, issues: Sequence[tuple[Loc, str]]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(f"{format_path(loc)}: {message}" for loc, message in self.issues))


def format_path(loc: Sequence[str | int]) -> str:
    """('units', 3, 'head') -> 'units[3].head'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, Mapping) else None


def cross_check(data: object, base_dir: Path) -> list[tuple[Loc, str]]:
    """Every cross-reference problem in ``data`` (plain dicts/lists shaped like the YAML).

    Tolerant of malformed parts (field validation reports those), so it can run on raw YAML.
    """
    issues: list[tuple[Loc, str]] = []
    if not isinstance(data, Mapping):
        return issues

    # members: unique userids
    known: dict[str, int] = {}
    for i, member in enumerate(_items(data.get("members"))):
        userid = _text(_get(member, "userid"))
        if userid is None:
            continue
        if userid in known:
            issues.append((("members", i, "userid"), f'duplicate userid "{userid}" (see members[{known[userid]}])'))
        else:
            known[userid] = i

    # units: unique codes and labels, people known and members of the unit
    codes: dict[str, int] = {}
    labels: dict[str, str] = {}
    heads: set[str] = set()
    for i, unit in enumerate(_items(data.get("units"))):
        if not isinstance(unit, Mapping):
            continue
        code = _text(unit.get("code"))
        name = code or f"units[{i}]"
        if code is not None:
            if code in codes:
                issues.append((("units", i, "code"), f'duplicate unit code "{code}" (see units[{codes[code]}])'))
            else:
                codes[code] = i
        for loc, label in [
            (("units", i, "name"), _text(unit.get("name"))),
            *((("units", i, "aliases", k), _text(a)) for k, a in enumerate(_items(unit.get("aliases")))),
        ]:
            if label is None:
                continue
            owner = labels.setdefault(label.casefold(), name)
            if owner != name:
                issues.append((loc, f'"{label}" already names unit {owner}'))
        if code is not None and codes[code] == i:
            owner = labels.setdefault(code.casefold(), name)
            if owner != name:
                issues.append((("units", i, "code"), f'"{code}" already names unit {owner}'))

        unit_members: set[str] = set()
        for k, raw in enumerate(_items(unit.get("members"))):
            userid = _text(raw)
            if userid is None:
                continue
            if userid not in known:
                issues.append((("units", i, "members", k), f'unknown member "{userid}"'))
            elif userid in unit_members:
                issues.append((("units", i, "members", k), f'"{userid}" is listed twice'))
            unit_members.add(userid)

        def person(loc: Loc, raw: object, unit_name: str = name, in_unit: set[str] = unit_members) -> None:
            userid = _text(raw)
            if userid is None:
                return
            if userid not in known:
                issues.append((loc, f'unknown member "{userid}"'))
            elif userid not in in_unit:
                issues.append((loc, f'"{userid}" is not a member of unit {unit_name}'))

        person(("units", i, "head"), unit.get("head"))
        head = _text(unit.get("head"))
        if head:
            heads.add(head)
        for k, raw in enumerate(_items(unit.get("deputies"))):
            person(("units", i, "deputies", k), raw)
            if _text(raw):
                heads.add(str(_text(raw)))
        for k, raw in enumerate(_items(unit.get("emergency_team"))):
            person(("units", i, "emergency_team", k), raw)

    # unit_head is given by units[].head / deputies, not declared
    for i, member in enumerate(_items(data.get("members"))):
        roles = _items(_get(member, "roles"))
        userid = _text(_get(member, "userid"))
        if userid and Role.UNIT_HEAD.value in roles and userid not in heads:
            issues.append(
                (
                    ("members", i, "roles"),
                    f'"unit_head" comes from units[].head/deputies, and {userid} heads no unit',
                )
            )

    # office
    office_unit = _text(_get(data.get("office"), "unit"))
    if office_unit is not None and office_unit not in codes:
        issues.append((("office", "unit"), f'unknown unit "{office_unit}"'))

    # routing
    rules = _items(data.get("routing"))
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            continue
        target = _text(rule.get("unit"))
        if target is not None and target not in codes:
            issues.append((("routing", i, "unit"), f'unknown unit "{target}"'))
        conditions = ("categories", "areas", "keywords", "kinds")
        if i < len(rules) - 1 and not any(rule.get(c) for c in conditions):
            issues.append(
                (
                    ("routing", i),
                    "rule has no condition (categories, areas, keywords or kinds); "
                    "only the last rule may be a catch-all",
                )
            )

    # duty roster
    for i, shift in enumerate(_items(data.get("duty_roster"))):
        userid = _text(_get(shift, "userid"))
        if userid is not None and userid not in known:
            issues.append((("duty_roster", i, "userid"), f'unknown member "{userid}"'))

    # calendar overrides file
    overrides = _get(data.get("calendar"), "overrides_file")
    if isinstance(overrides, str | Path) and str(overrides).strip():
        path = base_dir / str(overrides).strip()
        if not path.is_file():
            issues.append((("calendar", "overrides_file"), f"file not found: {path}"))

    return issues
