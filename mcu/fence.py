"""The fence: every private internal of aiortc, aioice and pylibsrtp that giaoban relies on.

The SFU forwards raw bytes (``mcu.sfu``): it takes each decrypted packet from aiortc's DTLS
transport before aiortc parses it, and protects and sends its own packets in place with that
transport's libsrtp session, on the nominated ICE socket. The UDP guard filters what aioice hands
to a peer, the node pins aioice's host addresses, and the room agent repeats the NACKs that aiortc
sends only once; the sender reports of forwarded streams carry aiortc's own NTP clock. None of
the three libraries offers this publicly, so each hook is a named function here and no other
module of the product reads or replaces their private parts or imports their internal modules.

``check()`` runs at start (``LocalMediaNode.start``, ``Agent.start``): if an upgrade removed or
reshaped a hook, it fails before any peer connects, naming the library, its installed version,
the missing hook and the range tested (``TESTED``, the ranges pyproject.toml pins). So importing
this module never fails on a moved internal: each internal module is imported guarded, and a
missing one is reported by ``check()`` as the hooks it held.

Imports only these libraries and the standard library, so that the hot path (``mcu.sfu``) may
use it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import re
import struct
from typing import Any, Awaitable, Callable

import aioice.ice
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceTransport, RTCRtpReceiver, RTCRtpSender
from aiortc import RTCRtpCodecParameters, RTCRtpTransceiver
from pylibsrtp import Policy, Session

log = logging.getLogger("mcu.fence")

# The versions these hooks were tested with; pyproject.toml declares the same ranges
# (tests/mcu/test_fence.py holds the two together).
TESTED = {"aiortc": ">=1.9,<1.17", "aioice": ">=0.9,<0.14", "pylibsrtp": ">=0.10,<1.1"}


def _internal_module(name: str) -> Any:
    """The module, or None when an upgrade moved or removed it (check() then reports the hooks
    it held, with the version and the tested range, instead of an ImportError at import)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_binding: Any = _internal_module("pylibsrtp._binding")
_clock: Any = _internal_module("aiortc.clock")
_rtp_receiver: Any = _internal_module("aiortc.rtcrtpreceiver")
_mdns: Any = _internal_module("aioice.mdns")
_turn: Any = _internal_module("aioice.turn")
_ffi: Any = getattr(_binding, "ffi", None)
_lib: Any = getattr(_binding, "lib", None)

# Private names, in one place for the hooks and for check()
_DTLS_RTP = "_handle_rtp_data"
_DTLS_RTCP = "_handle_rtcp_data"
_SENDER_REPORT = (
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__octet_count",
)
_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"
_LOCAL_CERTIFICATE = "_RTCDtlsTransport__local_certificate"
_SSL_CONTEXT = "_create_ssl_context"


class FenceError(RuntimeError):
    """An installed aiortc, aioice or pylibsrtp lacks a hook this module relies on."""


# -- pylibsrtp: the in-place protect of the hot path ---------------------------------------

SRTP_BUFFER = 1500  # bytes in a Session's packet buffer (checked): a packet plus its trailer


#: libsrtp's ``srtp_protect(ctx, buffer, int *length)``: 0 when the packet in ``buffer`` was
#: protected in place (``length`` then holds the new length). Called per packet and subscriber.
def _no_binding(*args: Any) -> int:
    raise FenceError("pylibsrtp has no _binding.lib.srtp_protect (see mcu.fence.check)")


srtp_protect: Callable[[Any, Any, Any], int] = getattr(_lib, "srtp_protect", _no_binding)


def new_length_cell() -> Any:
    """An ``int *`` for ``srtp_protect``'s length, in and out."""
    return _ffi.new("int *")


def srtp_buffer(session: Session) -> tuple[memoryview, Any, Any]:
    """(writable view of ``session``'s packet buffer, the buffer as C data, the libsrtp context).

    The C pointers stay valid for as long as ``session`` lives: keep a reference to it."""
    return memoryview(session._buffer), session._cdata, session._srtp[0]


