//! WASI preview1 host (placeholder, being written).
#![deny(missing_docs)]
