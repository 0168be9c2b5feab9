// TEMPORARY STUB written by the lead engineer so the crate compiles; overwrite this file freely.
use std::net::IpAddr;
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpAddr>);
impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
impl std::str::FromStr for TrustedProxies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.trim().is_empty() {
            return Err("--trusted-proxies is not implemented yet (next session)".to_string());
        }
        Ok(TrustedProxies::default())
    }
}
pub fn client_from_forwarded_for<'a>(peer: IpAddr, _x: impl Iterator<Item = &'a [u8]>, _t: &TrustedProxies) -> IpAddr {
    peer
}
