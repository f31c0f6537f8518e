"""Only the notifiers (and the WeCom adapter, and the sandbox's fake WeCom) know WeCom's JSON: anywhere else a
message is a Reply, a Notice or a Card (bot.messages), never a payload."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "notifiers", "store", "config")
ALLOWED = ("notifiers", "bot/wecom", "bot/sandbox")
# keys of WeCom's message bodies: written as a dict key, read by subscript or .get()
WECOM_KEYS = frozenset(
    {
        "msgtype",
        "template_card",
        "mentioned_list",
        "mentioned_mobile_list",
        "chatid",
        "touser",
        "toparty",
        "totag",
        "markdown",
        "card_type",
        "button_list",
        "horizontal_content_list",
        "response_code",
    }
)


def sources() -> list[Path]:
    found = [ROOT / "run_bot.py"]
    for package in PACKAGES:
        found += sorted((ROOT / package).rglob("*.py"))
    return [p for p in found if not p.relative_to(ROOT).as_posix().startswith(ALLOWED)]


def wecom_keys_in(tree: ast.AST) -> list[tuple[int, str]]:
    hits: list[tuple[int, str]] = []

    def check(node: ast.AST | None, line: int) -> None:
        if isinstance(node, ast.Constant) and node.value in WECOM_KEYS:
            hits.append((line, str(node.value)))

    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key in node.keys:
                check(key, node.lineno)
        elif isinstance(node, ast.Subscript):
            check(node.slice, node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            check(node.args[0] if node.args else None, node.lineno)
    return hits


def test_wecom_json_is_written_only_by_the_notifiers_and_the_wecom_adapter() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {key!r}"
        for path in sources()
        for line, key in wecom_keys_in(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == [], "WeCom JSON outside notifiers/, bot/wecom/, bot/sandbox/:\n" + "\n".join(found)


def test_the_check_sees_a_payload_however_it_is_written() -> None:
    planted = 'body = {"msgtype": "markdown"}\nx = body["touser"]\ny = body.get("chatid")\n'
    assert [key for _, key in wecom_keys_in(ast.parse(planted))] == ["msgtype", "touser", "chatid"]


def test_production_loads_no_sandbox() -> None:
    """The command line and the composition root load nothing of the sandbox or its fake WeCom until the sandbox is
    switched on (a fresh interpreter: the test run itself has imported the fake long ago)."""
    probe = "import sys, run_bot, bot.app; print(sorted(m for m in sys.modules if m.startswith('bot.sandbox')))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
