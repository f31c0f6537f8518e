"""What a command refuses with: a code for logs and tests, and the polite Chinese sentence the member reads."""

from __future__ import annotations


class CommandError(Exception):
    """A command that cannot be carried out as given. ``message`` is shown in the chat, as is; nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