# libsrtp's srtp_crypto_policy_set_null_cipher_hmac_null, which pylibsrtp does not bind: the six ints
# of srtp_crypto_policy_t (cipher_type SRTP_NULL_CIPHER, cipher_key_len 30, auth_type SRTP_NULL_AUTH,
# auth_key_len, auth_tag_len, sec_serv_none), written over the policy pylibsrtp made
_NULL_CRYPTO_POLICY = struct.pack("=6i", 0, 30, 0, 0, 0, 0)


def plain_rtp_session() -> Session:
    """An outbound libsrtp session with the NULL cipher and NULL auth: its protect leaves a packet
    byte for byte as it was, so a plain RTP/AVP output (a SIP room system, ``mcu.rtp``) uses the
    same protect-in-place fast path (``Output.bind_transport``) as an SRTP one."""
    policy = Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    for crypto in (policy._policy.rtp, policy._policy.rtcp):
        _ffi.buffer(_ffi.addressof(crypto))[:] = _NULL_CRYPTO_POLICY
    policy.allow_repeat_tx = True  # retransmissions resend a sequence number
    return Session(policy)


def _plain_session_unchanged() -> bool:
    packet = bytes([0x80, 0x60, 0, 1, 0, 0, 0, 5, 0, 0, 0, 7]) + bytes(range(200))
    session = plain_rtp_session()
    return session.protect(packet) == packet and session.protect(packet) == packet


# -- aiortc: the DTLS transport, senders and receivers -------------------------------------


def intercept_srtp(
    dtls: RTCDtlsTransport, on_rtp: Callable[..., Awaitable[None]], on_rtcp: Callable[[bytes], Awaitable[None]]
) -> None:
    """Hand this transport's decrypted packets to ``on_rtp(data, arrival_time_ms=...)`` and
    ``on_rtcp(data)`` instead of aiortc's receivers (this instance only)."""
    setattr(dtls, _DTLS_RTP, on_rtp)
    setattr(dtls, _DTLS_RTCP, on_rtcp)


# The DTLS suites our side offers as a DTLS client. aiortc 1.16 offers only the ECDSA ones, which a
# server holding an RSA certificate cannot pick (GStreamer 1.22's webrtcbin, older equipment): the
# handshake fails with "no shared cipher". Forward secret AEAD first, then CBC, as aiortc orders them.
# We still answer an actpass offer with a=setup:active (RFC 5763 section 5 recommends it: the handshake
# starts when ICE completes, not when the answer has reached the offerer); answering passive would not
# help an offer that says a=setup:passive, which these suites do.
DTLS_CIPHERS = b":".join(
    f"ECDHE-{key}-{cipher}".encode()
    for cipher in ("AES128-GCM-SHA256", "CHACHA20-POLY1305", "AES128-SHA", "AES256-SHA")
    for key in ("ECDSA", "RSA")
)


def offer_rsa_suites(dtls: RTCDtlsTransport) -> None:
    """Offer the ECDHE-RSA suites beside aiortc's ECDHE-ECDSA ones, so that a peer with an RSA
    certificate can be the DTLS server when we answer ``a=setup:active``. Scoped to this
    transport's certificate (one per peer connection); call before DTLS starts (ICE completes)."""
    certificate = getattr(dtls, _LOCAL_CERTIFICATE)
    if _SSL_CONTEXT in vars(certificate):
        return  # this certificate already offers them (several transports of one connection)
    create = getattr(certificate, _SSL_CONTEXT)

    def create_with_rsa(*args: Any, **kwargs: Any) -> Any:
        context = create(*args, **kwargs)
        context.set_cipher_list(DTLS_CIPHERS)
        return context

    setattr(certificate, _SSL_CONTEXT, create_with_rsa)


