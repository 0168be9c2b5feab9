//! The receiving side of the PROXY protocol, v1 (text) and v2 (binary), as HAProxy specifies it: the
//! header a load balancer puts before the client's first byte to say whom the connection is from.
//!
//! ```text
//!   read_header  read until parse() says Complete, all within one timeout
//!   parse        "PROXY " ─► v1: one CRLF-terminated line of at most 107 bytes
//!                \r\n\r\n\0\r\nQUIT\n ─► v2: 16-byte header + address block (TLVs skipped)
//!                anything else ─► refused at the first byte that cannot start a header
//! ```
//!
//! With the PROXY protocol on, every connection must start with a header: a connection without one is
//! refused, never served with the socket peer as the client, or anyone reaching the listener directly
//! could pass for a load balancer's client just by leaving the header out (and one sending its own
//! header is only believable because the listener is reachable from the load balancer alone).

use bytes::{Buf, BytesMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest v1 header, CRLF included (the spec's worst case: `PROXY UNKNOWN` with two full IPv6
/// addresses and ports).
pub const V1_MAX_LEN: usize = 107;

/// Longest v2 header this side accepts, the 16 fixed bytes included. The spec allows 16 + 65535; why
/// less: the address blocks take at most 216 bytes and the TLVs load balancers send (AWS, GCP, Azure
/// endpoint ids, HAProxy's SSL and unique-id) a few hundred more, while every byte allowed is memory an
/// unauthenticated peer can make each connection hold. Larger headers are refused, not truncated.
pub const V2_MAX_LEN: usize = 4096;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED_LEN: usize = 16;

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A header may still come: read more.
    Incomplete,
    /// A whole header of `consumed` bytes. `source`: the client's address, or `None` when the header
    /// names none (v1 `UNKNOWN`, v2 `LOCAL`, unspecified or Unix addresses): use the socket peer.
    Complete { consumed: usize, source: Option<SocketAddr> },
}

/// Why a connection's PROXY protocol header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyProtocolError {
    #[error("no PROXY protocol header (the connection started with \"{start}\")")]
    NotProxy { start: String },
    #[error("PROXY v1 header has no CRLF within {V1_MAX_LEN} bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 header: {0}")]
    V1Malformed(&'static str),
    #[error("unknown PROXY v1 protocol \"{0}\" (expected TCP4, TCP6 or UNKNOWN)")]
    V1Protocol(String),
    #[error("invalid PROXY v1 {role} address \"{value}\" for {protocol}")]
    V1Address { role: &'static str, protocol: &'static str, value: String },
    #[error("invalid PROXY v1 {role} port \"{value}\" (decimal 0-65535 without sign or leading zeros)")]
    V1Port { role: &'static str, value: String },
    #[error("unsupported PROXY v2 version {0} (expected 2)")]
    V2Version(u8),
    #[error("unknown PROXY v2 command {0} (expected 0 LOCAL or 1 PROXY)")]
    V2Command(u8),
    #[error("unsupported PROXY v2 address family and transport 0x{0:02x} (a TCP listener takes 0x11 or 0x21)")]
    V2Family(u8),
    #[error("PROXY v2 header of {0} bytes is larger than the {V2_MAX_LEN} accepted")]
    V2TooLong(usize),
    #[error("PROXY v2 address block of {len} bytes is shorter than the {needed} its family needs")]
    V2Short { len: usize, needed: usize },
    #[error("PROXY protocol header not complete within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before the PROXY protocol header was complete ({0} bytes received)")]
    Closed(usize),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY protocol header at the start of `io` into `buf` and removes it from there; bytes
/// that came after it (the start of the HTTP request or TLS ClientHello) stay in `buf` for the caller.
/// The whole header must arrive within `timeout` (a slow sender cannot hold the connection open
/// longer), and the reads are few: each adds at least one byte and [`parse`] decides within
/// [`V2_MAX_LEN`] bytes.
pub async fn read_header<R>(
    io: &mut R,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyProtocolError>
where
    R: AsyncRead + Unpin,
{
    match tokio::time::timeout(timeout, read_until_parsed(io, buf)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyProtocolError::Timeout(timeout)),
    }
}

async fn read_until_parsed<R>(io: &mut R, buf: &mut BytesMut) -> Result<Option<SocketAddr>, ProxyProtocolError>
where
    R: AsyncRead + Unpin,
{
    loop {
        if let Parsed::Complete { consumed, source } = parse(buf)? {
            buf.advance(consumed);
            return Ok(source);
        }
        // why 1 KiB: a v1 header and what usually follows it (a request head) in one read, without
        // allocating for the rare large v2 header up front.
        buf.reserve(1024);
        if io.read_buf(buf).await? == 0 {
            return Err(ProxyProtocolError::Closed(buf.len()));
        }
    }
}

/// Parses the PROXY protocol header at the start of `buf`, without side effects: [`read_header`]'s
/// decisions, testable without I/O. Refuses as soon as `buf` cannot start a valid header, so garbage
/// is not waited on.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    let v1 = buf.len().min(V1_PREFIX.len());
    if buf[..v1] == V1_PREFIX[..v1] {
        return if v1 < V1_PREFIX.len() { Ok(Parsed::Incomplete) } else { parse_v1(buf) };
    }
    let v2 = buf.len().min(V2_SIGNATURE.len());
    if buf[..v2] == V2_SIGNATURE[..v2] {
        return if v2 < V2_SIGNATURE.len() { Ok(Parsed::Incomplete) } else { parse_v2(buf) };
    }
    Err(ProxyProtocolError::NotProxy { start: buf[..buf.len().min(16)].escape_ascii().to_string() })
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX_LEN { Err(ProxyProtocolError::V1TooLong) } else { Ok(Parsed::Incomplete) };
    };
    let Some(line) = window[..lf].strip_suffix(b"\r") else {
        return Err(ProxyProtocolError::V1Malformed("line ends in LF without CR"));
    };
    let line = std::str::from_utf8(line).map_err(|_| ProxyProtocolError::V1Malformed("not ASCII text"))?;
    if !line.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ProxyProtocolError::V1Malformed("control characters in the line"));
    }
    let consumed = lf + 1;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY", checked by parse()
    let protocol = fields.next().unwrap_or("");
    let (protocol, is_v4) = match protocol {
        // why anything may follow UNKNOWN: the spec tells receivers to ignore the rest of that line.
        "UNKNOWN" => return Ok(Parsed::Complete { consumed, source: None }),
        "TCP4" => ("TCP4", true),
        "TCP6" => ("TCP6", false),
        other => return Err(ProxyProtocolError::V1Protocol(other.escape_default().to_string())),
    };
    let fields: Vec<&str> = fields.collect();
    let [src, dst, src_port, dst_port] = fields[..] else {
        return Err(ProxyProtocolError::V1Malformed(
            "expected \"PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>\" with single spaces",
        ));
    };
    let src = v1_address(src, is_v4, protocol, "source")?;
    v1_address(dst, is_v4, protocol, "destination")?;
    let src_port = v1_port(src_port, "source")?;
    v1_port(dst_port, "destination")?;
    Ok(Parsed::Complete { consumed, source: Some(SocketAddr::new(src, src_port)) })
}

