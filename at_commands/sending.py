"""Sending: ``AT+CMGS``, the prompt, the PDU and Ctrl-Z, ``+CMGS: <mr>``; ``AT+CMMS`` between parts.

    sending = Sending(channel)
    references = await sending.send(pdu.encode_submit("+8613800138000", "你好"))

What the outcome means is decided here: an error before the PDU was written is a definite
failure of this part; silence or a lost port after it is `SendAmbiguous` (TS 27.005 §3.5.1).
The only state of its own is whether ``AT+CMMS=2`` (keep the radio link) is on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .channel import Channel
from .commands import COMMANDS, SEND_RESULT_TIMEOUT
from .errors import AtError, AtTimeout, ModemDisconnected, SendAmbiguous


class Sending:
    """Writes the parts of messages through `channel`; `send` is its one public call."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.link_kept = False  # AT+CMMS=2 is on

    def port_reopened(self) -> None:
        """A new port knows nothing of ``AT+CMMS`` asked on the old one."""
        self.link_kept = False

    async def send(self, parts: Sequence[Any], *, more_to_follow: bool = False,
                   before_pdu: Callable[[Any], Awaitable[None] | None] | None = None) -> list[int]:
        """Send the parts of one message (`pdu.SubmitPart`, or hex strings with SMSC octet).

        Returns the message reference of each part. Keeps the radio link between parts with
        ``AT+CMMS=2`` where the profile allows; a caller that sends part by part passes
        `more_to_follow=True` for all but the last call to keep the link across calls.
        `before_pdu(part)` runs once the modem has given its prompt, just before the PDU is
        written: the last moment to record durably that the part may leave (a coroutine function
        is awaited, the modem waiting at its prompt). If it raises, the prompt is cancelled with
        ESC (nothing is sent) and its exception propagates.
        Raises `CmsError`/`CmeError`/`AtError` with a `.references` attribute (parts that did
        go out), or `SendAmbiguous` when the modem fell silent after a PDU was written.
        """
        references: list[int] = []
        keep_link = self.channel.profile.supports_cmms and (len(parts) > 1 or more_to_follow)
        finished = False
        async with self.channel.lock:  # the parts go out back to back, nothing in between
            try:
                if keep_link and not self.link_kept:
                    await self.channel.run("more_messages", mode=2, check=False)
                    self.link_kept = True
                for part in parts:
                    try:
                        references.append(await self._send_part(part, before_pdu))
                    except SendAmbiguous as error:
                        raise SendAmbiguous(error.meaning, tuple(references)) from None
                    except AtError as error:
                        error.references = tuple(references)  # type: ignore[attr-defined]
                        raise
                finished = True
            finally:
                if self.link_kept and not (finished and more_to_follow):
                    await self._release_link()
        return references

    async def _release_link(self) -> None:
        """``AT+CMMS=0`` after the last part (skipped when the modem is silent or gone)."""
        self.link_kept = False
        if self.channel.is_open and not self.channel.unresponsive:
            try:
                await self.channel.run("more_messages", mode=0, check=False)
            except AtError:
                pass

    async def _send_part(self, part: Any,
                         before_pdu: Callable[[Any], Awaitable[None] | None] | None = None) -> int:
        """``AT+CMGS``, prompt, PDU, ``+CMGS: <mr>``. The caller holds the lock."""
        channel = self.channel
        hex_pdu, length = _part_hex_and_length(part)
        command = COMMANDS["send"]
        line = command.line(length=length)
        await channel.ask_for_prompt(line, command,
                                     channel.timeout_of("send", command.timeout))
        if before_pdu is not None:
            try:
                pending = before_pdu(part)
                if inspect.isawaitable(pending):
                    await pending
            except BaseException:
                channel.cancel_prompt()
                raise
        if not channel.is_open:  # the port went while the marker was written: nothing went out
            raise ModemDisconnected(f"{channel.port} closed at the prompt; the PDU was not written")
        try:
            result = await channel.write_pdu(
                hex_pdu, line, channel.timeout_of("send_result", SEND_RESULT_TIMEOUT))
        except (AtTimeout, ModemDisconnected) as error:
            raise SendAmbiguous(f"PDU written, then {error}") from None
        if result.error is not None:
            raise result.error
        reference = command.parse(result.lines)
        if reference is None:
            raise SendAmbiguous(f"{line} answered OK without a message reference")
        return reference


def _part_hex_and_length(part: Any) -> tuple[str, int]:
    """Hex PDU and TPDU length (octets after the SMSC field, TS 27.005 §3.5.1 <length>)."""
    if isinstance(part, str):
        hex_pdu = part.strip()
        smsc_octets = int(hex_pdu[:2], 16)
        return hex_pdu, len(hex_pdu) // 2 - smsc_octets - 1
    return part.hex, part.tpdu_length
