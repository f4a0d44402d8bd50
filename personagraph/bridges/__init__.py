"""Chat bridges: Slack and Discord bots over one platform-neutral `ChatService`."""

from .service import BotReply, ChatService, Speaker, receipt_text

__all__ = ["BotReply", "ChatService", "Speaker", "receipt_text"]
