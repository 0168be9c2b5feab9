//! Publishing compiled tables. (Being written.)
