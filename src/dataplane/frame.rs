//! WebSocket frames (RFC 6455 §5), read incrementally and written for injection: the ground floor of
//! the frame-aware relay (keepalive pings, message-size limits, closes with a code).
//!
//! ```text
//!   socket read ─► FrameReader::feed(input) ─► (consumed, event), called until it returns None
//!     header, 2 to 14 bytes, split anywhere ─► held in a 14-byte buffer ─► checked ─► Header
//!     payload ─► Payload { len, end_of_frame }: the next `len` bytes of `input`, still masked,
//!                forwarded by the caller as they are (never copied, unmasked or read here)
//!       control frame (≤ 125 bytes) ─► also copied and unmasked into a 125-byte buffer
//!                ─► Close checked (code, UTF-8 reason) ─► Control, after the frame's last span
//!   injection ─► encode_frame / encode_close / encode_ping / encode_pong ─► appended to a Vec
//! ```
//!
//! Every frame reads as one [`Event::Header`], then [`Event::Payload`] spans of which exactly the last
//! has `end_of_frame` (a frame with an empty payload gets one empty span), then, for a control frame
//! only, one [`Event::Control`] with its unmasked payload. Events that need no input (the empty span,
//! `Control`) consume nothing, so the caller loops until `feed` returns `None`, which it does only once
//! the whole input is consumed. A caller that passes everything through can forward whole reads and use
//! the events only to watch; one that drops or injects frames forwards
//! [`header_bytes`](FrameReader::header_bytes) at each `Header` and the spans, and injects only where
//! [`at_frame_boundary`](FrameReader::at_frame_boundary) says a frame has ended.
//!
//! What is checked: everything a frame header can get wrong (masking by direction, reserved opcodes and
//! bits, control frames fragmented or over 125 bytes, length encodings, continuations without a
//! message, a new message inside a fragmented one), the message size limit, and Close payloads (code
//! and UTF-8 reason), each a [`ProtocolError`] with the close code to answer it with. What is not:
//! the UTF-8 of Text messages and the content of compressed (permessage-deflate) ones. Both would mean
//! reading, and for deflate inflating, every payload byte, and the endpoints check them anyway (an
//! invalid Text message gets a 1007 from the side that decodes it).
//!
//! When an error comes: a header's, before its `Header` event (most at its second byte), so nothing
//! of a refused frame's payload is reported, and a message over the limit is refused at the header that
//! crosses it; a Close's, as soon as its bytes show it (the code at its second payload byte, the reason
//! before the span with its last byte). After an error the reader returns it on every call: the caller
//! sends a Close with [`ProtocolError::close_code`] and ends the connection.
//!
//! Memory: a reader is a fixed-size struct (208 bytes on 64-bit targets, no heap): at most 14 header bytes and 125
//! control payload bytes are held, whatever the peer sends.

use std::fmt;

/// The longest frame header: 2 bytes, an 8-byte extended length, a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The longest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: the endpoint is going away (a proxy draining or shutting down).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the peer broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: data inconsistent with its type (here: a Close reason that is not UTF-8).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code: a message too big to process.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// Who sends the frames a reader parses; it decides the masking rule (RFC 6455 §5.1: client frames
/// must be masked, server frames must not be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    /// Whether frames sent this way carry a masking key.
    pub fn masked(self) -> bool {
        self == Direction::ClientToServer
    }
}

/// Extensions the handshake negotiated, as far as they change what a valid frame header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    /// permessage-deflate (RFC 7692): RSV1 marks the first frame of a compressed message.
    pub permessage_deflate: bool,
}

/// A frame's opcode; the reserved values (3–7, 0xB–0xF) are refused by the reader, never represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode for a frame's 4-bit field, `None` for the reserved values.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        match value {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4-bit value on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: at most 125 bytes, never fragmented, allowed inside a fragmented message.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low 3 bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: Opcode,
    /// The masking key, present exactly on client frames.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header takes on the wire, 2 to 14.
    pub header_len: usize,
}

/// What [`FrameReader::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A frame header is complete (and valid).
    Header(FrameHeader),
    /// The first `len` bytes of the input given are payload of the current frame, as they came (masked
    /// if the frame is); `end_of_frame`: they are its last.
    Payload { len: usize, end_of_frame: bool },
    /// A control frame has ended (after its last `Payload` span): its payload, unmasked.
    Control(ControlFrame),
}

/// A complete control frame's payload, unmasked, held inline (at most 125 bytes).
#[derive(Clone, Copy)]
pub struct ControlFrame {
    opcode: Opcode,
    len: u8,
    payload: [u8; MAX_CONTROL_PAYLOAD],
}

impl ControlFrame {
    pub fn opcode(&self) -> Opcode {
        self.opcode
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload[..usize::from(self.len)]
    }

    /// A Close frame's code and reason, `None` for a Close without a code and for Ping and Pong. Never
    /// an error: the reader refuses an invalid Close before reporting it.
    pub fn close(&self) -> Option<(u16, &str)> {
        if self.opcode != Opcode::Close {
            return None;
        }
        parse_close(self.payload()).ok().flatten()
    }
}

impl fmt::Debug for ControlFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlFrame").field("opcode", &self.opcode).field("payload", &self.payload()).finish()
    }
}

impl PartialEq for ControlFrame {
    // why by hand: bytes past `len` are left over from earlier frames and mean nothing.
    fn eq(&self, other: &Self) -> bool {
        self.opcode == other.opcode && self.payload() == other.payload()
    }
}

impl Eq for ControlFrame {}

/// Why a peer's frames were refused. [`close_code`](ProtocolError::close_code) is the code to close
/// the connection with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    UnmaskedClientFrame,
    MaskedServerFrame,
    ReservedOpcode(u8),
    /// RSV bits no negotiated extension defines (`rsv`: all three as in [`FrameHeader::rsv`]).
    ReservedBits {
        rsv: u8,
    },
    /// RSV1 with permessage-deflate, but not on the first frame of a data message.
    Rsv1NotFirstFrame {
        opcode: Opcode,
    },
    ControlTooLong {
        opcode: Opcode,
        len: u64,
    },
    FragmentedControl {
        opcode: Opcode,
    },
    UnexpectedContinuation,
    /// A Text or Binary frame while a fragmented message still waits for its last continuation.
    MessageInProgress {
        opcode: Opcode,
    },
    LengthTopBit,
    /// A length written in more bytes than needed (`bytes`: the extended length's 2 or 8).
    NonMinimalLength {
        len: u64,
        bytes: u8,
    },
    CloseTooShort,
    InvalidCloseCode(u16),
    CloseReasonNotUtf8,
    MessageTooBig {
        limit: u64,
    },
}