fn v1_address(
    value: &str,
    is_v4: bool,
    protocol: &'static str,
    role: &'static str,
) -> Result<IpAddr, ProxyProtocolError> {
    let parsed =
        if is_v4 { value.parse::<Ipv4Addr>().map(IpAddr::V4) } else { value.parse::<Ipv6Addr>().map(IpAddr::V6) };
    parsed.map_err(|_| ProxyProtocolError::V1Address { role, protocol, value: value.to_string() })
}

/// Why strict: `u16::from_str` also takes `+80`, and no sender writes signs or leading zeros, so
/// accepting them would only widen what a forged header can look like.
fn v1_port(value: &str, role: &'static str) -> Result<u16, ProxyProtocolError> {
    let canonical = !value.is_empty()
        && value.len() <= 5
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    let port = if canonical { value.parse::<u16>().ok() } else { None };
    port.ok_or_else(|| ProxyProtocolError::V1Port { role, value: value.to_string() })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    if buf.len() < V2_FIXED_LEN {
        // The version and command can be refused before the length arrives.
        if let Some(&ver_cmd) = buf.get(12) {
            check_v2_version_command(ver_cmd)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let local = check_v2_version_command(buf[12])?;
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let consumed = V2_FIXED_LEN + len;
    if consumed > V2_MAX_LEN {
        return Err(ProxyProtocolError::V2TooLong(consumed));
    }
    // why the family is checked before the block arrives: a wrong one is refused without waiting.
    // LOCAL (health checks by the load balancer itself) carries no client: the spec says to ignore
    // its family and block entirely.
    let needed = if local { 0 } else { v2_block_len(family)? };
    if len < needed {
        return Err(ProxyProtocolError::V2Short { len, needed });
    }
    if buf.len() < consumed {
        return Ok(Parsed::Incomplete);
    }
    if local {
        return Ok(Parsed::Complete { consumed, source: None });
    }
    let block = &buf[V2_FIXED_LEN..consumed];
    let source = match family {
        0x11 => {
            let ip: [u8; 4] = block[0..4].try_into().expect("4 bytes");
            Some(SocketAddr::new(IpAddr::from(ip), u16::from_be_bytes([block[8], block[9]])))
        }
        0x21 => {
            let ip: [u8; 16] = block[0..16].try_into().expect("16 bytes");
            Some(SocketAddr::new(IpAddr::from(ip), u16::from_be_bytes([block[32], block[33]])))
        }
        _ => None,
    };
    // Whatever follows the addresses (TLVs) is skipped with the rest of the block.
    Ok(Parsed::Complete { consumed, source })
}

/// Checks the version/command byte; true for LOCAL.
fn check_v2_version_command(ver_cmd: u8) -> Result<bool, ProxyProtocolError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyProtocolError::V2Version(ver_cmd >> 4));
    }
    match ver_cmd & 0x0f {
        0 => Ok(true),
        1 => Ok(false),
        command => Err(ProxyProtocolError::V2Command(command)),
    }
}

