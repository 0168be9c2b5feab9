// TEMPORARY STUB written by the lead engineer so the crate compiles; overwrite this file freely.
use crate::routes::RouteLimits;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RouteFull { limit: u32 },
    ClientFull { limit: u32 },
    RateLimited { retry_after: Duration },
}
pub struct Limits;
impl Limits {
    pub fn new(_n: usize) -> Limits {
        Limits
    }
    pub fn admit(&self, _r: &Arc<str>, _c: IpAddr, _l: &RouteLimits, _now: Instant) -> Result<Permit, Refusal> {
        Ok(Permit)
    }
}
pub struct Permit;
