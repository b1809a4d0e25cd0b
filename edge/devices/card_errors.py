"""What can go wrong between the kiosk and a card, as exceptions the lane can act on.

Every failure of the card reader driver is a :class:`CardReaderError`; no raw pyscard error and no
bare PC/SC return code escapes :mod:`edge.devices`. The subclasses say what happened, not what to
do about it (the lane decides):

====================================  ========================================================
exception                             meaning
====================================  ========================================================
:class:`PcscUnavailable`              pcscd is not running, or went away
:class:`ReaderUnavailable`            no such reader (unplugged), or not one we are told to use
:class:`ReaderBusy`                   someone else holds the reader, or an earlier exchange is
                                      still stuck in it
:class:`CardRemovedError`             the card left the reader (or was never there)
:class:`CardReset`                    the card was reset under us: its session state is gone
:class:`CardUnresponsive`             a card is there but does not answer (mute, unsupported)
:class:`CardTimeout`                  an exchange did not finish in time; the session is dead
:class:`CardCommunicationError`       the exchange failed, the card is still there
:class:`CardProtocolError`            the card broke ISO 7816 framing rules
:class:`SessionClosed`                the session was closed, or broken by an earlier error
====================================  ========================================================

The exception for a removed card is ``CardRemovedError``, not ``CardRemoved``: that name belongs to
the watcher's *event* (:class:`edge.devices.card_watcher.CardRemoved`), and one module re-exports
both.
"""

from __future__ import annotations

from smartcard import scard

__all__ = [
    "CardCommunicationError",
    "CardProtocolError",
    "CardReaderError",
    "CardRemovedError",
    "CardReset",
    "CardTimeout",
    "CardUnresponsive",
    "PcscUnavailable",
    "ReaderBusy",
    "ReaderUnavailable",
    "SessionClosed",
    "error_for",
    "pcsc_code",
    "pcsc_message",
]


class CardReaderError(Exception):
    """Base of every card reader driver error.

    ``reader`` names the reader when one is involved; ``code`` is the PC/SC return code behind the
    error, if there was one (for logs and the health report; never branch on it outside
    :mod:`edge.devices`).
    """

    def __init__(self, message: str, *, reader: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.reader = reader
        self.code = code


class PcscUnavailable(CardReaderError):
    """pcscd is not running or stopped answering (SCARD_E_NO_SERVICE, SCARD_F_COMM_ERROR...)."""


class ReaderUnavailable(CardReaderError):
    """The reader is not there (unplugged, unknown name) or is not a configured reader."""


class ReaderBusy(CardReaderError):
    """The reader is held: another application has the card, or our own earlier exchange is
    still stuck in the reader driver (see :class:`CardTimeout`)."""


class CardRemovedError(CardReaderError):
    """The card is not in the reader any more (or was not there when we connected)."""


class CardReset(CardRemovedError):
    """The card was reset by someone else; whatever the session had set up on it is gone.

    A subclass of :class:`CardRemovedError` because the consequence is the same: start over.
    """


class CardUnresponsive(CardReaderError):
    """A card is in the reader but does not answer to reset, or its ATR is not supported."""


class CardTimeout(CardReaderError, TimeoutError):
    """An exchange with the card did not complete within its timeout.

    The session that raised it is dead: the PC/SC call may still be running in the session's worker
    thread (pcsc-lite cannot interrupt SCardTransmit), and the card's state is unknown.
    """


class CardCommunicationError(CardReaderError):
    """The exchange failed although the card is still in the reader (a transmission error)."""


class CardProtocolError(CardReaderError):
    """The card's answers break ISO 7816 rules (no status word, an endless 61xx chain...)."""


class SessionClosed(CardReaderError):
    """The session is closed, or unusable since an earlier timeout, removal or cancellation."""


def pcsc_code(hresult: int) -> int:
    """A PC/SC return code as the unsigned 32-bit value the ``SCARD_*`` constants use."""
    return hresult & 0xFFFFFFFF


def pcsc_message(hresult: int) -> str:
    """``"Card was removed. (0x80100069)"``: pcsc-lite's text and the code."""
    code = pcsc_code(hresult)
    try:
        text = str(scard.SCardGetErrorMessage(code)).strip()
    except Exception:  # an unknown code must not turn an error report into a crash
        text = "unknown PC/SC error"
    return f"{text} (0x{code:08X})"


_SERVICE_LOST = frozenset(
    pcsc_code(c)
    for c in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_F_COMM_ERROR)
)
_CARD_GONE = frozenset(
    pcsc_code(c) for c in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD)
)
_READER_GONE = frozenset(
    pcsc_code(c) for c in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE)
)
_CARD_MUTE = frozenset(
    pcsc_code(c)
    for c in (
        scard.SCARD_W_UNRESPONSIVE_CARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_UNSUPPORTED_CARD,
        scard.SCARD_E_PROTO_MISMATCH,
    )
)

#: Codes after which only a look at the reader tells "card pulled" from "transmission failed".
AMBIGUOUS = frozenset(pcsc_code(c) for c in (scard.SCARD_E_NOT_TRANSACTED,))


def error_for(hresult: int, action: str, reader: str | None = None) -> CardReaderError:
    """The exception for a failed PC/SC call; ``action`` says what we were doing."""
    code = pcsc_code(hresult)
    where = f" ({reader})" if reader else ""
    message = f"{action}{where}: {pcsc_message(code)}"
    kind: type[CardReaderError]
    if code in _SERVICE_LOST:
        kind = PcscUnavailable
    elif code in _CARD_GONE:
        kind = CardRemovedError
    elif code == pcsc_code(scard.SCARD_W_RESET_CARD):
        kind = CardReset
    elif code in _READER_GONE:
        kind = ReaderUnavailable
    elif code == pcsc_code(scard.SCARD_E_SHARING_VIOLATION):
        kind = ReaderBusy
    elif code in _CARD_MUTE:
        kind = CardUnresponsive
    elif code == pcsc_code(scard.SCARD_E_TIMEOUT):
        kind = CardTimeout
    else:
        kind = CardCommunicationError
    return kind(message, reader=reader, code=code)
