//! File mode source: a folder of YAML manifests. (Being written.)
