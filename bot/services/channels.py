"""What this deployment can send through: the handlers ask whether a member can be told something privately, the
notifiers pick a channel for each message by it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Channels:
    app: bool = False  # the self-built app (WECOM_APP_SECRET …): private messages to any member, appchat groups
    aibot_ws: bool = False  # the robot's long connection: proactive messages to a chat or a member
    webhook: bool = True  # group robot webhooks (a key per group in the config; nothing else needed)

    @property
    def private(self) -> bool:
        """Whether a member can be written to privately (the app, or the robot's long connection)."""
        return self.app or self.aibot_ws
