"""The Discord bot: DMs and mentions answered in each person's memory, thumbs as feedback.

The bot only translates between Discord and the `ChatService`: a person is their Discord user
id (hashed into a scope by the service, never used raw), a conversation is the guild ("dm" for
direct messages) and channel. Everything that touches memory or the model is blocking, so it
runs in a worker thread and the gateway's event loop keeps its heartbeat. Personal data
(`memory show`, `memory export`) only ever goes to the caller's DMs, never to a channel.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import discord
from discord.ext import commands

from personagraph.memory.errors import PersonagraphError

from .service import ChatService, Speaker, receipt_text

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # characters Discord takes in one message
_MENTION = re.compile(r"<@!?(\d+)>")


def discord_intents() -> discord.Intents:
    """Guild and DM messages, their content (a privileged intent: switch it on in the developer
    portal) and reactions; members and presences are not needed."""
    return discord.Intents(guilds=True, messages=True, message_content=True, reactions=True)


def speaker_of(user: discord.abc.User) -> Speaker:
    # The account's own name, not a per-server nickname: one person, one name in their memory.
    return Speaker("discord", (str(user.id),), getattr(user, "global_name", None) or user.name)


def conversation_of(message: discord.Message) -> tuple[str, str]:
    return (str(message.guild.id) if message.guild else "dm", str(message.channel.id))


class DiscordBridgeBot(commands.Bot):
    """Answers DMs and messages that mention it (or reply to it); other bots, itself included,
    are ignored."""

    def __init__(self, service: ChatService, *, prefix: str = "!", intents: discord.Intents | None = None) -> None:
        super().__init__(
            command_prefix=prefix, intents=intents or discord_intents(), help_command=None,
            # Answers quote memories and model output: they must never ping @everyone or a role.
            allowed_mentions=discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True),
        )
        self.service = service
        self.add_command(commands.Command(memory_command, name="memory"))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.is_system() or self.user is None:  # pins, joins, calls…
            return
        ctx = await self.get_context(message)
        if ctx.command is not None:
            await self.invoke(ctx)
        elif message.guild is None or any(user.id == self.user.id for user in message.mentions):  # a reply to it pings it too
            await self._answer(message, self.user.id)

    async def _answer(self, message: discord.Message, own_id: int) -> None:
        text = _text_of(message, own_id)
        if not text:
            await message.reply(f"Ask me anything; I remember what you tell me. `{self.command_prefix}memory show` lists what I know about you.")
            return
        speaker = speaker_of(message.author)
        try:
            async with message.channel.typing():
                reply = await asyncio.to_thread(self.service.answer, speaker, text, conversation=conversation_of(message))
        except PersonagraphError as exc:
            await message.reply(f"I could not take that message: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the model or a store failed: say so rather than leave the person waiting
            log.error("answering a message failed: %s", type(exc).__name__)  # no ids or text: see docs/privacy.md
            await message.reply("Sorry, something went wrong while answering; please try again later.")
            return
        for part in chunks(reply.text):
            sent = await message.reply(part)
            self.service.posted(speaker, reply, (str(sent.channel.id), str(sent.id)))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """Raw events: answers drop out of discord.py's message cache long before people stop
        reacting to them."""
        if self.user is None or payload.user_id == self.user.id:
            return
        speaker = Speaker("discord", (str(payload.user_id),))
        ref = (str(payload.channel_id), str(payload.message_id))
        try:
            await asyncio.to_thread(self.service.react, speaker, ref, str(payload.emoji))
        except PersonagraphError:
            log.warning("reaction on message %s not recorded", payload.message_id, exc_info=True)


async def memory_command(ctx: commands.Context[DiscordBridgeBot], action: str = "show", confirm: str = "") -> None:
    """Your own memory: `show`, `export` (a JSON file) or `forget confirm` (everything, everywhere)."""
    service, speaker = ctx.bot.service, speaker_of(ctx.author)
    match action.lower(), confirm.lower():
        case "show", _:
            await _private(ctx, await asyncio.to_thread(service.show, speaker))
        case "export", _:
            data = await asyncio.to_thread(service.export, speaker)
            payload = json.dumps(data, indent=2, ensure_ascii=False).encode()
            await _private(ctx, "Everything I hold about you.", file=discord.File(io.BytesIO(payload), "personagraph-memory.json"))
        case "forget", "confirm":
            receipt = await asyncio.to_thread(service.forget, speaker)
            await _private(ctx, receipt_text(receipt))
        case "forget", _:
            await ctx.reply(f"This deletes everything I remember about you. To go ahead: `{ctx.clean_prefix}memory forget confirm`")
        case _:
            await ctx.reply(f"Usage: `{ctx.clean_prefix}memory show`, `{ctx.clean_prefix}memory export` or "
                            f"`{ctx.clean_prefix}memory forget confirm`")


async def _private(ctx: commands.Context[DiscordBridgeBot], text: str, *, file: discord.File | None = None) -> None:
    """Send to the caller's DMs (personal data never goes to a channel); say so in a channel."""
    parts = chunks(text)
    try:
        for n, part in enumerate(parts, 1):
            await ctx.author.send(part, file=file if n == len(parts) else None)
    except discord.Forbidden:
        await ctx.reply("I cannot send you direct messages; allow them for this server and ask again.")
        return
    if ctx.guild is not None:
        await ctx.reply("I sent it to you in a direct message.")


def _text_of(message: discord.Message, own_id: int) -> str:
    """The message without the mention that addressed the bot; other mentions become names."""
    names = {user.id: user.display_name for user in message.mentions}
    return _MENTION.sub(
        lambda m: "" if int(m[1]) == own_id else f"@{names.get(int(m[1]), 'someone')}", message.content,
    ).strip()


def chunks(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Discord-sized parts, cut at a line break or space where one is near."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*parts, text] if text else parts


def build_discord_bot(service: ChatService, *, prefix: str = "!", intents: discord.Intents | None = None) -> DiscordBridgeBot:
    """The bot, ready for `run(token)`. `prefix` starts commands (`!memory show`); a mention does
    not, so "@bot memory of Rome?" stays a question. `intents` default to the least it needs
    (`discord_intents()`); a bot that does more passes more."""
    return DiscordBridgeBot(service, prefix=prefix, intents=intents)
