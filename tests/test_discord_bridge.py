"""The Discord bot end to end with dpytest, offline, on the real assistant and real stores:
mentions and DMs answered, one person's memory across channels and never another's, thumbs
as feedback from the asker only, and `!memory` acting on the caller alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend, callbacks, factories
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from personagraph.memory import Memory, MiniLMEmbedder, Scope
from typer.testing import CliRunner

from personagraph import cli, cli_chat
from personagraph.assistant import Assistant, Reply
from personagraph.bridges import ChatService
from personagraph.bridges.discord_bot import (
    DiscordBridgeBot,
    build_discord_bot,
    chunks,
    discord_intents,
    speaker_of,
)
from personagraph.settings import Settings
from tests.scripted_model import ScriptedChatModel

NO_MEMORIES = "I know nothing about you yet."


class MemoryEcho(BaseChatModel):
    """Answers with the memory lines its prompt quoted, so a reply shows what it could use."""

    @property
    def _llm_type(self) -> str:
        return "memory-echo"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        block = str(messages[0].content).partition("<memories>")[2].partition("</memories>")[0].strip()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(block or NO_MEMORIES))])


async def _discord_bot(memory: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chat_model: Any) -> DiscordBridgeBot:
    monkeypatch.chdir(tmp_path)  # dpytest writes the files a bot sends to ./dpytest_*.dat
    assistant = Assistant(memory, chat_model=chat_model, reflection_model="none",
                          settings=Settings(data_dir=tmp_path, adapter_auto_train=False))
    # dpytest finds its fake members in the member cache, which needs an intent the bot does not.
    bot = build_discord_bot(ChatService(assistant), intents=discord_intents() | discord.Intents(members=True))
    dpytest.configure(bot, text_channels=["general", "random"], members=["Alice", "Bob"])
    await bot._async_setup_hook()  # again after configure: dpytest's connection needs the loop for `typing()`
    return bot


@pytest.fixture
async def bot(memory: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordBridgeBot]:
    bot = await _discord_bot(memory, tmp_path, monkeypatch, MemoryEcho())
    yield bot
    await dpytest.empty_queue()
    bot.service.assistant.close()


def _people() -> tuple[discord.Member, discord.Member]:
    alice, bob = dpytest.get_config().members
    return alice, bob


def _channels() -> tuple[discord.TextChannel, discord.TextChannel]:
    general, random = dpytest.get_config().channels[:2]
    return general, random


async def _ask(bot: DiscordBridgeBot, who: discord.Member, channel: Any, text: str) -> discord.Message:
    """`who` mentions the bot in `channel` (or writes to it in a DM); the bot's answer."""
    content = text if isinstance(channel, discord.DMChannel) else f"<@{bot.user.id}> {text}"
    await dpytest.message(content, channel=channel, member=who)
    return dpytest.get_message()


async def _react(who: discord.abc.User, message: discord.Message, emoji: str) -> None:
    """A reaction as the gateway sends it. dpytest 0.7's `add_reaction` leaves out the `type`
    field that discord.py 2.7 reads, so the payload is built here."""
    data: dict[str, Any] = {"message_id": message.id, "channel_id": message.channel.id, "user_id": who.id,
                            "emoji": {"id": None, "name": emoji}, "type": 0}
    if message.guild is not None:
        data["guild_id"] = message.guild.id
        data["member"] = factories.dict_from_member(who)
    backend.get_state().parse_message_reaction_add(data)
    await dpytest.run_all_events()


def _scope(bot: DiscordBridgeBot, who: discord.abc.User) -> Scope:
    return bot.service.scope(speaker_of(who))


async def test_mentions_and_dms_are_answered_and_everything_else_ignored(bot: DiscordBridgeBot) -> None:
    alice, bob = _people()
    general, _ = _channels()
    await dpytest.message("hello everyone", channel=general, member=alice)
    assert dpytest.verify().message().nothing()  # no mention, no answer

    answer = await _ask(bot, alice, general, "hello")
    assert answer.content == NO_MEMORIES and answer.channel == general
    assert answer.author == bot.user
    answer = await _ask(bot, bob, await bob.create_dm(), "hi in private")
    assert answer.content == NO_MEMORIES and isinstance(answer.channel, discord.DMChannel)

    other_bot = backend.get_state().store_user(factories.make_user_dict("Helper", 2, None, bot=True))
    await dpytest.message(f"<@{bot.user.id}> answer me", channel=general, member=backend.make_member(other_bot, general.guild))
    await dpytest.message(f"<@{bot.user.id}> talking to myself", channel=general, member=general.guild.me)
    await dpytest.message(f"<@{bot.user.id}>", channel=general, member=alice)
    assert "!memory show" in dpytest.get_message().content  # a bare mention gets a hint, and nothing is stored
    await dpytest.message("x" * 4001, channel=await alice.create_dm(), member=alice)
    refused = dpytest.get_message()
    assert "longer than 4000 characters" in refused.content
    assert dpytest.verify().message().nothing()  # other bots and its own messages get nothing

    memory = bot.service.assistant.memory
    assert [e.text for e in memory.events(_scope(bot, alice))] == ["hello", NO_MEMORIES]  # the mention is stripped
    assert [e.text for e in memory.events(_scope(bot, bob))] == ["hi in private", NO_MEMORIES]
    for scope in memory.records.scopes():  # ids mapped to labels, never used raw
        assert scope.user_id.startswith("discord-") and str(alice.id) not in scope.user_id and str(bob.id) not in scope.user_id
    threads = {e.thread_id for scope in memory.records.scopes() for e in memory.events(scope)}
    assert len(threads) == 2 and all(t.startswith("thr-") and str(general.id) not in t for t in threads)


