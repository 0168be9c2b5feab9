// TEMPORARY STUB written by the lead engineer so the crate compiles; overwrite this file freely.
pub fn hash64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| (h ^ *x as u64).wrapping_mul(0x100000001b3))
}
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ring;
impl Ring {
    pub fn new(_e: &[std::net::SocketAddr]) -> Ring {
        Ring
    }
    pub fn pick(&self, _k: u64, _u: impl FnMut(usize) -> bool) -> Option<usize> {
        None
    }
    pub fn owner(&self, _k: u64) -> Option<usize> {
        None
    }
}
pub fn load_bound(_a: usize, _e: usize, _p: u32) -> usize {
    1
}
