//! Snapshot → RouteTable + Report. Pure: no I/O, no clock. (Being written.)
