//! Logging setup. (Being written.)