async def test_a_fact_told_in_one_channel_is_used_in_another_and_never_for_someone_else(bot: DiscordBridgeBot) -> None:
    alice, bob = _people()
    general, random = _channels()
    await _ask(bot, alice, general, "I live in Lisbon now.")
    bot.service.assistant.reflection.flush()
    assert any("Lisbon" in fact.text for fact in bot.service.assistant.memory.facts(_scope(bot, alice)))

    assert "Lisbon" in (await _ask(bot, alice, random, "Where do I live?")).content
    assert "Lisbon" in (await _ask(bot, alice, await alice.create_dm(), "Where do I live?")).content
    assert (await _ask(bot, bob, random, "Where do I live?")).content == NO_MEMORIES
    assert (await _ask(bot, bob, await bob.create_dm(), "Where does Alice live?")).content == NO_MEMORIES
    used = [e.metadata["used"] for e in bot.service.assistant.memory.events(_scope(bot, alice)) if e.role == "assistant"]
    assert used[0] == "" and used[1] and used[2]  # the answers in #random and the DM cite what #general told


async def test_only_the_askers_thumbs_become_feedback(bot: DiscordBridgeBot) -> None:
    alice, bob = _people()
    general, _ = _channels()
    question = await dpytest.message(f"<@{bot.user.id}> Suggest a book", channel=general, member=alice)
    answer = dpytest.get_message()
    memory, scope = bot.service.assistant.memory, _scope(bot, alice)

    await _react(bob, answer, "👍")  # someone else's thumbs
    await _react(alice, answer, "🎉")  # not a thumb
    await _react(alice, question, "👍")  # not an answer of ours
    await _react(general.guild.me, answer, "👍")  # the bot itself
    assert memory.feedback(scope) == [] and memory.feedback(_scope(bot, bob)) == []

    await _react(alice, answer, "👍🏽")  # a skin tone is still a thumbs up
    [feedback] = memory.feedback(scope)
    reply_id = next(e.id for e in memory.events(scope) if e.role == "assistant")
    assert feedback.rating == "up" and feedback.reply_event_id == reply_id


async def test_memory_show_and_export_go_to_the_callers_dms_only(bot: DiscordBridgeBot, tmp_path: Path) -> None:
    alice, bob = _people()
    general, _ = _channels()
    await _ask(bot, alice, general, "I live in Lisbon now.")
    await _ask(bot, bob, general, "I live in Oslo now.")
    bot.service.assistant.reflection.flush()

    opened: list[int] = []

    async def dm_opened(user: discord.abc.User) -> None:
        opened.append(user.id)

    callbacks.set_callback(dm_opened, "start_private_message")
    try:
        await dpytest.message("!memory show", channel=general, member=alice)
    finally:
        callbacks.remove_callback("start_private_message")
    shown, ack = dpytest.get_message(), dpytest.get_message()
    assert isinstance(shown.channel, discord.DMChannel) and opened == [alice.id]  # dpytest keeps no DM recipient
    assert "Lisbon" in shown.content and "Oslo" not in shown.content
    assert ack.channel == general and "direct message" in ack.content and "Lisbon" not in ack.content

    await dpytest.message("!memory export", channel=await alice.create_dm(), member=alice)
    exported = dpytest.get_message()
    assert isinstance(exported.channel, discord.DMChannel) and dpytest.verify().message().nothing()  # no ack in a DM
    [attachment] = exported.attachments
    assert attachment.filename == "personagraph-memory.json"
    [written] = tmp_path.glob("dpytest_*.dat")
    data = json.loads(written.read_text(encoding="utf-8"))
    assert "Lisbon" in json.dumps(data) and "Oslo" not in json.dumps(data)

    await dpytest.message("!memory nonsense", channel=general, member=alice)
    assert "Usage" in dpytest.get_message().content


async def test_forget_confirm_leaves_nothing_of_the_caller_and_keeps_the_others(bot: DiscordBridgeBot) -> None:
    alice, bob = _people()
    general, _ = _channels()
    answer = await _ask(bot, alice, general, "I live in Lisbon now.")
    await _react(alice, answer, "👍")
    await _ask(bot, bob, general, "I live in Oslo now.")
    bot.service.assistant.reflection.flush()
    memory, scope = bot.service.assistant.memory, _scope(bot, alice)
    assert memory.feedback(scope) and memory.facts(scope)

    await dpytest.message("!memory forget", channel=general, member=alice)
    assert "!memory forget confirm" in dpytest.get_message().content
    assert memory.records.count(scope) > 0  # asking is not confirming

    await dpytest.message("!memory forget confirm", channel=await alice.create_dm(), member=alice)
    receipt = dpytest.get_message().content
    assert receipt.startswith("Forgotten:") and "Nothing of yours is left in any store." in receipt
    assert all(records == [] for records in memory.export(scope)["records"].values())
    assert memory.search(scope, "Where does Alice live?").items == []
    await _react(alice, answer, "👎")  # the answer is gone with everything else
    assert memory.feedback(scope) == []
    assert any("Oslo" in fact.text for fact in memory.facts(_scope(bot, bob)))


