//! Differential fuzzing (being written).
