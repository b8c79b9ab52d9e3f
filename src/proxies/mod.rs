//! Proxies (to be written).
