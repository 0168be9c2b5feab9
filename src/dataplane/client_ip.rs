//! Who the client is when wsgate sits behind other proxies: `--trusted-proxies` and `X-Forwarded-For`.
//!
//! ```text
//!   client ──► proxy1 ──► proxy2 ──► wsgate        X-Forwarded-For: client, proxy1   (peer: proxy2)
//!                                                  walk right to left, skip trusted hops ──► client
//! ```
//!
//! Every proxy appends the address it received the request from, so only the entries right of the
//! first untrusted hop were written by proxies we trust; anything further left could be forged by the
//! client. That is why the walk starts at the right, why a peer that is not trusted is believed over
//! any header, and why an entry that cannot be read ends the walk instead of being skipped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub use crate::routes::cidr::{Cidr, CidrError};

/// Most `X-Forwarded-For` entries looked at, so that a hostile header costs bounded work. Real chains
/// are a handful of hops long.
const MAX_ENTRIES: usize = 64;

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`). Empty: none, the socket peer
/// is always the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// True when no proxy is trusted, so callers can skip reading headers at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the trusted blocks.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The trusted blocks, in the order given.
    pub fn cidrs(&self) -> &[Cidr] {
        &self.0
    }
}

impl FromStr for TrustedProxies {
    type Err = CidrError;

    /// A comma-separated list; blanks around entries are ignored and an empty string is the empty
    /// list. Why empty entries are an error: "10.0.0.0/8,,192.168.0.0/16" usually means something was
    /// lost (a variable that expanded to nothing), and silently trusting less is hard to notice.
    fn from_str(list: &str) -> Result<Self, CidrError> {
        if list.trim().is_empty() {
            return Ok(TrustedProxies::default());
        }
        let parse = |entry: &str| match entry.trim() {
            "" => Err(CidrError::EmptyEntry { list: list.to_string() }),
            entry => entry.parse(),
        };
        list.split(',').map(parse).collect::<Result<_, _>>().map(TrustedProxies)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cidr) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{cidr}")?;
        }
        Ok(())
    }
}

/// The client's address, given the socket peer and the `X-Forwarded-For` header values in order.
///
/// From a peer that is not trusted, the peer (its header could say anything). Otherwise the rightmost
/// entry that is not a trusted proxy. An unreadable entry, or one beyond the first 64 from the right,
/// ends the walk: the answer is then the last trusted hop (the entry right of it, or the peer), the
/// furthest address a trusted proxy vouched for. When every entry is trusted, the leftmost.
pub fn client_from_forwarded_for<'a>(
    peer: IpAddr,
    values: impl Iterator<Item = &'a [u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    if !trusted.is_trusted(peer) {
        return peer;
    }
    // Why keep only the last MAX_ENTRIES values: every value holds at least one entry, so earlier ones
    // are never reached; a fixed array keeps a flood of headers from costing memory.
    let mut recent: [&[u8]; MAX_ENTRIES] = [&[]; MAX_ENTRIES];
    let mut count = 0usize;
    for value in values {
        recent[count % MAX_ENTRIES] = value;
        count += 1;
    }
    let kept = count.min(MAX_ENTRIES);
    let newest_first = (0..kept).map(|back| recent[(count - 1 - back) % MAX_ENTRIES]);

    let mut last_trusted = peer;
    for (seen, entry) in newest_first.flat_map(|value| value.rsplit(|&b| b == b',')).take(MAX_ENTRIES + 1).enumerate() {
        if seen == MAX_ENTRIES {
            break; // one too many: treated like an unreadable entry
        }
        match parse_entry(entry) {
            Some(ip) if trusted.is_trusted(ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => break,
        }
    }
    last_trusted
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:port`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:port`, with blanks around it. Anything else (including non-UTF-8) is `None`.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !after.is_empty() {
            parse_port(after.strip_prefix(':')?)?;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = text.split_once(':')?;
    parse_port(port)?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A port number: 1–5 digits, at most 65535 (no sign, unlike `u16::from_str`).
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn client(peer: &str, headers: &[&str], list: &str) -> IpAddr {
        client_from_forwarded_for(ip(peer), headers.iter().map(|h| h.as_bytes()), &trusted(list))
    }

    fn parse_error(text: &str) -> String {
        text.parse::<Cidr>().unwrap_err().to_string()
    }

    #[test]
    fn cidr_parses_and_displays_canonically() {
        assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap().to_string(), "10.0.0.0/8");
        assert_eq!("2001:db8::/32".parse::<Cidr>().unwrap().to_string(), "2001:db8::/32");
        assert_eq!("2001:0db8:0000::/32".parse::<Cidr>().unwrap().to_string(), "2001:db8::/32");
        assert_eq!("10.1.2.3".parse::<Cidr>().unwrap().to_string(), "10.1.2.3/32");
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().to_string(), "0.0.0.0/0");
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        let cidr: Cidr = "192.168.0.0/16".parse().unwrap();
        assert_eq!((cidr.network(), cidr.prefix_len()), (ip("192.168.0.0"), 16));
    }

    #[test]
    fn cidr_errors_name_the_bad_text() {
        assert_eq!(parse_error("10.0.0.0/33"), r#"invalid CIDR "10.0.0.0/33": prefix length must be at most 32"#);
        assert_eq!(parse_error("::/129"), r#"invalid CIDR "::/129": prefix length must be at most 128"#);
        assert_eq!(parse_error("10.0.0.0/999"), r#"invalid CIDR "10.0.0.0/999": prefix length must be at most 32"#);
        assert_eq!(
            parse_error("10.1.2.3/8"),
            r#"invalid CIDR "10.1.2.3/8": has host bits set; did you mean 10.0.0.0/8"#
        );
        assert_eq!(
            parse_error("2001:db8::1/32"),
            r#"invalid CIDR "2001:db8::1/32": has host bits set; did you mean 2001:db8::/32"#
        );
        assert_eq!(parse_error("10.0.0/8"), r#"invalid CIDR "10.0.0/8": "10.0.0" is not an IP address"#);
        assert_eq!(parse_error("10.0.0.0/"), r#"invalid CIDR "10.0.0.0/": the prefix length after '/' is missing"#);
        assert_eq!(parse_error("10.0.0.0/+8"), r#"invalid CIDR "10.0.0.0/+8": prefix length "+8" is not a number"#);
        assert!(parse_error("10.0.0.0/8/8").contains("is not a number"));
        assert!(parse_error("").contains("is not an IP address"));
        assert!(parse_error(" 10.0.0.0/8").contains("is not an IP address"));
    }

    #[test]
    fn cidr_contains() {
        let v4: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(v4.contains(ip("10.0.0.0")) && v4.contains(ip("10.255.255.255")));
        assert!(!v4.contains(ip("11.0.0.0")) && !v4.contains(ip("9.255.255.255")));
        assert!(!v4.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let host: Cidr = "192.168.1.1".parse().unwrap();
        assert!(host.contains(ip("192.168.1.1")) && !host.contains(ip("192.168.1.2")));
        let host6: Cidr = "::1".parse().unwrap();
        assert!(host6.contains(ip("::1")) && !host6.contains(ip("::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")) && all.contains(ip("255.255.255.255")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("::")) && all6.contains(ip("ffff:ffff::1")));
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_host() {
        let v4: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(v4.contains(ip("::ffff:10.1.2.3")));
        assert!(!v4.contains(ip("::ffff:11.1.2.3")));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(mapped.contains(ip("10.1.2.3")) && mapped.contains(ip("::ffff:10.1.2.3")));
        assert!(!mapped.contains(ip("11.1.2.3")));
        let every_v4: Cidr = "::ffff:0:0/96".parse().unwrap();
        assert!(every_v4.contains(ip("1.2.3.4")));
        // Trusting all of IPv6 is not trusting all of IPv4.
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(!all6.contains(ip("1.2.3.4")) && !all6.contains(ip("::ffff:1.2.3.4")));
    }

    #[test]
    fn trusted_proxies_parse_and_display() {
        assert!(trusted("").is_empty() && trusted("  ").is_empty());
        let list = trusted(" 10.0.0.0/8 ,2001:db8::/32,\t192.168.1.1 ");
        assert_eq!(list.cidrs().len(), 3);
        assert_eq!(list.to_string(), "10.0.0.0/8,2001:db8::/32,192.168.1.1/32");
        assert_eq!(trusted(&list.to_string()), list);
        assert_eq!(TrustedProxies::default().to_string(), "");
        assert!(list.is_trusted(ip("10.9.9.9")) && list.is_trusted(ip("192.168.1.1")));
        assert!(!list.is_trusted(ip("192.168.1.2")) && !trusted("").is_trusted(ip("10.0.0.1")));
    }

    #[test]
    fn trusted_proxies_reject_empty_entries_and_bad_cidrs() {
        let err = |s: &str| s.parse::<TrustedProxies>().unwrap_err().to_string();
        assert_eq!(err("10.0.0.0/8,,::1"), r#"invalid CIDR list "10.0.0.0/8,,::1": empty entry between commas"#);
        assert!(err("10.0.0.0/8,").contains("empty entry"));
        assert!(err(",10.0.0.0/8").contains("empty entry"));
        assert!(err("10.0.0.0/8, , ::1").contains("empty entry"));
        assert_eq!(err("10.0.0.0/8, 10.0.0.0/33"), r#"invalid CIDR "10.0.0.0/33": prefix length must be at most 32"#);
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        assert_eq!(client("203.0.113.9", &["1.1.1.1"], "10.0.0.0/8"), ip("203.0.113.9"));
        assert_eq!(client("203.0.113.9", &["1.1.1.1"], ""), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_chain_names_the_client() {
        // client ─► proxy1 (10.0.0.1) ─► proxy2 (10.0.0.2, the peer) ─► wsgate
        assert_eq!(client("10.0.0.2", &["198.51.100.7, 10.0.0.1"], "10.0.0.0/8"), ip("198.51.100.7"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7"], "10.0.0.0/8"), ip("198.51.100.7"));
    }

    #[test]
    fn rightmost_untrusted_entry_wins_over_forged_ones_left_of_it() {
        // The client sent "6.6.6.6" itself; 198.51.100.7 is the address proxy1 saw.
        assert_eq!(client("10.0.0.2", &["6.6.6.6, 198.51.100.7, 10.0.0.1"], "10.0.0.0/8"), ip("198.51.100.7"));
    }

    #[test]
    fn several_headers_are_one_list() {
        assert_eq!(client("10.0.0.2", &["6.6.6.6, 198.51.100.7", "10.0.0.1"], "10.0.0.0/8"), ip("198.51.100.7"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7", "10.0.0.5", "10.0.0.1"], "10.0.0.0/8"), ip("198.51.100.7"));
    }

    #[test]
    fn no_header_or_all_trusted() {
        assert_eq!(client("10.0.0.2", &[], "10.0.0.0/8"), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["10.0.0.9, 10.0.0.1"], "10.0.0.0/8"), ip("10.0.0.9"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let list = "10.0.0.0/8";
        assert_eq!(client("10.0.0.2", &["198.51.100.7, bogus, 10.0.0.1"], list), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7, unknown"], list), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7,,10.0.0.1"], list), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.2", &[""], list), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7, 1.2.3.4:99999"], list), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7, 1.2.3.4:+80"], list), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7, [1.2.3.4]"], list), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7, [::1]x"], list), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7, fe80::1%eth0"], list), ip("10.0.0.2"));
        // Garbage left of the client is never reached.
        assert_eq!(client("10.0.0.2", &["bogus, 198.51.100.7"], list), ip("198.51.100.7"));
    }

    #[test]
    fn non_utf8_entry_is_garbage() {
        let values: [&[u8]; 2] = [b"198.51.100.7, \xff\xfe", b"10.0.0.1"];
        let got = client_from_forwarded_for(ip("10.0.0.2"), values.into_iter(), &trusted("10.0.0.0/8"));
        assert_eq!(got, ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_and_ports() {
        let list = "10.0.0.0/8, 2001:db8::/32";
        assert_eq!(client("10.0.0.2", &["2001:db9::7"], list), ip("2001:db9::7"));
        assert_eq!(client("10.0.0.2", &["[2001:db9::7]"], list), ip("2001:db9::7"));
        assert_eq!(client("10.0.0.2", &["[2001:db9::7]:4711"], list), ip("2001:db9::7"));
        assert_eq!(client("10.0.0.2", &["198.51.100.7:4711"], list), ip("198.51.100.7"));
        assert_eq!(client("2001:db8::2", &["\t198.51.100.7 ,  [2001:db8::1]:80 "], list), ip("198.51.100.7"));
        assert_eq!(client("2001:db8::2", &["2001:db8::1"], list), ip("2001:db8::1"));
    }

    #[test]
    fn mapped_peer_and_entries_are_trusted_as_ipv4() {
        assert_eq!(client("::ffff:10.0.0.2", &["198.51.100.7, ::ffff:10.0.0.1"], "10.0.0.0/8"), ip("198.51.100.7"));
        assert_eq!(client("::ffff:1.2.3.4", &["198.51.100.7"], "10.0.0.0/8"), ip("::ffff:1.2.3.4"));
    }

    #[test]
    fn huge_header_costs_bounded_work() {
        let list = "10.0.0.0/8";
        // 1,000 trusted hops: the walk gives up after 64 and returns the 64th from the right.
        let hops: Vec<String> = (0..1_000).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect();
        let joined = format!("198.51.100.7, {}", hops.join(", "));
        assert_eq!(client("10.0.0.2", &[&joined], list), ip(&hops[1_000 - 64]));
        // The same as 1,000 separate headers.
        let separate: Vec<&str> = hops.iter().map(String::as_str).collect();
        assert_eq!(client("10.0.0.2", &separate, list), ip(&hops[1_000 - 64]));
        // Exactly 64 trusted entries are all looked at, so the leftmost is the answer.
        assert_eq!(client("10.0.0.2", &[&hops[..64].join(",")], list), ip(&hops[0]));
        // The 64th entry from the right is still read; the 65th is not.
        let at_limit = format!("198.51.100.7,{}", hops[..63].join(","));
        assert_eq!(client("10.0.0.2", &[&at_limit], list), ip("198.51.100.7"));
        let past_limit = format!("198.51.100.7,{}", hops[..64].join(","));
        assert_eq!(client("10.0.0.2", &[&past_limit], list), ip(&hops[0]));
    }
}
