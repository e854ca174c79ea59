//! Component health and metrics.