impl ProtocolError {
    /// 1009 for a message over the limit, 1007 for a Close reason that is not UTF-8, 1002 otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::MessageTooBig { .. } => CLOSE_MESSAGE_TOO_BIG,
            ProtocolError::CloseReasonNotUtf8 => CLOSE_INVALID_PAYLOAD,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedClientFrame => {
                write!(f, "unmasked frame from the client (client frames must be masked)")
            }
            ProtocolError::MaskedServerFrame => {
                write!(f, "masked frame from the server (server frames must not be masked)")
            }
            ProtocolError::ReservedOpcode(opcode) => write!(f, "frame with the reserved opcode 0x{opcode:X}"),
            ProtocolError::ReservedBits { rsv } => {
                write!(f, "frame with RSV bits 0b{rsv:03b}, which no negotiated extension defines")
            }
            ProtocolError::Rsv1NotFirstFrame { opcode } => {
                write!(f, "RSV1 on a {opcode} frame (permessage-deflate sets it only on a data message's first frame)")
            }
            ProtocolError::ControlTooLong { opcode, len } => {
                write!(f, "{opcode} frame with a {len}-byte payload (control frames carry at most 125 bytes)")
            }
            ProtocolError::FragmentedControl { opcode } => {
                write!(f, "{opcode} frame without FIN (control frames cannot be fragmented)")
            }
            ProtocolError::UnexpectedContinuation => {
                write!(f, "continuation frame without a fragmented message in progress")
            }
            ProtocolError::MessageInProgress { opcode } => {
                write!(f, "{opcode} frame while a fragmented message is still in progress")
            }
            ProtocolError::LengthTopBit => write!(f, "64-bit payload length with the most significant bit set"),
            ProtocolError::NonMinimalLength { len, bytes } => {
                write!(f, "payload length {len} written in {bytes} extended bytes instead of the minimal encoding")
            }
            ProtocolError::CloseTooShort => write!(f, "Close frame with a 1-byte payload (a close code takes 2)"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "Close frame with the invalid close code {code}"),
            ProtocolError::CloseReasonNotUtf8 => write!(f, "Close frame whose reason is not valid UTF-8"),
            ProtocolError::MessageTooBig { limit } => write!(f, "message larger than the limit of {limit} bytes"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The incremental parser for one direction of one connection. See the module documentation for the
/// events a frame reads as.
#[derive(Debug, Clone)]
pub struct FrameReader {
    direction: Direction,
    extensions: Extensions,
    max_message: Option<u64>,
    state: State,
    header: [u8; MAX_HEADER_LEN],
    /// Bytes of `header` filled: the current header's so far, or all of it while its payload is read.
    header_len: u8,
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: u8,
    /// `Some(payload bytes so far)` while a fragmented data message waits for its last frame.
    message: Option<u64>,
    /// Why a stream is refused stays the answer: after an error nothing else in it can be trusted.
    failed: Option<ProtocolError>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    /// `control`: the opcode of a control frame, whose payload is also collected.
    Payload {
        remaining: u64,
        control: Option<Opcode>,
        mask: Option<[u8; 4]>,
    },
    /// A control frame's payload is complete; its `Control` event is next.
    Control {
        opcode: Opcode,
    },
}

/// What the first two header bytes say (all that is checked before the rest arrives).
struct Start {
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    masked: bool,
    header_len: usize,
}

impl FrameReader {
    pub fn new(direction: Direction, extensions: Extensions) -> FrameReader {
        FrameReader {
            direction,
            extensions,
            max_message: None,
            state: State::Header,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            message: None,
            failed: None,
        }
    }

    /// Limits a message (a data frame and its continuations) to `limit` payload bytes, counted as they
    /// are on the wire (compressed, with permessage-deflate). The header that crosses it is refused,
    /// so none of the message's excess is ever reported for forwarding.
    pub fn with_max_message(mut self, limit: Option<u64>) -> FrameReader {
        self.max_message = limit;
        self
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Whether a fragmented data message is in progress: only control frames may be injected then.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Whether the bytes consumed so far end at a frame boundary (no header or payload cut in two), so
    /// a frame written to the same destination now would not corrupt the stream. Events may still be
    /// due (an empty span, a `Control`).
    pub fn at_frame_boundary(&self) -> bool {
        match self.state {
            State::Header => self.header_len == 0,
            State::Payload { remaining, .. } => remaining == 0,
            State::Control { .. } => true,
        }
    }

    /// The raw bytes of the current frame's header, from its `Header` event to its last span; empty
    /// between frames. For callers that forward frame by frame: the header may have come over several
    /// reads, which consumed its bytes without an event.
    pub fn header_bytes(&self) -> &[u8] {
        match self.state {
            State::Header => &[],
            _ => &self.header[..usize::from(self.header_len)],
        }
    }

    /// Parses from the start of `input`: returns how many bytes it consumed and what they completed.
    /// `None` means more input is needed, and then all of `input` was consumed. After an error, every
    /// call returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Event>), ProtocolError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = match self.state {
            State::Header => self.read_header(input),
            State::Payload { remaining, control, mask } => self.read_payload(input, remaining, control, mask),
            State::Control { opcode } => {
                let frame = ControlFrame { opcode, len: self.control_len, payload: self.control };
                self.end_frame();
                Ok((0, Some(Event::Control(frame))))
            }
        };
        if let Err(error) = result {
            self.failed = Some(error);
        }
        result
    }

    fn read_header(&mut self, input: &[u8]) -> Result<(usize, Option<Event>), ProtocolError> {
        let mut used = self.fill_header(input, 2);
        if usize::from(self.header_len) < 2 {
            return Ok((used, None));
        }
        // why before the rest of the header: a peer sending garbage is refused at its second byte.
        let start = self.check_start()?;
        used += self.fill_header(&input[used..], start.header_len);
        if usize::from(self.header_len) < start.header_len {
            return Ok((used, None));
        }
        let header = self.finish_header(&start)?;
        Ok((used, Some(Event::Header(header))))
    }

    /// Copies what `input` has of the header up to `upto` bytes; returns how much it took.
    fn fill_header(&mut self, input: &[u8], upto: usize) -> usize {
        let have = usize::from(self.header_len);
        let take = upto.saturating_sub(have).min(input.len());
        self.header[have..have + take].copy_from_slice(&input[..take]);
        self.header_len += take as u8; // at most MAX_HEADER_LEN
        take
    }

    fn check_start(&self) -> Result<Start, ProtocolError> {
        let [b0, b1, ..] = self.header;
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0b111;
        let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        if rsv & 0b011 != 0 || (rsv != 0 && !self.extensions.permessage_deflate) {
            return Err(ProtocolError::ReservedBits { rsv });
        }
        if rsv != 0 && !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return Err(ProtocolError::Rsv1NotFirstFrame { opcode });
        }
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControl { opcode });
        }
        let masked = b1 & 0x80 != 0;
        match (self.direction, masked) {
            (Direction::ClientToServer, false) => return Err(ProtocolError::UnmaskedClientFrame),
            (Direction::ServerToClient, true) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        match opcode {
            Opcode::Continuation if self.message.is_none() => return Err(ProtocolError::UnexpectedContinuation),
            Opcode::Text | Opcode::Binary if self.message.is_some() => {
                return Err(ProtocolError::MessageInProgress { opcode });
            }
            _ => {}
        }
        let extended = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Ok(Start { fin, rsv, opcode, masked, header_len: 2 + extended + if masked { 4 } else { 0 } })
    }

    fn finish_header(&mut self, start: &Start) -> Result<FrameHeader, ProtocolError> {
        let h = &self.header;
        let payload_len = match h[1] & 0x7F {
            126 => {
                let len = u64::from(u16::from_be_bytes([h[2], h[3]]));
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength { len, bytes: 2 });
                }
                len
            }
            127 => {
                let len = u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]);
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBit);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(ProtocolError::NonMinimalLength { len, bytes: 8 });
                }
                len
            }
            len => u64::from(len),
        };
        let end = start.header_len;
        let mask = start.masked.then(|| [h[end - 4], h[end - 3], h[end - 2], h[end - 1]]);
        let opcode = start.opcode;
        if opcode.is_control() {
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong { opcode, len: payload_len });
            }
            if opcode == Opcode::Close && payload_len == 1 {
                return Err(ProtocolError::CloseTooShort);
            }
        } else {
            let message_len = match opcode {
                Opcode::Continuation => self.message.unwrap_or(0).saturating_add(payload_len),
                _ => payload_len,
            };
            if let Some(limit) = self.max_message
                && message_len > limit
            {
                return Err(ProtocolError::MessageTooBig { limit });
            }
            self.message = if start.fin { None } else { Some(message_len) };
        }
        self.control_len = 0;
        self.state = State::Payload { remaining: payload_len, control: opcode.is_control().then_some(opcode), mask };
        Ok(FrameHeader { fin: start.fin, rsv: start.rsv, opcode, mask, payload_len, header_len: end })
    }

    fn read_payload(
        &mut self,
        input: &[u8],
        remaining: u64,
        control: Option<Opcode>,
        mask: Option<[u8; 4]>,
    ) -> Result<(usize, Option<Event>), ProtocolError> {
        let len = usize::try_from(remaining).map_or(input.len(), |remaining| remaining.min(input.len()));
        if len == 0 && remaining != 0 {
            return Ok((0, None));
        }
        let remaining = remaining - len as u64;
        let end_of_frame = remaining == 0;
        if let Some(opcode) = control {
            // remaining ≤ 125 for a control frame, so this stays within the buffer.
            let at = usize::from(self.control_len);
            let collected = &mut self.control[at..at + len];
            collected.copy_from_slice(&input[..len]);
            if let Some(key) = mask {
                apply_mask(collected, key, at);
            }
            self.control_len += len as u8;
            // why checked before the span that completes each part: a caller forwarding span by span
            // passes on no more of an invalid Close than came before its code, or before its last byte
            // for a reason that is not UTF-8.
            if opcode == Opcode::Close {
                let code = u16::from_be_bytes([self.control[0], self.control[1]]);
                if at < 2 && self.control_len >= 2 && !is_valid_close_code(code) {
                    return Err(ProtocolError::InvalidCloseCode(code));
                }
                if end_of_frame {
                    parse_close(&self.control[..usize::from(self.control_len)])?;
                }
            }
        }
        match control {
            _ if !end_of_frame => self.state = State::Payload { remaining, control, mask },
            Some(opcode) => self.state = State::Control { opcode },
            None => self.end_frame(),
        }
        Ok((len, Some(Event::Payload { len, end_of_frame })))
    }

    fn end_frame(&mut self) {
        self.state = State::Header;
        self.header_len = 0;
    }

    /// Header and control bytes held: the bound the fuzz test checks.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (usize::from(self.header_len), usize::from(self.control_len))
    }
}

