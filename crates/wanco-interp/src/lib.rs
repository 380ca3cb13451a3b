//! Reference interpreter (placeholder, being written).
#![deny(missing_docs)]
