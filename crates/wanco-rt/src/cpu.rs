//! The CPU features compiled code requires, checked at program start.
//!
//! x86_64 code is compiled for `x86-64-v2` (SSE3, SSSE3, SSE4.1, SSE4.2,
//! POPCNT, CMPXCHG16B): 128-bit SIMD needs SSE4.1 at least (as wasmtime),
//! and scalar rounding uses `roundss`/`roundsd`. aarch64 code needs NEON
//! (Advanced SIMD), part of every ARMv8-A CPU: nothing to check.

/// The features of the baseline that this CPU lacks (empty: all present).
pub fn missing_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! need {
            ($($f:tt),*) => {
                $(if !std::arch::is_x86_feature_detected!($f) {
                    missing.push($f);
                })*
            };
        }
        need!("sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cmpxchg16b");
    }
    missing
}

/// Exit with a clear message unless the CPU has every feature compiled code uses.
pub fn require_baseline() {
    let missing = missing_features();
    if !missing.is_empty() {
        eprintln!(
            "wanco: this program needs an x86_64 CPU of level x86-64-v2 (SSE4.2, POPCNT); this CPU lacks: {}",
            missing.join(", ")
        );
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    /// The machines the tests run on meet the baseline (else no compiled test could run).
    #[test]
    fn this_cpu_meets_the_baseline() {
        assert!(super::missing_features().is_empty(), "{:?}", super::missing_features());
    }
}