/// Whether a Close frame may carry `code` (RFC 6455 §7.4 and the IANA registry): 1004–1006 and 1015
/// are reserved, never sent; 1016–2999 are unassigned; 3000–4999 belong to libraries and applications.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A Close frame's payload: `None` if empty, else its code and reason.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseTooShort),
        [high, low, reason @ ..] => {
            if payload.len() > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlTooLong { opcode: Opcode::Close, len: payload.len() as u64 });
            }
            let code = u16::from_be_bytes([*high, *low]);
            if !is_valid_close_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::CloseReasonNotUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Appends a frame: header (minimal length encoding, RSV bits clear) and payload, masked with `mask`
/// if given (a client's frames need a key, a server's must have none).
///
/// # Panics
///
/// For a control frame without FIN or with a payload over 125 bytes: no peer would accept it.
pub fn encode_frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    assert!(
        !opcode.is_control() || (fin && payload.len() <= MAX_CONTROL_PAYLOAD),
        "a {opcode} frame must have FIN and at most {MAX_CONTROL_PAYLOAD} payload bytes (got {})",
        payload.len()
    );
    let mut header = [0; MAX_HEADER_LEN];
    let header_len = write_header(&mut header, fin, 0, opcode, mask, payload.len() as u64);
    out.reserve(header_len + payload.len());
    out.extend_from_slice(&header[..header_len]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// Appends a Close frame. `reason` is cut at a character boundary to fit the 123 bytes after the code.
/// `code` must be one a Close may carry ([`is_valid_close_code`]), checked in debug builds.
pub fn encode_close(code: u16, reason: &str, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    debug_assert!(is_valid_close_code(code), "close code {code} cannot be sent");
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    encode_frame(true, Opcode::Close, &payload[..2 + end], mask, out);
}

/// Appends a Ping frame. Panics if `payload` is over 125 bytes.
pub fn encode_ping(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_frame(true, Opcode::Ping, payload, mask, out);
}

/// Appends a Pong frame. Panics if `payload` is over 125 bytes.
pub fn encode_pong(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_frame(true, Opcode::Pong, payload, mask, out);
}

/// Writes a header into `buf`, returns its length.
fn write_header(
    buf: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) -> usize {
    buf[0] = (u8::from(fin) << 7) | ((rsv & 0b111) << 4) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut len = 2;
    if payload_len < 126 {
        buf[1] = mask_bit | payload_len as u8;
    } else if let Ok(short) = u16::try_from(payload_len) {
        buf[1] = mask_bit | 126;
        buf[2..4].copy_from_slice(&short.to_be_bytes());
        len = 4;
    } else {
        buf[1] = mask_bit | 127;
        buf[2..10].copy_from_slice(&payload_len.to_be_bytes());
        len = 10;
    }
    if let Some(key) = mask {
        buf[len..len + 4].copy_from_slice(&key);
        len += 4;
    }
    len
}

/// A masking key from a splitmix64 step of `seed`, so callers need no random number crate. Masking
/// exists so that a browser script cannot choose the bytes a client puts on the wire; the frames a proxy
/// injects carry only its own bytes, so keys that vary are enough. Seed once per connection from
/// something unpredictable (a `std::collections::hash_map::RandomState` hash, say) and keep the seed
/// with the connection.
pub fn mask_key(seed: &mut u64) -> [u8; 4] {
    let [a, b, c, d, ..] = splitmix64(seed).to_le_bytes();
    [a, b, c, d]
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// XORs `buf` with the masking `key` (masks and unmasks alike); `offset` is where `buf` starts within
/// the payload, so a payload split over several buffers can be masked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let [a, b, c, d] = key;
    // why 8 bytes at a time: one XOR per 8 bytes instead of per byte, on payloads of any alignment.
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let (words, rest) = buf.as_chunks_mut::<8>();
    for word in words {
        *word = (u64::from_ne_bytes(*word) ^ wide).to_ne_bytes();
    }
    // `rest` starts at a multiple of 8, so the key phase is unchanged.
    for (i, byte) in rest.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    /// An event as a whole feed would report it: consecutive spans of one frame merged, control
    /// payloads as slices.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Header(FrameHeader),
        /// The span's bytes as forwarded (masked as on the wire), and whether the frame ended.
        Payload(Vec<u8>, bool),
        Control(Opcode, Vec<u8>),
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        events: Vec<Seen>,
        /// What a frame-by-frame forwarder writes: `header_bytes()` at each header, then the spans.
        forwarded: Vec<u8>,
        error: Option<ProtocolError>,
    }

    /// Feeds `chunks` in order, checking the API's promises on every call.
    fn run<'a>(reader: &mut FrameReader, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut outcome = Outcome { events: Vec::new(), forwarded: Vec::new(), error: None };
        for chunk in chunks {
            let mut pos = 0;
            loop {
                let result = reader.feed(&chunk[pos..]);
                let (held_header, held_control) = reader.held();
                assert!(held_header <= MAX_HEADER_LEN && held_control <= MAX_CONTROL_PAYLOAD);
                let (consumed, event) = match result {
                    Ok(step) => step,
                    Err(error) => {
                        assert_eq!(reader.feed(b"\x81\x00"), Err(error), "errors are sticky");
                        outcome.error = Some(error);
                        return outcome;
                    }
                };
                assert!(consumed <= chunk.len() - pos);
                let span = &chunk[pos..pos + consumed];
                pos += consumed;
                match event {
                    None => {
                        assert_eq!(pos, chunk.len(), "None only once the input is consumed");
                        break;
                    }
                    Some(Event::Header(header)) => {
                        assert_eq!(reader.header_bytes().len(), header.header_len);
                        outcome.forwarded.extend_from_slice(reader.header_bytes());
                        outcome.events.push(Seen::Header(header));
                    }
                    Some(Event::Payload { len, end_of_frame }) => {
                        assert_eq!(len, consumed);
                        outcome.forwarded.extend_from_slice(span);
                        match outcome.events.last_mut() {
                            Some(Seen::Payload(bytes, ended)) if !*ended => {
                                bytes.extend_from_slice(span);
                                *ended = end_of_frame;
                            }
                            _ => outcome.events.push(Seen::Payload(span.to_vec(), end_of_frame)),
                        }
                    }
                    Some(Event::Control(frame)) => {
                        assert_eq!(consumed, 0);
                        outcome.events.push(Seen::Control(frame.opcode(), frame.payload().to_vec()));
                    }
                }
            }
        }
        outcome
    }

    /// What any split of the same input must give: after an error, the spans of the refused frame
    /// (a Close, whose code or reason is checked as its bytes arrive) depend on where reads ended.
    fn settled(mut outcome: Outcome) -> Outcome {
        if outcome.error.is_some() {
            while let Some(Seen::Payload(bytes, _)) = outcome.events.last() {
                outcome.forwarded.truncate(outcome.forwarded.len() - bytes.len());
                outcome.events.pop();
            }
        }
        outcome
    }

    fn run_whole(reader: FrameReader, input: &[u8]) -> Outcome {
        run(&mut reader.clone(), [input])
    }

    fn server() -> FrameReader {
        FrameReader::new(Direction::ServerToClient, Extensions::default())
    }

    fn client() -> FrameReader {
        FrameReader::new(Direction::ClientToServer, Extensions::default())
    }

    fn deflate(direction: Direction) -> FrameReader {
        FrameReader::new(direction, Extensions { permessage_deflate: true })
    }

    fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(fin, opcode, payload, mask, &mut out);
        out
    }

    fn header_only(fin: bool, rsv: u8, opcode: Opcode, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
        let mut buf = [0; MAX_HEADER_LEN];
        let n = write_header(&mut buf, fin, rsv, opcode, mask, len);
        buf[..n].to_vec()
    }

    fn unmasked(bytes: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut bytes = bytes.to_vec();
        if let Some(key) = mask {
            apply_mask(&mut bytes, key, 0);
        }
        bytes
    }

    fn mask_for(direction: Direction, seed: &mut u64) -> Option<[u8; 4]> {
        direction.masked().then(|| mask_key(seed))
    }

    /// Several frames of both kinds: a fragmented Text with a Ping inside, a 126-form Binary, an empty
    /// Binary, an empty Pong, a Close.
    fn sample_stream(direction: Direction) -> Vec<u8> {
        let mut seed = 7;
        let mut stream = Vec::new();
        let big: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        for (fin, opcode, payload) in [
            (false, Opcode::Text, &b"Hello"[..]),
            (true, Opcode::Ping, b"ping!"),
            (true, Opcode::Continuation, b", world"),
            (true, Opcode::Binary, &big),
            (true, Opcode::Binary, b""),
            (true, Opcode::Pong, b""),
        ] {
            stream.extend(frame(fin, opcode, payload, mask_for(direction, &mut seed)));
        }
        encode_close(CLOSE_NORMAL, "bye", mask_for(direction, &mut seed), &mut stream);
        stream
    }

    #[test]
    fn rfc_examples_parse_and_encode() {
        // RFC 6455 §5.7.
        let unmasked_hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let masked_hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(frame(true, Opcode::Text, b"Hello", None), unmasked_hello);
        assert_eq!(frame(true, Opcode::Text, b"Hello", Some(KEY)), masked_hello);
        let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        let mut out = frame(false, Opcode::Text, b"Hel", None);
        out.extend(frame(true, Opcode::Continuation, b"lo", None));
        assert_eq!(out, fragmented);
        let mut ping = Vec::new();
        encode_ping(b"Hello", None, &mut ping);
        assert_eq!(ping, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut pong = Vec::new();
        encode_pong(b"Hello", Some(KEY), &mut pong);
        assert_eq!(pong, [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        assert_eq!(frame(true, Opcode::Binary, &[0; 256], None)[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(frame(true, Opcode::Binary, &[0; 65536], None)[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);

        let outcome = run_whole(client(), &masked_hello);
        assert_eq!(outcome.error, None);
        let header =
            FrameHeader { fin: true, rsv: 0, opcode: Opcode::Text, mask: Some(KEY), payload_len: 5, header_len: 6 };
        assert_eq!(outcome.events, [Seen::Header(header), Seen::Payload(masked_hello[6..].to_vec(), true)]);
        assert_eq!(unmasked(&masked_hello[6..], Some(KEY)), b"Hello");
    }

    #[test]
    fn every_length_encoding_in_both_directions() {
        let mut seed = 1;
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            for (len, extended) in [(0usize, 0), (125, 0), (126, 2), (65535, 2), (65536, 8)] {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let mask = mask_for(direction, &mut seed);
                let bytes = frame(true, Opcode::Binary, &payload, mask);
                let header_len = 2 + extended + if mask.is_some() { 4 } else { 0 };
                assert_eq!(bytes.len(), header_len + len);
                let outcome = run_whole(FrameReader::new(direction, Extensions::default()), &bytes);
                assert_eq!(outcome.error, None, "{direction:?} {len}");
                let expected = FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: Opcode::Binary,
                    mask,
                    payload_len: len as u64,
                    header_len,
                };
                assert_eq!(outcome.events[0], Seen::Header(expected));
                let Seen::Payload(span, true) = &outcome.events[1] else { panic!("{:?}", outcome.events) };
                assert_eq!(unmasked(span, mask), payload);
                assert_eq!(outcome.events.len(), 2);
                assert_eq!(outcome.forwarded, bytes);
            }
            // Header only: lengths no test could allocate; the payload is open-ended.
            for len in [1u64 << 32, u64::MAX >> 1] {
                let mask = mask_for(direction, &mut seed);
                let mut bytes = header_only(true, 0, Opcode::Binary, mask, len);
                let header_len = bytes.len();
                assert_eq!(header_len, if mask.is_some() { 14 } else { 10 });
                bytes.extend([0xAB; 1000]);
                let outcome = run_whole(FrameReader::new(direction, Extensions::default()), &bytes);
                let expected =
                    FrameHeader { fin: true, rsv: 0, opcode: Opcode::Binary, mask, payload_len: len, header_len };
                assert_eq!(outcome.events, [Seen::Header(expected), Seen::Payload(vec![0xAB; 1000], false)]);
                assert_eq!(outcome.error, None);
            }
        }
    }

    #[test]
    fn fragmented_message_with_interleaved_control_frames() {
        let mut seed = 3;
        let mut stream = Vec::new();
        let mut masks = Vec::new();
        for (fin, opcode, payload) in [
            (false, Opcode::Text, &b"frag"[..]),
            (true, Opcode::Ping, b"are you there"),
            (false, Opcode::Continuation, b"men"),
            (true, Opcode::Pong, b"yes"),
            (true, Opcode::Continuation, b"ted"),
        ] {
            let mask = mask_key(&mut seed);
            masks.push(mask);
            stream.extend(frame(fin, opcode, payload, Some(mask)));
        }
        let mut reader = client();
        let outcome = run(&mut reader, [&stream[..]]);
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.forwarded, stream);
        let kinds: Vec<String> = outcome
            .events
            .iter()
            .map(|event| match event {
                Seen::Header(h) => format!("{}{}", h.opcode, if h.fin { "" } else { "…" }),
                Seen::Payload(bytes, end) => format!("{}{}", bytes.len(), if *end { "." } else { "" }),
                Seen::Control(opcode, payload) => format!("{opcode}({})", String::from_utf8_lossy(payload)),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Text…",
                "4.",
                "Ping",
                "13.",
                "Ping(are you there)",
                "Continuation…",
                "3.",
                "Pong",
                "3.",
                "Pong(yes)",
                "Continuation",
                "3."
            ]
        );
        // The data spans are forwarded masked, and unmask to the message.
        let text: Vec<u8> = [(1, 0), (6, 2), (11, 4)]
            .iter()
            .flat_map(|&(i, m)| match &outcome.events[i] {
                Seen::Payload(bytes, _) => unmasked(bytes, Some(masks[m])),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(text, b"fragmented");
        assert!(!reader.in_message() && reader.at_frame_boundary());
    }

    #[test]
    fn split_reads_at_every_offset_match_a_whole_read() {
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            let stream = sample_stream(direction);
            let reader = FrameReader::new(direction, Extensions::default()).with_max_message(Some(1000));
            let whole = run_whole(reader.clone(), &stream);
            assert_eq!(whole.error, None);
            assert_eq!(whole.forwarded, stream);
            assert_eq!(whole.events.last(), Some(&Seen::Control(Opcode::Close, b"\x03\xe8bye".to_vec())));
            assert_eq!(whole.events.iter().filter(|e| matches!(e, Seen::Header(_))).count(), 7);
            for at in 0..=stream.len() {
                let (first, second) = stream.split_at(at);
                assert_eq!(run(&mut reader.clone(), [first, second]), whole, "{direction:?} split at {at}");
            }
            for first in 0..stream.len() {
                for second in [first + 1, first + 2, first + 13] {
                    let second = second.min(stream.len());
                    let parts = [&stream[..first], &stream[first..second], &stream[second..]];
                    assert_eq!(run(&mut reader.clone(), parts), whole, "{direction:?} split at {first}, {second}");
                }
            }
            assert_eq!(run(&mut reader.clone(), stream.chunks(1)), whole, "{direction:?} byte by byte");
        }
    }

    #[test]
    fn each_protocol_error_with_its_close_code() {
        use Direction::{ClientToServer as C, ServerToClient as S};
        use ProtocolError as E;
        let no = Extensions::default();
        let pmd = Extensions { permessage_deflate: true };
        let masked_close = |payload: &[u8]| frame(true, Opcode::Close, payload, Some(KEY));
        let cases: Vec<(Direction, Extensions, Vec<u8>, ProtocolError, u16)> = vec![
            (C, no, vec![0x81, 0x00], E::UnmaskedClientFrame, 1002),
            (S, no, vec![0x81, 0x80, 1, 2, 3, 4], E::MaskedServerFrame, 1002),
            (S, no, vec![0x83, 0x00], E::ReservedOpcode(3), 1002),
            (S, no, vec![0x87, 0x00], E::ReservedOpcode(7), 1002),
            (S, no, vec![0x8B, 0x00], E::ReservedOpcode(0xB), 1002),
            (S, no, vec![0x8F, 0x00], E::ReservedOpcode(0xF), 1002),
            (S, no, vec![0xC1, 0x00], E::ReservedBits { rsv: 0b100 }, 1002),
            (S, pmd, vec![0xA1, 0x00], E::ReservedBits { rsv: 0b010 }, 1002),
            (S, pmd, vec![0x91, 0x00], E::ReservedBits { rsv: 0b001 }, 1002),
            (S, pmd, vec![0xC9, 0x00], E::Rsv1NotFirstFrame { opcode: Opcode::Ping }, 1002),
            (S, pmd, vec![0x41, 0x00, 0xC0, 0x00], E::Rsv1NotFirstFrame { opcode: Opcode::Continuation }, 1002),
            (S, no, vec![0x89, 126, 0, 126], E::ControlTooLong { opcode: Opcode::Ping, len: 126 }, 1002),
            (S, no, vec![0x09, 0x00], E::FragmentedControl { opcode: Opcode::Ping }, 1002),
            (S, no, vec![0x08, 0x00], E::FragmentedControl { opcode: Opcode::Close }, 1002),
            (S, no, vec![0x80, 0x00], E::UnexpectedContinuation, 1002),
            (S, no, vec![0x81, 0x00, 0x80, 0x00], E::UnexpectedContinuation, 1002),
            (S, no, vec![0x01, 0x00, 0x82, 0x00], E::MessageInProgress { opcode: Opcode::Binary }, 1002),
            (S, no, vec![0x02, 0x00, 0x89, 0x00, 0x01, 0x00], E::MessageInProgress { opcode: Opcode::Text }, 1002),
            (S, no, vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0], E::LengthTopBit, 1002),
            (S, no, vec![0x82, 126, 0, 125], E::NonMinimalLength { len: 125, bytes: 2 }, 1002),
            (S, no, vec![0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], E::NonMinimalLength { len: 65535, bytes: 8 }, 1002),
            (S, no, vec![0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5], E::NonMinimalLength { len: 5, bytes: 8 }, 1002),
            (S, no, vec![0x88, 0x01, 0x03], E::CloseTooShort, 1002),
            (C, no, masked_close(&[0x03]), E::CloseTooShort, 1002),
            (S, no, vec![0x88, 0x02, 0x03, 0xED], E::InvalidCloseCode(1005), 1002),
            (C, no, masked_close(&1006u16.to_be_bytes()), E::InvalidCloseCode(1006), 1002),
            (S, no, vec![0x88, 0x04, 0x03, 0xE8, 0xC3, 0x28], E::CloseReasonNotUtf8, 1007),
            (C, no, masked_close(b"\x03\xe8ok\xff"), E::CloseReasonNotUtf8, 1007),
        ];
        for (direction, extensions, bytes, expected, code) in cases {
            let outcome = run_whole(FrameReader::new(direction, extensions), &bytes);
            assert_eq!(outcome.error, Some(expected), "{bytes:02x?}");
            assert_eq!(expected.close_code(), code);
            // Byte by byte too: every error is found the same way whatever the reads.
            assert_eq!(settled(run(&mut FrameReader::new(direction, extensions), bytes.chunks(1))), settled(outcome));
        }
        let too_big = run_whole(server().with_max_message(Some(10)), &[0x82, 11]);
        assert_eq!(too_big.error, Some(E::MessageTooBig { limit: 10 }));
        assert_eq!(E::MessageTooBig { limit: 10 }.close_code(), 1009);

        // Header errors are found at the second byte, before the rest of the header.
        let mut reader = server();
        assert_eq!(reader.feed(&[0x89]), Ok((1, None)));
        assert_eq!(reader.feed(&[0x7E]), Ok((1, None)));
        assert_eq!(reader.feed(&[0x00, 0x7E]), Err(E::ControlTooLong { opcode: Opcode::Ping, len: 126 }));
        let mut reader = server();
        assert_eq!(reader.feed(&[0x83]), Ok((1, None)));
        assert_eq!(reader.feed(&[0x00, 0x00]), Err(E::ReservedOpcode(3)));

        let all = [
            E::UnmaskedClientFrame,
            E::MaskedServerFrame,
            E::ReservedOpcode(3),
            E::ReservedBits { rsv: 2 },
            E::Rsv1NotFirstFrame { opcode: Opcode::Pong },
            E::ControlTooLong { opcode: Opcode::Close, len: 200 },
            E::FragmentedControl { opcode: Opcode::Close },
            E::UnexpectedContinuation,
            E::MessageInProgress { opcode: Opcode::Text },
            E::LengthTopBit,
            E::NonMinimalLength { len: 1, bytes: 2 },
            E::CloseTooShort,
            E::InvalidCloseCode(999),
            E::CloseReasonNotUtf8,
            E::MessageTooBig { limit: 1 },
        ];
        let messages: std::collections::HashSet<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), all.len());
        assert!(messages.iter().all(|m| m.len() > 20));
    }

    #[test]
    fn close_codes() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999] {
            assert!(is_valid_close_code(code), "{code}");
            assert_eq!(parse_close(&code.to_be_bytes()), Ok(Some((code, ""))));
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, u16::MAX] {
            assert!(!is_valid_close_code(code), "{code}");
            assert_eq!(parse_close(&code.to_be_bytes()), Err(ProtocolError::InvalidCloseCode(code)));
        }
        assert_eq!(parse_close(b""), Ok(None));
        assert_eq!(parse_close(b"\x03"), Err(ProtocolError::CloseTooShort));
        assert_eq!(parse_close(b"\x03\xe8caf\xc3\xa9"), Ok(Some((1000, "café"))));
        assert_eq!(parse_close(b"\x03\xe8caf\xc3"), Err(ProtocolError::CloseReasonNotUtf8));
        let long = [b'a'; 126];
        assert_eq!(parse_close(&long), Err(ProtocolError::ControlTooLong { opcode: Opcode::Close, len: 126 }));
    }

    #[test]
    fn an_invalid_close_is_refused_as_soon_as_its_bytes_show_it() {
        // The code, at its second byte, before the reason.
        let bytes = frame(true, Opcode::Close, b"\x03\xedbye", Some(KEY));
        let mut reader = client();
        assert!(matches!(reader.feed(&bytes[..7]), Ok((6, Some(Event::Header(_))))));
        assert_eq!(reader.feed(&bytes[6..7]), Ok((1, Some(Event::Payload { len: 1, end_of_frame: false }))));
        assert_eq!(reader.feed(&bytes[7..8]), Err(ProtocolError::InvalidCloseCode(1005)));
        // A reason that is not UTF-8, before the span with its last byte.
        let bytes = frame(true, Opcode::Close, b"\x03\xe8caf\xc3", None);
        let mut reader = server();
        assert!(matches!(reader.feed(&bytes), Ok((2, Some(Event::Header(_))))));
        assert_eq!(reader.feed(&bytes[2..6]), Ok((4, Some(Event::Payload { len: 4, end_of_frame: false }))));
        assert_eq!(reader.feed(&bytes[6..]), Err(ProtocolError::CloseReasonNotUtf8));
        // A 1-byte payload, at the header.
        assert_eq!(server().feed(&[0x88, 0x01]), Err(ProtocolError::CloseTooShort));
    }

    #[test]
    fn errors_are_sticky() {
        let mut reader = client();
        let error = reader.feed(&[0x81, 0x00]).unwrap_err();
        assert_eq!(error, ProtocolError::UnmaskedClientFrame);
        assert_eq!(reader.feed(&frame(true, Opcode::Text, b"ok", Some(KEY))), Err(error));
        assert_eq!(reader.feed(&[]), Err(error));
    }

    #[test]
    fn rsv1_with_permessage_deflate_on_first_frames_only() {
        let mut stream = header_only(false, 0b100, Opcode::Text, None, 2);
        stream.extend(b"ab");
        stream.extend(header_only(true, 0, Opcode::Continuation, None, 1));
        stream.extend(b"c");
        stream.extend(header_only(true, 0b100, Opcode::Binary, None, 0));
        let outcome = run_whole(deflate(Direction::ServerToClient), &stream);
        assert_eq!(outcome.error, None);
        let rsv: Vec<u8> = outcome
            .events
            .iter()
            .filter_map(|e| match e {
                Seen::Header(h) => Some(h.rsv),
                _ => None,
            })
            .collect();
        assert_eq!(rsv, [0b100, 0, 0b100]);
        assert_eq!(run_whole(server(), &stream).error, Some(ProtocolError::ReservedBits { rsv: 0b100 }));
    }

    #[test]
    fn max_message_fails_at_the_crossing_header() {
        let limit = 100;
        let fragments = |sizes: [usize; 3]| {
            let mut stream = Vec::new();
            let mut starts = Vec::new();
            for (i, size) in sizes.into_iter().enumerate() {
                let opcode = if i == 0 { Opcode::Binary } else { Opcode::Continuation };
                starts.push(stream.len());
                stream.extend(frame(i == 2, opcode, &vec![i as u8; size], None));
                // Control frames in between do not count.
                encode_ping(&[9; 125], None, &mut stream);
            }
            (stream, starts)
        };
        let reader = server().with_max_message(Some(limit));

        let (over, starts) = fragments([40, 40, 21]);
        let outcome = run_whole(reader.clone(), &over);
        assert_eq!(outcome.error, Some(ProtocolError::MessageTooBig { limit }));
        // Everything before the third header was forwarded, nothing of the third frame.
        assert_eq!(outcome.forwarded, over[..starts[2]]);
        let mut stepwise = reader.clone();
        assert_eq!(run(&mut stepwise, [&over[..starts[2]]]).error, None);
        assert_eq!(stepwise.feed(&over[starts[2]..starts[2] + 1]), Ok((1, None)));
        assert_eq!(stepwise.feed(&over[starts[2] + 1..]), Err(ProtocolError::MessageTooBig { limit }));

        let (exact, _) = fragments([40, 40, 20]);
        let mut twice = exact.clone();
        twice.extend(&exact); // the count starts over with each message
        let outcome = run_whole(reader.clone(), &twice);
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.forwarded, twice);

        assert_eq!(
            run_whole(reader.clone(), &frame(true, Opcode::Text, &[0; 101], None)).error,
            Some(ProtocolError::MessageTooBig { limit })
        );
        assert_eq!(run_whole(reader, &frame(true, Opcode::Text, &[0; 100], None)).error, None);
        // Without a limit, the largest length passes (a header only here).
        assert_eq!(run_whole(server(), &header_only(true, 0, Opcode::Binary, None, u64::MAX >> 1)).error, None);
    }

    #[test]
    fn encode_then_parse_round_trips() {
        for (mask, reader) in [(None, server()), (Some(KEY), client())] {
            let mut stream = Vec::new();
            encode_close(4001, "going for coffee", mask, &mut stream);
            encode_ping(b"\x00\x01keepalive", mask, &mut stream);
            encode_pong(b"", mask, &mut stream);
            encode_close(CLOSE_GOING_AWAY, "", mask, &mut stream);
            let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
            encode_frame(true, Opcode::Binary, &big, mask, &mut stream);
            let outcome = run_whole(reader, &stream);
            assert_eq!(outcome.error, None);
            assert_eq!(outcome.forwarded, stream);
            let controls: Vec<(Opcode, Vec<u8>)> = outcome
                .events
                .iter()
                .filter_map(|e| match e {
                    Seen::Control(opcode, payload) => Some((*opcode, payload.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(
                controls,
                [
                    (Opcode::Close, b"\x0f\xa1going for coffee".to_vec()),
                    (Opcode::Ping, b"\x00\x01keepalive".to_vec()),
                    (Opcode::Pong, vec![]),
                    (Opcode::Close, b"\x03\xe9".to_vec()),
                ]
            );
            let Some(Seen::Payload(span, true)) = outcome.events.last() else { panic!() };
            assert_eq!(unmasked(span, mask), big);
        }

        let mut reader = client();
        let mut bytes = Vec::new();
        encode_close(CLOSE_NORMAL, "done", Some(KEY), &mut bytes);
        assert_ne!(&bytes[6..], b"\x03\xe8done", "the payload goes out masked");
        let mut pos = 0;
        let control = loop {
            let (consumed, event) = reader.feed(&bytes[pos..]).unwrap();
            pos += consumed;
            if let Some(Event::Control(control)) = event {
                break control;
            }
        };
        assert_eq!(pos, bytes.len());
        assert_eq!(control.close(), Some((1000, "done")));
    }

    #[test]
    fn close_reason_truncated_at_a_char_boundary() {
        let cases = [
            ("é".repeat(70), "é".repeat(61)), // 140 bytes: 123 would cut an é, so 122
            ("a".repeat(200), "a".repeat(123)),
            ("a".repeat(123), "a".repeat(123)),
            (format!("{}€", "a".repeat(121)), "a".repeat(121)), // € is 3 bytes: 121 + 3 > 123
            ("short".to_string(), "short".to_string()),
        ];
        for (reason, expected) in cases {
            let mut bytes = Vec::new();
            encode_close(CLOSE_NORMAL, &reason, None, &mut bytes);
            assert!(bytes.len() <= 2 + MAX_CONTROL_PAYLOAD);
            assert_eq!(parse_close(&bytes[2..]), Ok(Some((CLOSE_NORMAL, expected.as_str()))));
            let outcome = run_whole(server(), &bytes);
            assert_eq!(outcome.error, None);
        }
    }

    #[test]
    #[should_panic(expected = "at most 125")]
    fn encoding_an_oversized_ping_panics() {
        encode_ping(&[0; 126], None, &mut Vec::new());
    }

    #[test]
    #[should_panic(expected = "must have FIN")]
    fn encoding_a_fragmented_control_frame_panics() {
        encode_frame(false, Opcode::Pong, b"", None, &mut Vec::new());
    }

    #[test]
    fn apply_mask_matches_bytewise_masking() {
        let mut seed = 11;
        for len in 0..=40 {
            for offset in 0..=9 {
                let key = mask_key(&mut seed);
                let data: Vec<u8> = (0..len).map(|_| splitmix64(&mut seed) as u8).collect();
                let mut fast = data.clone();
                apply_mask(&mut fast, key, offset);
                let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ key[(offset + i) % 4]).collect();
                assert_eq!(fast, slow, "len {len} offset {offset}");
                // Masking in two pieces at their offsets equals masking at once.
                for cut in 0..=len {
                    let mut pieces = data.clone();
                    let (head, tail) = pieces.split_at_mut(cut);
                    apply_mask(head, key, offset);
                    apply_mask(tail, key, offset + cut);
                    assert_eq!(pieces, slow);
                }
                apply_mask(&mut fast, key, offset);
                assert_eq!(fast, data, "masking twice restores");
            }
        }
    }

    #[test]
    fn mask_keys_are_deterministic_per_seed() {
        let (mut a, mut b) = (42, 42);
        let keys: Vec<[u8; 4]> = (0..100).map(|_| mask_key(&mut a)).collect();
        assert_eq!(keys, (0..100).map(|_| mask_key(&mut b)).collect::<Vec<_>>());
        let distinct: std::collections::HashSet<[u8; 4]> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), 100);
        assert_ne!(mask_key(&mut 1), mask_key(&mut 2));
    }

    #[test]
    fn boundary_and_message_state() {
        let mut reader = server();
        assert!(reader.at_frame_boundary() && !reader.in_message() && reader.header_bytes().is_empty());
        assert_eq!(reader.feed(&[0x01]), Ok((1, None)));
        assert!(!reader.at_frame_boundary());
        assert!(matches!(reader.feed(&[0x03, b'a']), Ok((1, Some(Event::Header(_))))));
        assert_eq!(reader.header_bytes(), [0x01, 0x03]);
        assert!(reader.in_message() && !reader.at_frame_boundary());
        assert_eq!(reader.feed(b"abc"), Ok((3, Some(Event::Payload { len: 3, end_of_frame: true }))));
        assert!(reader.at_frame_boundary() && reader.in_message() && reader.header_bytes().is_empty());
        // An empty frame: its empty span and Control need no input.
        assert!(matches!(reader.feed(&[0x89, 0x00, 0xFF]), Ok((2, Some(Event::Header(_))))));
        assert!(reader.at_frame_boundary());
        assert_eq!(reader.feed(&[]), Ok((0, Some(Event::Payload { len: 0, end_of_frame: true }))));
        let Ok((0, Some(Event::Control(ping)))) = reader.feed(&[]) else { panic!() };
        assert_eq!((ping.opcode(), ping.payload(), ping.close()), (Opcode::Ping, &b""[..], None));
        assert_eq!(reader.feed(&[]), Ok((0, None)));
        assert_eq!(reader.direction(), Direction::ServerToClient);
    }

    #[test]
    fn reader_is_small_and_fixed_size() {
        // 208 bytes today: two per relayed connection must stay small next to rustls's state.
        assert!(std::mem::size_of::<FrameReader>() <= 224, "{}", std::mem::size_of::<FrameReader>());
    }

    /// Pseudo-random input: plain noise, or a valid stream with a few bytes changed (to get past the
    /// first header more often than noise does).
    fn fuzz_input(seed: &mut u64, direction: Direction) -> Vec<u8> {
        let mut next = || splitmix64(seed);
        let len = (next() % 200) as usize;
        match next() % 3 {
            0 => (0..len).map(|_| next() as u8).collect(),
            1 => {
                let mut stream = sample_stream(direction);
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % stream.len();
                    stream[at] ^= 1 << (next() % 8);
                }
                stream
            }
            _ => {
                let mut stream = Vec::new();
                while stream.len() < len {
                    let opcode = Opcode::from_u8([0, 1, 2, 8, 9, 10][(next() % 6) as usize]).unwrap();
                    let fin = opcode.is_control() || next().is_multiple_of(2);
                    let size = (next() % 130) as usize;
                    let size = if opcode.is_control() { size.min(125) } else { size };
                    let payload: Vec<u8> = (0..size).map(|_| next() as u8).collect();
                    let mask = (next() % 8 != 0).then(|| (next() as u32).to_le_bytes()).filter(|_| direction.masked());
                    encode_frame(fin, opcode, &payload, mask, &mut stream);
                }
                stream
            }
        }
    }

    #[test]
    fn fuzz_never_panics_and_stays_bounded() {
        let mut seed = 0x5EED;
        for iteration in 0..2000 {
            let direction = if splitmix64(&mut seed).is_multiple_of(2) {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            let extensions = Extensions { permessage_deflate: splitmix64(&mut seed).is_multiple_of(2) };
            let limit = (splitmix64(&mut seed).is_multiple_of(2)).then(|| splitmix64(&mut seed) % 300);
            let reader = FrameReader::new(direction, extensions).with_max_message(limit);
            let input = fuzz_input(&mut seed, direction);
            let whole = run_whole(reader.clone(), &input);
            assert!(input.starts_with(&whole.forwarded), "iteration {iteration}");
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let size = (1 + splitmix64(&mut seed) % 17).min(rest.len() as u64) as usize;
                let (chunk, tail) = rest.split_at(size);
                chunks.push(chunk);
                rest = tail;
            }
            assert_eq!(
                settled(run(&mut reader.clone(), chunks)),
                settled(whole),
                "iteration {iteration}: {input:02x?}"
            );
        }
    }
}
