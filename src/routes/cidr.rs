//! Address blocks (`10.0.0.0/8`, `2001:db8::/32`): plain data for the route table (source ranges) and the
//! dataplane (`--trusted-proxies`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address: host bits are always zero (parsing rejects anything else).
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network address, host bits zero.
    pub fn network(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as dual-stack
    /// sockets report IPv4 peers) is the IPv4 host it names: IPv4 blocks match it, and IPv6 blocks
    /// match it only when they lie inside `::ffff:0:0/96`, which is where mapped addresses live. So
    /// `::/0` does not quietly trust every IPv4 client.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(net.to_bits().into(), ip.to_bits().into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches(net.to_bits(), ip.to_bits(), 128, self.prefix),
            (IpAddr::V6(net), IpAddr::V4(ip)) => match net.to_ipv4_mapped() {
                Some(net) if self.prefix >= 96 => {
                    prefix_matches(net.to_bits().into(), ip.to_bits().into(), 32, self.prefix - 96)
                }
                _ => false,
            },
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

/// Whether the top `prefix` of `width` bits of `a` and `b` agree (`prefix <= width <= 128`).
fn prefix_matches(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let host_bits = width - u32::from(prefix);
    // Why checked_shr: a /0 shifts by the full width, which plain `>>` rejects for 128 bits.
    (a ^ b).checked_shr(host_bits).unwrap_or(0) == 0
}

/// Keeps only the top `prefix` bits of `ip`.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    fn keep(bits: u128, width: u32, prefix: u8) -> u128 {
        let host_bits = width - u32::from(prefix);
        let host_mask = 1u128.checked_shl(host_bits).map_or(u128::MAX, |b| b - 1);
        bits & !host_mask
    }
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from_bits(keep(v4.to_bits().into(), 32, prefix) as u32)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(keep(v6.to_bits(), 128, prefix))),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `addr/len`, or a bare address for a single host (/32 or /128).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let fail = |reason: String| CidrError::Invalid { text: text.to_string(), reason };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| fail(format!("{addr_text:?} is not an IP address")))?;
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => width,
            Some("") => return Err(fail("the prefix length after '/' is missing".to_string())),
            // Why only digits: `u8::from_str` would also take "+8".
            Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(fail(format!("prefix length {p:?} is not a number")));
            }
            Some(p) => match p.parse::<u8>() {
                Ok(prefix) if prefix <= width => prefix,
                _ => return Err(fail(format!("prefix length must be at most {width}"))),
            },
        };
        let network = mask(addr, prefix);
        if network != addr {
            // Why an error rather than masking: "10.1.2.3/8" is more likely a typo for /32 than a wish
            // to trust sixteen million addresses.
            return Err(fail(format!("has host bits set; did you mean {network}/{prefix}")));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// Like `from_str`, but host bits are cleared instead of refused (`10.1.2.3/8` is `10.0.0.0/8`), as
    /// ingress-nginx reads its source ranges.
    pub fn parse_masked(text: &str) -> Result<Cidr, CidrError> {
        if let Some((addr, prefix)) = text.split_once('/')
            && let (Ok(ip), Ok(len)) = (addr.parse::<IpAddr>(), prefix.parse::<u8>())
            && len <= if ip.is_ipv4() { 32 } else { 128 }
        {
            return Ok(Cidr { addr: mask(ip, len), prefix: len });
        }
        text.parse()
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a CIDR or a list of them was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// One entry is not a CIDR.
    Invalid { text: String, reason: String },
    /// A list has nothing between two commas (or before or after one).
    EmptyEntry { list: String },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Invalid { text, reason } => write!(f, "invalid CIDR {text:?}: {reason}"),
            CidrError::EmptyEntry { list } => write!(f, "invalid CIDR list {list:?}: empty entry between commas"),
        }
    }
}

impl std::error::Error for CidrError {}