async def test_a_failing_model_gets_an_apology_not_silence(memory: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await _discord_bot(memory, tmp_path, monkeypatch, ScriptedChatModel(script=[RuntimeError("model down")]))
    alice, _ = _people()
    try:
        answer = await _ask(bot, alice, await alice.create_dm(), "Hello?")
    finally:
        await dpytest.empty_queue()
        bot.service.assistant.close()
    assert answer.content.startswith("Sorry, something went wrong")
    assert memory.events(_scope(bot, alice)) == []


def test_the_bot_asks_only_for_the_intents_it_uses() -> None:
    intents = discord_intents()
    assert intents.message_content and intents.guild_messages and intents.dm_messages
    assert intents.guild_reactions and intents.dm_reactions
    assert not intents.members and not intents.presences  # privileged, and not needed


def test_long_answers_are_cut_into_discord_sized_parts() -> None:
    text = " ".join(f"word{n}" for n in range(1000))
    parts = chunks(text)
    assert len(parts) > 1 and all(len(p) <= 2000 for p in parts) and " ".join(parts) == text
    assert chunks("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert chunks("short") == ["short"]


# --- `personagraph discord` ---------------------------------------------------------------------

@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> list[DiscordBridgeBot]:
    """The command with a scripted model and a bot whose `run` records itself instead of connecting."""
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)
    monkeypatch.setattr(cli_chat, "_assistant", lambda settings, memory, name: Assistant(
        memory, chat_model=ScriptedChatModel(), reflection_model="none", settings=settings,
    ))
    started: list[DiscordBridgeBot] = []

    def run(self: DiscordBridgeBot, token: str) -> None:
        started.append(self)
        if token == "bad":
            raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(DiscordBridgeBot, "run", run)
    return started


def _run_cli(tmp_path: Path, token: str | None, *args: str) -> Any:
    env = {"DISCORD_BOT_TOKEN": token} if token is not None else {}
    return CliRunner().invoke(cli.app, ["--data-dir", str(tmp_path / "data"), "--tenant", "guild", "discord", *args], env=env)


def test_the_command_needs_a_token_and_starts_the_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: list[DiscordBridgeBot],
) -> None:
    monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
    missing = _run_cli(tmp_path, None)
    assert missing.exit_code == 2 and "DISCORD_BOT_TOKEN is not set" in missing.output and cli_env == []

    started = _run_cli(tmp_path, "a-token", "--prefix", "?")
    assert started.exit_code == 0, started.output
    [bot] = cli_env
    assert bot.service.tenant == "guild" and bot.intents.message_content
    assert bot.service.assistant._closed  # the command closed the assistant and memory when the bot stopped

    rejected = _run_cli(tmp_path, "bad")
    assert rejected.exit_code == 2 and "Discord rejected DISCORD_BOT_TOKEN" in rejected.output


# --- the real local model ---------------------------------------------------------------------

@pytest.mark.slow
async def test_the_flow_with_the_local_model(memory: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await _discord_bot(memory, tmp_path, monkeypatch, "local:smollm2")
    assistant = bot.service.assistant
    replies: list[Reply] = []
    respond = assistant.respond

    def recorded(*args: Any, **kwargs: Any) -> Reply:  # keeps what each answer retrieved
        replies.append(respond(*args, **kwargs))
        return replies[-1]

    monkeypatch.setattr(assistant, "respond", recorded)
    alice, bob = _people()
    general, random = _channels()
    try:
        told = await _ask(bot, alice, general, "I live in Lisbon now.")
        assistant.reflection.flush()
        await _ask(bot, alice, random, "Which city do I live in?")
        await _ask(bot, bob, random, "Which city do I live in?")
        await _react(alice, told, "👍")
        await _react(bob, told, "👎")
    finally:
        await dpytest.empty_queue()
        assistant.close()
    alice_scope, bob_scope = _scope(bot, alice), _scope(bot, bob)
    assert any("Lisbon" in q.text for q in replies[1].quotes)  # retrieved in another channel
    assert not any("Lisbon" in q.text for q in replies[2].quotes)  # never for Bob
    assert [e.role for e in memory.events(alice_scope)] == ["user", "assistant"] * 2
    assert len({e.thread_id for e in memory.events(alice_scope)}) == 2
    [feedback] = memory.feedback(alice_scope)
    assert feedback.rating == "up" and feedback.reply_event_id == replies[0].reply_id
    assert memory.feedback(bob_scope) == []
