"""Sending: ``AT+CMGS``, the prompt, the PDU and Ctrl-Z, ``+CMGS: <mr>``; ``AT+CMMS`` between parts.

What the outcome means is decided here: an error before the PDU was written is a definite
failure of this part; silence or a lost port after it is `SendAmbiguous` (TS 27.005 §3.5.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .commands import COMMANDS, SEND_RESULT_TIMEOUT
from .core import FinalResult
from .errors import AtError, AtTimeout, ModemDisconnected, SendAmbiguous

if TYPE_CHECKING:
    from .driver import Modem


class SendingMixin:
    async def send(self: Modem, parts: Sequence[Any], *, more_to_follow: bool = False,
                   before_pdu: Callable[[Any], None] | None = None) -> list[int]:
        """Send the parts of one message (`pdu.SubmitPart`, or hex strings with SMSC octet).

        Returns the message reference of each part. Keeps the radio link between parts with
        ``AT+CMMS=2`` where the profile allows; a caller that sends part by part passes
        `more_to_follow=True` for all but the last call to keep the link across calls.
        `before_pdu(part)` runs once the modem has given its prompt, just before the PDU is
        written: the last moment to record durably that the part may leave. If it raises, the
        prompt is cancelled with ESC (nothing is sent) and its exception propagates.
        Raises `CmsError`/`CmeError`/`AtError` with a `.references` attribute (parts that did
        go out), or `SendAmbiguous` when the modem fell silent after a PDU was written.
        """
        references: list[int] = []
        keep_link = self.profile.supports_cmms and (len(parts) > 1 or more_to_follow)
        finished = False
        async with self._lock:  # the parts go out back to back, nothing in between
            try:
                if keep_link and not self._link_kept:
                    await self._execute("more_messages", mode=2, check=False)
                    self._link_kept = True
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
                if self._link_kept and not (finished and more_to_follow):
                    await self._release_link()
        return references

    async def _release_link(self: Modem) -> None:
        """``AT+CMMS=0`` after the last part (skipped when the modem is silent or gone)."""
        self._link_kept = False
        if self._transport is not None and not self._unresponsive:
            try:
                await self._execute("more_messages", mode=0, check=False)
            except AtError:
                pass

    async def _send_part(self: Modem, part: Any,
                         before_pdu: Callable[[Any], None] | None = None) -> int:
        """``AT+CMGS``, prompt, PDU, ``+CMGS: <mr>``. The caller holds the lock."""
        hex_pdu, length = _part_hex_and_length(part)
        command = COMMANDS["send"]
        line = command.line(length=length)
        await self._resync_if_needed()
        data = self._core.send_command(line, prefixes=(command.prefix,), expects_prompt=True)
        self.log.debug(">> %s", line)
        first = await self._wait(self._write_and_wait(data),
                                 self.patience(self.profile.timeout("send", command.timeout)),
                                 line)
        if isinstance(first, FinalResult):  # refused before the prompt
            if first.error is not None:
                raise first.error
            raise AtError(f"{line} answered {first.result} without a prompt")
        if self._core.pending_command is None:  # prompt and result arrived together
            early, self._early_result = self._early_result, None
            if early is not None and early.error is not None:
                raise early.error
            raise AtError(f"{line} ended ({early.result if early else '?'}) at the prompt")
        if before_pdu is not None:
            try:
                before_pdu(part)
            except BaseException:
                self._cancel_prompt()
                raise
        pdu_bytes = self._core.send_pdu(hex_pdu)
        self.log.debug(">> %s<Ctrl-Z>", hex_pdu)
        try:
            result = await self._wait(self._write_and_wait(pdu_bytes),
                                      self.profile.timeout("send_result", SEND_RESULT_TIMEOUT),
                                      line)
        except (AtTimeout, ModemDisconnected) as error:
            raise SendAmbiguous(f"PDU written, then {error}") from None
        assert isinstance(result, FinalResult)
        if result.error is not None:
            raise result.error
        reference = command.parse(result.lines)
        if reference is None:
            raise SendAmbiguous(f"{line} answered OK without a message reference")
        return reference

    def _cancel_prompt(self: Modem) -> None:
        """ESC at the prompt: the modem drops the command without sending (TS 27.005 §3.5.1);
        its late ``OK`` is stale, so the next command resynchronises first."""
        escape = self._core.abandon()
        self._needs_resync = True
        if self._transport is not None:
            self._transport.write(escape)


def _part_hex_and_length(part: Any) -> tuple[str, int]:
    """Hex PDU and TPDU length (octets after the SMSC field, TS 27.005 §3.5.1 <length>)."""
    if isinstance(part, str):
        hex_pdu = part.strip()
        smsc_octets = int(hex_pdu[:2], 16)
        return hex_pdu, len(hex_pdu) // 2 - smsc_octets - 1
    return part.hex, part.tpdu_length