def srtp_sender(dtls: RTCDtlsTransport) -> Session | None:
    """The transport's outbound SRTP session; None until DTLS has set it up."""
    return dtls._tx_srtp


def nominated_pair(dtls: RTCDtlsTransport) -> aioice.ice.CandidatePair | None:
    """The ICE candidate pair the transport sends on (component 1: RTP and RTCP are muxed)."""
    return dtls.transport._connection._nominated.get(1)


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC aiortc chose for the sender and put in the SDP."""
    return sender._ssrc


def sender_rtx_ssrc(sender: RTCRtpSender) -> int:
    """The sender's retransmission (RTX) SSRC from the SDP."""
    return sender._rtx_ssrc


def set_negotiated_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """The codecs of the transceiver's m-line, in order, as the answer aiortc writes next lists them
    (and its sender and receiver take them): set after setRemoteDescription, which computes them
    from aiortc's own capability table only (H.264: packetization-mode 1, two profiles)."""
    transceiver._codecs = codecs


def set_sender_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id the next offer announces for this sender."""
    sender._stream_id = stream_id


def ntp_time() -> int:
    """Now on aiortc's clock, as the 64-bit NTP timestamp its sender reports carry."""
    now: int = _clock.current_ntp_time()
    return now


def set_sender_report(sender: RTCRtpSender, ntp: int, rtp: int, packets: int, octets: int) -> None:
    """What the sender's next RTCP sender report says: the (NTP, RTP timestamp) pair and the
    packet and octet counts."""
    for name, value in zip(_SENDER_REPORT, (ntp, rtp, packets, octets)):
        setattr(sender, name, value)


def nack_state(receiver: RTCRtpReceiver) -> tuple[set[int], dict[int, Any]]:
    """(sequence numbers a video receiver still misses, its media SSRCs -> when each was last
    heard). RTX SSRCs are left out: a NACK names the media SSRC."""
    gen = getattr(receiver, _NACK_GENERATOR, None)
    rtx = getattr(receiver, _RTX_SSRC, {})
    active = {ssrc: at for ssrc, at in getattr(receiver, _ACTIVE_SSRC, {}).items() if ssrc not in rtx}
    return (gen.missing if gen is not None else set()), active


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    """Send an RTCP NACK for ``lost`` packets of ``media_ssrc`` from the receiver."""
    await receiver._send_rtcp_nack(media_ssrc, lost)


# -- aioice: host addresses, the datagram path, socket sizes -------------------------------

HostAddresses = Callable[[bool, bool], list[str]]
DatagramHandler = Callable[[Any, bytes, tuple[Any, ...]], None]


def replace_host_addresses(fn: HostAddresses) -> HostAddresses:
    """Make aioice gather host candidates from ``fn(use_ipv4, use_ipv6)`` (the whole process);
    returns the function it replaced."""
    previous: HostAddresses = aioice.ice.get_host_addresses
    setattr(aioice.ice, "get_host_addresses", fn)
    return previous


ComponentCandidates = Callable[..., Awaitable[list[Any]]]


def replace_component_candidates(fn: ComponentCandidates) -> ComponentCandidates:
    """Make every aioice Connection gather a component's candidates with
    ``fn(connection, component, addresses, timeout=5)`` (the whole process; the public-address
    mapping of mcu/peer/ice.py wraps the original); returns the function it replaced."""
    previous: ComponentCandidates = aioice.ice.Connection.get_component_candidates
    setattr(aioice.ice.Connection, "get_component_candidates", fn)
    return previous


def replace_datagram_handlers(stun: DatagramHandler, mdns: DatagramHandler) -> tuple[DatagramHandler, DatagramHandler]:
    """Route every datagram of aioice's ICE sockets to ``stun(protocol, data, addr)`` and of its
    mDNS socket to ``mdns(...)`` (the whole process); returns the two handlers replaced."""
    previous = (aioice.ice.StunProtocol.datagram_received, _mdns.MDnsProtocol.datagram_received)
    setattr(aioice.ice.StunProtocol, "datagram_received", stun)
    setattr(_mdns.MDnsProtocol, "datagram_received", mdns)
    return previous