/// Address block length a PROXY command's family/transport byte needs. AF_UNSPEC and AF_UNIX carry no
/// client IP and need nothing (the socket peer is used). Why UDP (0x12, 0x22) and unspecified
/// transports over IP are refused rather than taken as "no address": on a TCP listener they mean a
/// misconfigured sender, and falling back to the peer would silently give every client the load
/// balancer's address.
fn v2_block_len(family: u8) -> Result<usize, ProxyProtocolError> {
    match family {
        0x00..=0x02 | 0x30..=0x32 => Ok(0),
        0x11 => Ok(12),
        0x21 => Ok(36),
        other => Err(ProxyProtocolError::V2Family(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        header.extend_from_slice(block);
        header
    }

    fn v4_block() -> Vec<u8> {
        let mut block = vec![192, 0, 2, 7, 10, 0, 0, 1];
        block.extend_from_slice(&51234u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block
    }

    fn complete(input: &[u8]) -> (usize, Option<SocketAddr>) {
        match parse(input) {
            Ok(Parsed::Complete { consumed, source }) => (consumed, source),
            other => panic!("expected a complete header from {:?}, got {other:?}", input.escape_ascii().to_string()),
        }
    }

    fn refused(input: &[u8]) -> ProxyProtocolError {
        match parse(input) {
            Err(error) => error,
            Ok(parsed) => panic!("expected {:?} refused, got {parsed:?}", input.escape_ascii().to_string()),
        }
    }

    #[test]
    fn v1_tcp4() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\n";
        assert_eq!(complete(line), (line.len(), Some("192.0.2.7:51234".parse().unwrap())));
    }

    #[test]
    fn v1_tcp6() {
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
        assert_eq!(complete(line), (line.len(), Some("[2001:db8::7]:65535".parse().unwrap())));
    }

    #[test]
    fn v1_unknown_names_no_client() {
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (15, None));
        let line = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(complete(line), (line.len(), None));
    }

    #[test]
    fn bytes_after_a_v1_header_are_not_consumed() {
        let input = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n";
        let (consumed, _) = complete(input);
        assert_eq!(&input[consumed..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn partial_headers_are_incomplete() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\n";
        for end in 1..line.len() {
            assert_eq!(parse(&line[..end]).unwrap(), Parsed::Incomplete, "{end} bytes");
        }
        let header = v2(1, 0x11, &v4_block());
        for end in 1..header.len() {
            assert_eq!(parse(&header[..end]).unwrap(), Parsed::Incomplete, "{end} bytes");
        }
        assert_eq!(parse(b"").unwrap(), Parsed::Incomplete);
    }

    #[test]
    fn plain_http_tls_and_garbage_are_refused_at_once() {
        let error = refused(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            error.to_string(),
            "no PROXY protocol header (the connection started with \"GET / HTTP/1.1\\r\\n\")"
        );
        assert!(matches!(refused(b"\x16\x03\x01\x02\x00"), ProxyProtocolError::NotProxy { .. }));
        assert!(matches!(refused(b"G"), ProxyProtocolError::NotProxy { .. }));
        assert!(matches!(refused(b"PROXZ"), ProxyProtocolError::NotProxy { .. }));
        assert!(matches!(refused(b"\r\n\r\n\0\r\nQUIX"), ProxyProtocolError::NotProxy { .. }));
        assert!(matches!(refused(b"proxy TCP4"), ProxyProtocolError::NotProxy { .. }));
    }

    #[test]
    fn oversized_v1_lines_are_refused() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LEN, b'a');
        assert!(matches!(refused(&line), ProxyProtocolError::V1TooLong));
        // 107 bytes with the CRLF is still fine.
        line.truncate(V1_MAX_LEN - 2);
        line.extend_from_slice(b"\r\n");
        assert_eq!(complete(&line), (V1_MAX_LEN, None));
    }

    #[test]
    fn malformed_v1_lines_are_refused() {
        let cases: &[&[u8]] = &[
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\n",
            b"PROXY TCP4  192.0.2.7 10.0.0.1 51234 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443 \r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443 1\r\n",
            b"PROXY TCP4\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 192.0.2.7\t10.0.0.1 51234 443\r\n",
            b"PROXY TCP4 192.0.2.\xff 10.0.0.1 51234 443\r\n",
        ];
        for case in cases {
            let error = refused(case);
            assert!(
                matches!(error, ProxyProtocolError::V1Malformed(_) | ProxyProtocolError::V1Protocol(_)),
                "{:?}: {error}",
                case.escape_ascii().to_string()
            );
        }
        assert!(matches!(refused(b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n"), ProxyProtocolError::V1Protocol(_)));
    }

    #[test]
    fn v1_addresses_must_match_the_family() {
        let cases: &[(&[u8], &str)] = &[
            (b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n", "source"),
            (b"PROXY TCP4 192.0.2.7 ::1 1 2\r\n", "destination"),
            (b"PROXY TCP6 192.0.2.7 ::1 1 2\r\n", "source"),
            (b"PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n", "source"),
            (b"PROXY TCP4 192.0.2 10.0.0.1 1 2\r\n", "source"),
            (b"PROXY TCP4 192.0.2.07 10.0.0.1 1 2\r\n", "source"),
            (b"PROXY TCP6 [::1] ::1 1 2\r\n", "source"),
        ];
        for (case, which) in cases {
            match refused(case) {
                ProxyProtocolError::V1Address { role, .. } => assert_eq!(role, *which),
                error => panic!("{:?}: {error}", case.escape_ascii().to_string()),
            }
        }
        let error = refused(b"PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n");
        assert_eq!(error.to_string(), "invalid PROXY v1 source address \"1.2.3\" for TCP4");
    }

    #[test]
    fn v1_ports_must_be_plain_decimal() {
        for port in ["+80", "-1", "65536", "080", "00", "8a", "", "123456", "0x50"] {
            let line = format!("PROXY TCP4 192.0.2.7 10.0.0.1 {port} 443\r\n");
            assert!(matches!(refused(line.as_bytes()), ProxyProtocolError::V1Port { role: "source", .. }), "{port:?}");
            let line = format!("PROXY TCP4 192.0.2.7 10.0.0.1 443 {port}\r\n");
            let error = refused(line.as_bytes());
            assert!(matches!(error, ProxyProtocolError::V1Port { role: "destination", .. }), "{port:?}");
        }
        assert_eq!(complete(b"PROXY TCP4 1.2.3.4 1.2.3.4 0 65535\r\n").1, Some("1.2.3.4:0".parse().unwrap()));
    }

    #[test]
    fn v2_proxy_ipv4_with_tlvs() {
        let mut block = v4_block();
        // PP2_TYPE_AUTHORITY "example.com" and a NOOP TLV: skipped.
        block.extend_from_slice(&[0x02, 0x00, 0x0b]);
        block.extend_from_slice(b"example.com");
        block.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
        let header = v2(1, 0x11, &block);
        assert_eq!(complete(&header), (header.len(), Some("192.0.2.7:51234".parse().unwrap())));
    }

    #[test]
    fn v2_proxy_ipv6() {
        let src: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut block = src.octets().to_vec();
        block.extend_from_slice(&dst.octets());
        block.extend_from_slice(&4000u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block.extend_from_slice(&[0xea, 0x00, 0x04, 1, 2, 3, 4]);
        let header = v2(1, 0x21, &block);
        assert_eq!(complete(&header), (header.len(), Some("[2001:db8::7]:4000".parse().unwrap())));
    }

    #[test]
    fn v2_local_unspec_and_unix_name_no_client() {
        // LOCAL ignores whatever family and block it carries.
        let header = v2(0, 0x11, &v4_block());
        assert_eq!(complete(&header), (header.len(), None));
        assert_eq!(complete(&v2(0, 0x00, &[])), (16, None));
        assert_eq!(complete(&v2(0, 0x55, &[])), (16, None));
        assert_eq!(complete(&v2(1, 0x00, &[])), (16, None));
        assert_eq!(complete(&v2(1, 0x31, &[0; 216])), (16 + 216, None));
    }

    #[test]
    fn bytes_after_a_v2_header_are_not_consumed() {
        let mut input = v2(1, 0x11, &v4_block());
        input.extend_from_slice(b"\x16\x03\x01hello");
        let (consumed, source) = complete(&input);
        assert_eq!(&input[consumed..], b"\x16\x03\x01hello");
        assert!(source.is_some());
    }

    #[test]
    fn bad_v2_headers_are_refused() {
        let mut header = v2(1, 0x11, &v4_block());
        header[12] = 0x11;
        assert!(matches!(refused(&header), ProxyProtocolError::V2Version(1)));
        assert!(matches!(refused(&header[..13]), ProxyProtocolError::V2Version(1)), "before the length arrives");
        header[12] = 0x22;
        assert!(matches!(refused(&header), ProxyProtocolError::V2Command(2)));
        for family in [0x12, 0x22, 0x10, 0x20, 0x13, 0x41] {
            assert!(matches!(refused(&v2(1, family, &[0; 36])), ProxyProtocolError::V2Family(f) if f == family));
        }
        assert!(matches!(refused(&v2(1, 0x11, &[0; 11])), ProxyProtocolError::V2Short { len: 11, needed: 12 }));
        assert!(matches!(refused(&v2(1, 0x21, &[0; 35])), ProxyProtocolError::V2Short { len: 35, needed: 36 }));
        // Too long is known from the fixed header alone.
        let mut fixed = v2(1, 0x11, &[]);
        fixed[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(refused(&fixed), ProxyProtocolError::V2TooLong(65551)));
        let largest = v2(1, 0x11, &vec![0; V2_MAX_LEN - 16]);
        assert_eq!(complete(&largest).0, V2_MAX_LEN);
    }

    #[tokio::test]
    async fn read_header_keeps_what_follows() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        let source = read_header(&mut server, &mut buf, Duration::from_secs(5)).await.unwrap();
        assert_eq!(source, Some("192.0.2.7:51234".parse().unwrap()));
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn read_header_over_many_small_writes_on_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut block = v4_block();
        block.extend_from_slice(&[0x02, 0x00, 0x03, b'a', b'b', b'c']);
        let mut input = v2(1, 0x11, &block);
        input.extend_from_slice(b"\x16\x03\x01rest");
        let writer = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            for chunk in input.chunks(3) {
                stream.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            stream
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let source = read_header(&mut stream, &mut buf, Duration::from_secs(5)).await.unwrap();
        assert_eq!(source, Some("192.0.2.7:51234".parse().unwrap()));
        let _writer = writer.await.unwrap();
        // The rest may still be on its way; read it all (bounded by the write count and a timeout).
        let want = b"\x16\x03\x01rest".len();
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            while buf.len() < want {
                assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0, "closed early");
            }
        });
        rest.await.unwrap();
        assert_eq!(&buf[..], b"\x16\x03\x01rest");
    }

    #[tokio::test]
    async fn read_header_over_byte_sized_writes_v1() {
        let (mut client, mut server) = tokio::io::duplex(1);
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\nX";
        let writer = tokio::spawn(async move {
            for byte in line {
                client.write_all(&[*byte]).await.unwrap();
            }
            client
        });
        let mut buf = BytesMut::new();
        let source = read_header(&mut server, &mut buf, Duration::from_secs(5)).await.unwrap();
        assert_eq!(source, Some("[2001:db8::7]:4000".parse().unwrap()));
        let _client = writer.await.unwrap();
        if buf.is_empty() {
            server.read_buf(&mut buf).await.unwrap();
        }
        assert_eq!(&buf[..], b"X");
    }

    #[tokio::test]
    async fn a_stalled_header_times_out() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(b"PROXY TCP4 192.0.2.7 10.0").await.unwrap();
        let mut buf = BytesMut::new();
        let started = std::time::Instant::now();
        let error = read_header(&mut server, &mut buf, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(error, ProxyProtocolError::Timeout(_)));
        assert_eq!(error.to_string(), "PROXY protocol header not complete within 200ms");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(190) && waited < Duration::from_secs(3), "{waited:?}");
        drop(client);
    }

    #[tokio::test]
    async fn a_connection_closed_mid_header_or_without_one_is_refused() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(b"PROXY TCP4 1.2").await.unwrap();
        drop(client);
        let mut buf = BytesMut::new();
        let error = read_header(&mut server, &mut buf, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(error, ProxyProtocolError::Closed(14)), "{error}");

        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        let error = read_header(&mut server, &mut buf, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(error, ProxyProtocolError::NotProxy { .. }), "{error}");
    }
}
