"""Chat bridges: Slack and Discord bots over one platform-neutral `ChatService`."""

from .service import BotReply, ChatService, Speaker

__all__ = ["BotReply", "ChatService", "Speaker"]