def set_socket_receive_buffer(size: int) -> None:
    """The SO_RCVBUF aioice gives the sockets it opens from now on."""
    _turn.UDP_SOCKET_BUFFER_SIZE = size


def ice_backlog(protocol: aioice.ice.StunProtocol) -> int:
    """Datagrams waiting in the queue of the ICE connection that owns ``protocol``."""
    return protocol.receiver._queue.qsize()


def deliver_to_ice(protocol: aioice.ice.StunProtocol, data: bytes) -> None:
    """Queue a non-STUN datagram for the connection, as aioice does after a STUN parse fails."""
    protocol.receiver.data_received(data, protocol.local_candidate.component)


# -- the check -------------------------------------------------------------------------------


def _assigns(cls: type, *names: str) -> bool:
    """True if ``cls.__init__`` assigns (or reads) every attribute in ``names``."""
    code = getattr(getattr(cls, "__init__"), "__code__", None)
    return code is not None and set(names) <= set(code.co_names)


def _params(fn: Any, *names: str) -> bool:
    """True if ``fn``'s parameters begin with ``names``."""
    return tuple(inspect.signature(fn).parameters)[: len(names)] == names


def _session_buffer() -> bool:
    session = Session()
    return (
        len(session._buffer) >= SRTP_BUFFER
        and _ffi.sizeof(session._cdata) >= SRTP_BUFFER
        and session._srtp[0] is not None
    )


