"""Interactions: users click buttons, fill in modals and run slash commands (an
INTERACTION_CREATE built from what the bot actually sent or registered), and the bot answers
through the callback, follow-up and ``@original`` webhook routes. As on Discord, an interaction
answered twice, late (after 3 s) or not at all is an error, and a follow-up before the answer is
refused."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Unpack

from aiohttp import web

from tests.fakes.discord.gateway import Options
from tests.fakes.discord.limits import LIMITS, check_message, check_modal
from tests.fakes.discord.rest import UNKNOWN_MESSAGE, Rest, Route, _error, _json
from tests.fakes.discord.state import (
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    LOADING,
    OWNER,
    OWNER_PERMISSIONS,
    PERMISSIONS,
    Message,
    member_json,
    user_json,
)

ANSWER_WITHIN_S = 3.0
COMMAND, COMPONENT, MODAL_SUBMIT = 2, 3, 5  # interaction types
REPLY, DEFERRED_REPLY, DEFERRED_UPDATE, UPDATE, MODAL = 4, 5, 6, 7, 9  # callback types
ALLOWED_ANSWERS = {
    COMMAND: {REPLY, DEFERRED_REPLY},
    COMPONENT: {REPLY, DEFERRED_REPLY, DEFERRED_UPDATE, UPDATE, MODAL},
    MODAL_SUBMIT: {REPLY, DEFERRED_REPLY, DEFERRED_UPDATE, UPDATE},
}
UNKNOWN_INTERACTION = ("Unknown interaction", 10062, 404)
UNKNOWN_WEBHOOK = ("Unknown Webhook", 10015, 404)


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    user_id: int
    payload: dict[str, Any]
    dispatched_at: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # {"type", "data", "after_s"}
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    answered_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def callback(self) -> dict[str, Any]:
        assert self.callbacks, f"interaction {self.id} was not answered"
        return self.callbacks[0]

    @property
    def response_type(self) -> int:
        return int(self.callback["type"])

    @property
    def ephemeral(self) -> bool:
        return bool(int((self.callback.get("data") or {}).get("flags") or 0) & EPHEMERAL)

    def texts(self) -> list[str]:
        """What the user was told: the response message, its edits and the follow-ups."""
        out: list[str] = []
        data = self.callback.get("data") or {} if self.callbacks else {}
        if self.callbacks and self.response_type == 4:
            out.append(str(data.get("content") or ""))
        if self.original is not None and self.response_type == 5:
            out.append(self.original.content)
        out += [m.content for m in self.followups]
        return [t for t in out if t]

    def private_texts(self) -> list[str]:
        """The texts only the clicking user saw (ephemeral response and follow-ups)."""
        out: list[str] = []
        if self.callbacks and self.ephemeral:
            if self.response_type == 4:
                out.append(str((self.callback.get("data") or {}).get("content") or ""))
            elif self.original is not None:
                out.append(self.original.content)
        out += [m.content for m in self.followups if m.flags & EPHEMERAL]
        return [t for t in out if t]

    async def answered(self, within: float = 5.0) -> Interaction:
        await asyncio.wait_for(self.answered_event.wait(), within)
        return self


class Interactions(Rest):
    def __init__(self, **options: Unpack[Options]) -> None:
        super().__init__(**options)
        self.interactions: dict[int, Interaction] = {}

    def unanswered(self) -> list[int]:
        return [i.id for i in self.interactions.values() if not i.callbacks]

    def modal_of(self, opened: Interaction) -> dict[str, Any]:
        modal: dict[str, Any] | None = next((c["data"] for c in opened.callbacks if c["type"] == MODAL), None)
        assert modal is not None, f"interaction {opened.id} was not answered with a modal"
        return modal

    # ------------------------------------------------------------------ users act

    async def click(self, message: Message, label: str, user: int, *, version: int = -1) -> Interaction:
        """`user` clicks the button labelled `label` on `message` (as shown in `version`)."""
        button = message.button(label, version)
        assert not button.get("disabled"), f"button {label!r} is disabled"
        payload = self._base_interaction(COMPONENT, user, message.channel_id)
        payload["message"] = message.versions[version]
        payload["data"] = {"custom_id": button["custom_id"], "component_type": 2}
        return await self._interact(payload, user)

    async def submit_modal(self, opened: Interaction, user: int, text: str) -> Interaction:
        """`user` fills in the first text input of the modal `opened` was answered with."""
        modal = self.modal_of(opened)
        rows = []
        filled = False
        for row in modal.get("components") or []:
            items = row.get("components") or ([row["component"]] if "component" in row else [])
            values = []
            for item in items:
                if item.get("type") == 4:
                    values.append(
                        {"type": 4, "custom_id": item["custom_id"], "value": "" if filled else text}
                    )
                    filled = True
            if row.get("type") == 18:
                rows.append({"type": 18, "component": values[0]})
            else:
                rows.append({"type": 1, "components": values})
        source = opened.payload
        payload = self._base_interaction(MODAL_SUBMIT, user, int(source["channel_id"]))
        if "message" in source:
            current = self.messages.get(int(source["message"]["id"]))
            payload["message"] = current.current if current else source["message"]
        payload["data"] = {"custom_id": modal["custom_id"], "components": rows}
        return await self._interact(payload, user)

    async def slash(self, user: int, name: str, *, channel: int = CHANNEL_ID, **options: str) -> Interaction:
        """`user` runs the application command `name` the bot registered, with `options`."""
        command = next((c for c in self.commands if c["name"] == name), None)
        assert command is not None, f"the bot registered no /{name}: {[c['name'] for c in self.commands]}"
        known = {o["name"]: o for o in command.get("options") or []}
        for key in options:
            assert key in known, f"/{name} has no option {key!r}"
        for key, option in known.items():
            assert not option.get("required") or key in options, f"/{name} needs {key!r}"
        payload = self._base_interaction(COMMAND, user, channel)
        payload["data"] = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": known[k]["type"], "value": v} for k, v in options.items()],
        }
        return await self._interact(payload, user)

    def _base_interaction(self, kind: int, user: int, channel_id: int) -> dict[str, Any]:
        iid = self.snowflake()
        return {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": kind,
            "token": f"itoken-{iid}",
            "version": 1,
            "guild_id": str(GUILD_ID),
            "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": self.channels[channel_id],
            # resolved in the channel, as Discord sends them: the guild's owner has every permission
            "member": {
                **member_json(user),
                "permissions": OWNER_PERMISSIONS if user == OWNER else PERMISSIONS,
            },
            "app_permissions": PERMISSIONS,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": LIMITS["file_bytes"],
        }

    async def _interact(self, payload: dict[str, Any], user: int) -> Interaction:
        interaction = Interaction(
            id=int(payload["id"]),
            token=payload["token"],
            type=payload["type"],
            user_id=user,
            payload=payload,
            dispatched_at=time.monotonic(),
        )
        self.interactions[interaction.id] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    # ------------------------------------------------------------------ the bot answers

    def _routes(self) -> list[Route]:
        which = r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)"
        return [
            *super()._routes(),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._r_callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._r_followup),
            ("GET", which, self._r_webhook_get),
            ("PATCH", which, self._r_webhook_edit),
            ("DELETE", which, self._r_webhook_delete),
        ]

    def _interaction(self, iid: int | None, token: str) -> Interaction | None:
        if iid is not None:
            found = self.interactions.get(iid)
            return found if found is not None and found.token == token else None
        return next((i for i in self.interactions.values() if i.token == token), None)

    def _answer_message(
        self, interaction: Interaction, body: dict[str, Any], files: dict[str, bytes]
    ) -> Message:
        """A message the bot sends in answer to `interaction` (kept, not yet dispatched)."""
        channel_id = int(interaction.payload["channel_id"])
        ephemeral = int(body.get("flags") or 0) & EPHEMERAL
        msg = self._message_json(self.snowflake(), channel_id, BOT_ID, body)
        message = Message(
            int(msg["id"]),
            channel_id,
            BOT_ID,
            [msg],
            files=files,
            ephemeral_to=interaction.user_id if ephemeral else None,
            interaction_id=interaction.id,
        )
        self.messages[message.id] = message
        return message

    async def _r_callback(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], iid: str, token: str
    ) -> web.Response:
        interaction = self._interaction(int(iid), token)
        if interaction is None:
            return _error(*UNKNOWN_INTERACTION)
        after = time.monotonic() - interaction.dispatched_at
        if after > ANSWER_WITHIN_S:
            self.violations.append(f"interaction {iid} answered after {after:.1f} s (limit 3 s)")
            return _error(*UNKNOWN_INTERACTION)
        if interaction.callbacks:
            self.violations.append(f"interaction {iid} answered twice")
            return _error("Interaction has already been acknowledged.", 40060, 400)
        kind = int(body.get("type") or 0)
        data = body.get("data") or {}
        where = f"interaction {iid} callback type {kind}"
        allowed = ALLOWED_ANSWERS.get(interaction.type, set())
        problems = [] if kind in allowed else [f"{where}: not valid for interaction type {interaction.type}"]
        if kind in (REPLY, UPDATE):
            problems += check_message(data, where, files=len(files), editing=kind == UPDATE)
        elif kind == MODAL:
            problems += check_modal(data, where)
        if refused := self._refuse(problems):
            return refused
        interaction.callbacks.append({"type": kind, "data": data, "after_s": after})
        interaction.answered_event.set()
        flags = int(data.get("flags") or 0)
        resource: dict[str, Any] = {"type": kind}
        if kind in (REPLY, DEFERRED_REPLY):
            message_body = dict(data) if kind == REPLY else {"content": "", "flags": flags | LOADING}
            message = self._answer_message(interaction, message_body, files)
            message.current["interaction_metadata"] = {
                "id": iid,
                "type": interaction.type,
                "user": user_json(interaction.user_id),
            }
            interaction.original = message
            resource["message"] = message.current
            if message.ephemeral_to is None and kind == REPLY:
                await self.dispatch("MESSAGE_CREATE", message.current)
        elif kind == UPDATE:
            target = self.messages[int(interaction.payload["message"]["id"])]
            if refused := self._apply_edit(target, data, files, where):
                return refused
            interaction.original = target
            resource["message"] = target.current
        elif kind == DEFERRED_UPDATE and "message" in interaction.payload:
            interaction.original = self.messages.get(int(interaction.payload["message"]["id"]))
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        reply = {
            "interaction": {
                "id": iid,
                "type": interaction.type,
                "response_message_id": resource.get("message", {}).get("id"),
                "response_message_loading": kind == DEFERRED_REPLY,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": resource,
        }
        return _json(reply)

    async def _r_followup(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], app: str, token: str
    ) -> web.Response:
        interaction = self._interaction(None, token)
        if app != str(APP_ID) or interaction is None:
            return _error(*UNKNOWN_WEBHOOK)
        if not interaction.callbacks:
            self.violations.append(f"follow-up to interaction {interaction.id} before it was answered")
            return _error(*UNKNOWN_WEBHOOK)
        if refused := self._refuse(check_message(body, f"follow-up to {interaction.id}", files=len(files))):
            return refused
        message = self._answer_message(interaction, body, files)
        message.current["webhook_id"] = str(APP_ID)
        interaction.followups.append(message)
        if message.ephemeral_to is None:
            await self.dispatch("MESSAGE_CREATE", message.current)
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(message.current)
        return web.Response(status=204)

    def _webhook_message(self, app: str, token: str, which: str) -> Message | None:
        interaction = self._interaction(None, token)
        if app != str(APP_ID) or interaction is None:
            return None
        if which == "@original":
            return interaction.original
        return next((m for m in interaction.followups if str(m.id) == which), None)

    async def _r_webhook_get(
        self, request: web.Request, body: Any, files: Any, app: str, token: str, which: str
    ) -> web.Response:
        message = self._webhook_message(app, token, which)
        if message is None:
            return _error(*UNKNOWN_MESSAGE)
        return _json(message.current)

    async def _r_webhook_edit(
        self,
        request: web.Request,
        body: dict[str, Any],
        files: dict[str, bytes],
        app: str,
        token: str,
        which: str,
    ) -> web.Response:
        message = self._webhook_message(app, token, which)
        if message is None:
            return _error(*UNKNOWN_MESSAGE)
        if refused := self._apply_edit(message, body, files, f"PATCH webhook message {which}"):
            return refused
        if message.ephemeral_to is None:
            await self.dispatch("MESSAGE_UPDATE", message.current)
        return _json(message.current)

    async def _r_webhook_delete(
        self, request: web.Request, body: Any, files: Any, app: str, token: str, which: str
    ) -> web.Response:
        message = self._webhook_message(app, token, which)
        if message is None:
            return _error(*UNKNOWN_MESSAGE)
        self.messages.pop(message.id, None)
        return web.Response(status=204)
