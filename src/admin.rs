//! Admin listener: /healthz, /readyz, /metrics. (Being written.)