_ICE = aioice.ice
_HOOKS: list[tuple[str, str, Callable[[], bool]]] = [
    (
        "pylibsrtp",
        "_binding.lib.srtp_protect(ctx, buffer, int *length)",
        lambda: len(_ffi.typeof(srtp_protect).args) == 3,
    ),
    ("pylibsrtp", f"Session._buffer/_cdata/_srtp ({SRTP_BUFFER} bytes)", _session_buffer),
    ("pylibsrtp", "Policy._policy (NULL cipher, NULL auth: protect leaves RTP unchanged)", _plain_session_unchanged),
    (
        "aiortc",
        f"RTCDtlsTransport.{_DTLS_RTP}(data, arrival_time_ms)",
        lambda: _params(RTCDtlsTransport._handle_rtp_data, "self", "data", "arrival_time_ms"),
    ),
    (
        "aiortc",
        f"RTCDtlsTransport.{_DTLS_RTCP}(data)",
        lambda: _params(RTCDtlsTransport._handle_rtcp_data, "self", "data"),
    ),
    ("aiortc", "RTCDtlsTransport._tx_srtp", lambda: _assigns(RTCDtlsTransport, "_tx_srtp")),
    (
        "aiortc",
        "RTCDtlsTransport.__local_certificate, RTCCertificate._create_ssl_context(srtp_profiles)",
        lambda: (
            _assigns(RTCDtlsTransport, _LOCAL_CERTIFICATE)
            and _params(RTCCertificate._create_ssl_context, "self", "srtp_profiles")
        ),
    ),
    ("aiortc", "RTCIceTransport._connection", lambda: _assigns(RTCIceTransport, "_connection")),
    ("aiortc", "RTCRtpTransceiver._codecs", lambda: _assigns(RTCRtpTransceiver, "_codecs")),
    (
        "aiortc",
        "RTCRtpSender._ssrc/_rtx_ssrc/_stream_id",
        lambda: _assigns(RTCRtpSender, "_ssrc", "_rtx_ssrc", "_stream_id"),
    ),
    (
        "aiortc",
        "RTCRtpSender.__ntp_timestamp/__rtp_timestamp/__packet_count/__octet_count",
        lambda: _assigns(RTCRtpSender, *_SENDER_REPORT),
    ),
    ("aiortc", "clock.current_ntp_time()", lambda: isinstance(ntp_time(), int)),
    (
        "aiortc",
        "RTCRtpReceiver.__nack_generator/__rtx_ssrc/__active_ssrc",
        lambda: _assigns(RTCRtpReceiver, _NACK_GENERATOR, _RTX_SSRC, _ACTIVE_SSRC),
    ),
    (
        "aiortc",
        "rtcrtpreceiver.NackGenerator.missing",
        lambda: _assigns(_rtp_receiver.NackGenerator, "missing"),
    ),
    (
        "aiortc",
        "RTCRtpReceiver._send_rtcp_nack(media_ssrc, lost)",
        lambda: _params(RTCRtpReceiver._send_rtcp_nack, "self", "media_ssrc", "lost"),
    ),
    ("aioice", "ice.Connection._nominated/_queue", lambda: _assigns(_ICE.Connection, "_nominated", "_queue")),
    (
        "aioice",
        "ice.Connection.data_received(data, component)",
        lambda: _params(_ICE.Connection.data_received, "self", "data", "component"),
    ),
    (
        "aioice",
        "ice.StunProtocol.datagram_received(data, addr)",
        lambda: _params(_ICE.StunProtocol.datagram_received, "self", "data", "addr"),
    ),
    (
        "aioice",
        "ice.StunProtocol.receiver/local_candidate",
        lambda: _assigns(_ICE.StunProtocol, "receiver") and "local_candidate" in _ICE.StunProtocol.__annotations__,
    ),
    (
        "aioice",
        "ice.CandidatePair.protocol/remote_addr",
        lambda: _assigns(_ICE.CandidatePair, "protocol") and hasattr(_ICE.CandidatePair, "remote_addr"),
    ),
    (
        "aioice",
        "ice.get_host_addresses(use_ipv4, use_ipv6)",
        lambda: _params(_ICE.get_host_addresses, "use_ipv4", "use_ipv6"),
    ),
    (
        "aioice",
        "ice.Connection.get_component_candidates(component, addresses)",
        lambda: _params(_ICE.Connection.get_component_candidates, "self", "component", "addresses"),
    ),
    (
        "aioice",
        "mdns.MDnsProtocol.datagram_received(data, addr)",
        lambda: _params(_mdns.MDnsProtocol.datagram_received, "self", "data", "addr"),
    ),
    ("aioice", "turn.UDP_SOCKET_BUFFER_SIZE", lambda: hasattr(_turn, "UDP_SOCKET_BUFFER_SIZE")),
]


def installed_version(library: str) -> str:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def check() -> None:
    """Raise ``FenceError`` naming every hook the installed libraries lack; warn when a version
    lies outside the tested range but has every hook."""
    missing: dict[str, list[str]] = {}
    for library, hook, present in _HOOKS:
        try:
            ok = present()
        except Exception:  # the hook's owner itself is gone, or is no longer what we inspect
            ok = False
        if not ok:
            missing.setdefault(library, []).append(hook)
    if missing:
        raise FenceError(
            "; ".join(
                f"{library} {installed_version(library)} (tested {TESTED[library]}) lacks {', '.join(hooks)}"
                for library, hooks in missing.items()
            )
            + ": install a tested version or update mcu/fence.py"
        )
    for library, tested in TESTED.items():
        version = installed_version(library)
        if not within(version, tested):
            log.warning("%s %s is outside the tested range %s; its private hooks are present", library, version, tested)


def within(version: str, tested: str) -> bool:
    """``version`` satisfies ``tested``, a range of the form ">=A,<B"."""
    low, high = (_numbers(bound.lstrip("<>=")) for bound in tested.split(","))
    return low <= _numbers(version) < high


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(m.group()) for m in (re.match(r"\d+", part) for part in version.split(".")) if m)
