//! The dataplane: listeners, routing, HTTP proxying and WebSocket tunnels. (Being written.)
