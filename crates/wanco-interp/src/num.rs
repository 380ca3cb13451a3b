//! Numeric semantics of Wasm that Rust does not give directly.

use wanco_state::abi::TrapCode;

macro_rules! float_ops {
    ($min:ident, $max:ident, $nearest:ident, $t:ty) => {
        /// Wasm `min`: NaN if either is NaN, -0 < +0.
        pub(crate) fn $min(a: $t, b: $t) -> $t {
            if a.is_nan() || b.is_nan() {
                a + b
            } else if a == b {
                <$t>::from_bits(a.to_bits() | b.to_bits())
            } else {
                a.min(b)
            }
        }
        /// Wasm `max`: NaN if either is NaN, -0 < +0.
        pub(crate) fn $max(a: $t, b: $t) -> $t {
            if a.is_nan() || b.is_nan() {
                a + b
            } else if a == b {
                <$t>::from_bits(a.to_bits() & b.to_bits())
            } else {
                a.max(b)
            }
        }
        /// Wasm `nearest`: round half to even.
        pub(crate) fn $nearest(a: $t) -> $t {
            quiet(a.round_ties_even())
        }
    };
}

float_ops!(fmin32, fmax32, nearest32, f32);
float_ops!(fmin64, fmax64, nearest64, f64);

/// A float whose NaN results are quiet (libm's rounding functions return a
/// signalling NaN operand unchanged; Wasm requires an arithmetic NaN).
pub(crate) trait Quiet: Copy {
    /// `self`, with the quiet bit set if it is a NaN.
    fn quieted(self) -> Self;
}
impl Quiet for f32 {
    #[inline(always)]
    fn quieted(self) -> f32 {
        if self.is_nan() {
            f32::from_bits(self.to_bits() | 0x0040_0000)
        } else {
            self
        }
    }
}
impl Quiet for f64 {
    #[inline(always)]
    fn quieted(self) -> f64 {
        if self.is_nan() {
            f64::from_bits(self.to_bits() | 0x0008_0000_0000_0000)
        } else {
            self
        }
    }
}
/// See [`Quiet`].
#[inline(always)]
pub(crate) fn quiet<T: Quiet>(x: T) -> T {
    x.quieted()
}

/// Checked truncation of `x` (exact in f64) to an integer in `(lo, hi)`
/// exclusive bounds given as f64.
#[inline]
fn check(x: f64, lo: f64, hi: f64) -> Result<(), TrapCode> {
    if x.is_nan() {
        Err(TrapCode::InvalidConversion)
    } else if x <= lo || x >= hi {
        Err(TrapCode::ConversionOverflow)
    } else {
        Ok(())
    }
}

pub(crate) fn trunc_i32_s(x: f64) -> Result<i32, TrapCode> {
    check(x, -2147483649.0, 2147483648.0).map(|_| x as i32)
}
pub(crate) fn trunc_i32_u(x: f64) -> Result<u32, TrapCode> {
    check(x, -1.0, 4294967296.0).map(|_| x as u32)
}
pub(crate) fn trunc_i64_s(x: f64) -> Result<i64, TrapCode> {
    // -2^63 is representable and valid; the next f64 below is out of range.
    if x == -9223372036854775808.0 {
        return Ok(i64::MIN);
    }
    check(x, -9223372036854775808.0, 9223372036854775808.0).map(|_| x as i64)
}
pub(crate) fn trunc_i64_u(x: f64) -> Result<u64, TrapCode> {
    check(x, -1.0, 18446744073709551616.0).map(|_| x as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn trunc_bounds() {
        assert_eq!(trunc_i32_s(-2147483648.9), Ok(i32::MIN));
        assert_eq!(trunc_i32_s(2147483647.9), Ok(i32::MAX));
        assert!(trunc_i32_s(2147483648.0).is_err());
        assert_eq!(trunc_i32_u(-0.9), Ok(0));
        assert!(trunc_i32_u(-1.0).is_err());
        assert_eq!(trunc_i64_s(-9223372036854775808.0), Ok(i64::MIN));
        assert!(trunc_i64_s(9223372036854775808.0).is_err());
        assert_eq!(
            trunc_i64_u(18446744073709549568.0),
            Ok(18446744073709549568)
        );
        assert_eq!(trunc_i32_s(f64::NAN), Err(TrapCode::InvalidConversion));
        assert_eq!(fmin32(-0.0, 0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(fmax64(-0.0, 0.0).to_bits(), 0);
    }
}
