"""What of the deployment recipe cannot run here is checked as text: no image registry is reachable to build the
container (deploy/Dockerfile) or start the compose file (deploy/compose.yaml), and this machine has no systemd to
start deploy/systemd/hotline-bot@.service. Each must agree with the nginx site that tests/system/test_recipe.py
runs, and with the settings the bot reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SITE = (DEPLOY / "nginx" / "hotline-bot.conf").read_text(encoding="utf-8")
KNOWN = set(Settings.ENV_VARS.values())


def upstream_ports() -> list[int]:
    return [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+)", SITE)]


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, the rest)."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_the_image_runs_the_bot_as_its_own_user_on_all_addresses_without_the_sandbox() -> None:
    steps = dockerfile()
    users = [rest for op, rest in steps if op == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    env = dict(pair.split("=", 1) for op, rest in steps if op == "ENV" for pair in shlex.split(rest) if "=" in pair)
    assert env["BOT_HOST"] == "0.0.0.0"
    assert env["SANDBOX"] == "off"
    assert set(env) - {"PYTHONUNBUFFERED"} <= KNOWN  # every value it sets is one the bot reads
    assert any(op == "HEALTHCHECK" and "/livez" in rest for op, rest in steps)
    assert steps[-1] == ("CMD", '["hotline-bot", "serve"]')
    copied = {rest.split()[0] for op, rest in steps if op == "COPY"}
    packages = {"bot", "handlers", "notifiers", "store", "config"}  # pyproject's [tool.setuptools.packages.find]
    assert packages <= copied


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8")))


def test_the_compose_file_mirrors_the_recipe() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "nginx"} <= set(services)
    bots = {name: s for name, s in services.items() if s.get("image") == "hotline-bot"}
    # two bot processes, on the ports of the recipe's upstream, in nginx's network namespace (127.0.0.1 is theirs)
    assert sorted(int(s["environment"]["BOT_PORT"]) for s in bots.values()) == sorted(upstream_ports())
    for service in bots.values():
        assert service["network_mode"] == "service:nginx"
        assert set(service["environment"]) <= KNOWN
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert {"postgres", "redis"} <= set(service["depends_on"])
    # nginx runs the recipe's site file, with the certificate where the site looks for it
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["nginx"]["volumes"]}
    assert "./nginx/hotline-bot.conf" in mounts.values()
    for path in re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", SITE):
        assert path in mounts, f"the site's {path} is not mounted"


def test_the_systemd_unit_runs_the_installed_command_as_its_own_user() -> None:
    unit = (DEPLOY / "systemd" / "hotline-bot@.service").read_text(encoding="utf-8")
    assert re.search(r"^User=(?!root$)\S+$", unit, re.M)
    assert re.search(r"^ExecStart=\S*/hotline-bot serve$", unit, re.M)
    assert "Environment=SANDBOX=off" in unit
    assert "Environment=BOT_PORT=%i" in unit  # the instance is the port: hotline-bot@8081, as the upstream lists
    assert re.search(r"^Restart=always$", unit, re.M)


def test_the_example_of_the_deployments_values_names_only_settings_the_bot_reads() -> None:
    lines = (DEPLOY / "hotline-bot.env.example").read_text(encoding="utf-8").splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names <= KNOWN
    assert {"BOT_CONFIG", "DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "BOARD_SECRET"} <= names
