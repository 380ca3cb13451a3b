//! Typed WebAssembly values (Wasm 2.0, including 128-bit SIMD `v128`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A WebAssembly value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit vector (the SIMD proposal, part of Wasm 2.0).
    V128,
    /// Nullable function reference.
    FuncRef,
    /// Nullable external reference.
    ExternRef,
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        })
    }
}

/// A typed WebAssembly value. Floats are kept as raw bits so NaN payloads
/// survive every round trip exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// `i32` value.
    I32(i32),
    /// `i64` value.
    I64(i64),
    /// `f32` value as IEEE bits.
    F32(u32),
    /// `f64` value as IEEE bits.
    F64(u64),
    /// `v128` value: the 16 bytes as Wasm stores them in memory, read as a
    /// little-endian `u128` (lane 0 in the lowest bits). Binary formats keep
    /// the 16 bytes; human-readable ones (JSON) a `0x` + 32 hex digit string.
    V128(#[serde(with = "v128_serde")] u128),
    /// `funcref`: `None` is null, otherwise a function index of the owning module.
    FuncRef(Option<u32>),
    /// `externref`: `None` is null, otherwise an opaque host value.
    ExternRef(Option<u64>),
}

impl Value {
    /// The bits of a number as a native register or stack slot holds them
    /// (`i32`/`f32` zero-extended to 64 bits); `None` for references and
    /// for `v128`, which needs 128 bits.
    pub fn raw_bits(&self) -> Option<u64> {
        match *self {
            Value::I32(v) => Some(u64::from(v as u32)),
            Value::I64(v) => Some(v as u64),
            Value::F32(b) => Some(u64::from(b)),
            Value::F64(b) => Some(b),
            Value::V128(_) | Value::FuncRef(_) | Value::ExternRef(_) => None,
        }
    }

    /// The type of this value.
    pub fn ty(&self) -> ValType {
        match self {
            Value::I32(_) => ValType::I32,
            Value::I64(_) => ValType::I64,
            Value::F32(_) => ValType::F32,
            Value::F64(_) => ValType::F64,
            Value::V128(_) => ValType::V128,
            Value::FuncRef(_) => ValType::FuncRef,
            Value::ExternRef(_) => ValType::ExternRef,
        }
    }

    /// The zero / null value of a type (the initial value of a local).
    pub fn default_of(ty: ValType) -> Value {
        match ty {
            ValType::I32 => Value::I32(0),
            ValType::I64 => Value::I64(0),
            ValType::F32 => Value::F32(0),
            ValType::F64 => Value::F64(0),
            ValType::V128 => Value::V128(0),
            ValType::FuncRef => Value::FuncRef(None),
            ValType::ExternRef => Value::ExternRef(None),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::I32(v) => write!(f, "i32:{v}"),
            Value::I64(v) => write!(f, "i64:{v}"),
            Value::F32(b) => write!(f, "f32:{} (0x{b:08x})", f32::from_bits(*b)),
            Value::F64(b) => write!(f, "f64:{} (0x{b:016x})", f64::from_bits(*b)),
            Value::V128(v) => write!(f, "v128:{}", V128Hex(*v)),
            Value::FuncRef(None) => f.write_str("funcref:null"),
            Value::FuncRef(Some(i)) => write!(f, "funcref:{i}"),
            Value::ExternRef(None) => f.write_str("externref:null"),
            Value::ExternRef(Some(v)) => write!(f, "externref:{v}"),
        }
    }
}

/// Formats a `v128` as its 16 bytes in memory order (lane 0 of `i8x16`
/// first), as hex pairs in four groups of four bytes (`i32x4` lanes):
/// `01020304 05060708 090a0b0c 0d0e0f10`.
#[derive(Clone, Copy, Debug)]
pub struct V128Hex(pub u128);

impl fmt::Display for V128Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.to_le_bytes().iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A lane interpretation of a `v128` (the SIMD proposal's shapes): how many
/// lanes of which width and kind. One type for every consumer: the
/// compiler's lowering, the interpreter's lane accesses and
/// `wanco-snap dump --lanes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LaneShape {
    /// 16 8-bit integers.
    I8x16,
    /// 8 16-bit integers.
    I16x8,
    /// 4 32-bit integers.
    I32x4,
    /// 2 64-bit integers.
    I64x2,
    /// 4 single-precision floats.
    F32x4,
    /// 2 double-precision floats.
    F64x2,
}

impl LaneShape {
    /// Every shape, integers first.
    pub const ALL: [LaneShape; 6] = [
        LaneShape::I8x16,
        LaneShape::I16x8,
        LaneShape::I32x4,
        LaneShape::I64x2,
        LaneShape::F32x4,
        LaneShape::F64x2,
    ];

    /// The shape's name in Wasm text (`i32x4`).
    pub fn name(self) -> &'static str {
        match self {
            LaneShape::I8x16 => "i8x16",
            LaneShape::I16x8 => "i16x8",
            LaneShape::I32x4 => "i32x4",
            LaneShape::I64x2 => "i64x2",
            LaneShape::F32x4 => "f32x4",
            LaneShape::F64x2 => "f64x2",
        }
    }

    /// Number of lanes.
    pub fn lanes(self) -> u32 {
        match self {
            LaneShape::I8x16 => 16,
            LaneShape::I16x8 => 8,
            LaneShape::I32x4 | LaneShape::F32x4 => 4,
            LaneShape::I64x2 | LaneShape::F64x2 => 2,
        }
    }

    /// Width of one lane in bits.
    pub fn lane_bits(self) -> u32 {
        128 / self.lanes()
    }

    /// Width of one lane in bytes.
    pub fn lane_bytes(self) -> usize {
        16 / self.lanes() as usize
    }

    /// Whether the lanes are floats.
    pub fn is_float(self) -> bool {
        matches!(self, LaneShape::F32x4 | LaneShape::F64x2)
    }

    /// The integer shape whose lanes are `bytes` wide (1, 2, 4 or 8), as the
    /// lane forms of loads and stores (`v128.load8_lane` ...) see a v128.
    pub fn int_of_bytes(bytes: usize) -> Option<LaneShape> {
        match bytes {
            1 => Some(LaneShape::I8x16),
            2 => Some(LaneShape::I16x8),
            4 => Some(LaneShape::I32x4),
            8 => Some(LaneShape::I64x2),
            _ => None,
        }
    }

    /// The integer shape of twice the lane width (the result of the
    /// widening operations; `I64x2` for 32- and 64-bit lanes).
    pub fn wider(self) -> LaneShape {
        match self {
            LaneShape::I8x16 => LaneShape::I16x8,
            LaneShape::I16x8 => LaneShape::I32x4,
            _ => LaneShape::I64x2,
        }
    }

    /// The bits of lane `i` of `v` (zero-extended; lane 0 is the lowest).
    /// Lanes past the last read as 0.
    pub fn lane(self, v: u128, i: u32) -> u64 {
        if i >= self.lanes() {
            return 0;
        }
        let bits = self.lane_bits();
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        (v >> (i * bits)) as u64 & mask
    }

    /// `v` with lane `i` replaced by the low bits of `x` (lanes past the
    /// last leave `v` as it is).
    pub fn with_lane(self, v: u128, i: u32, x: u64) -> u128 {
        if i >= self.lanes() {
            return v;
        }
        let bits = self.lane_bits();
        let mask = if bits == 64 { u64::MAX as u128 } else { (1u128 << bits) - 1 } << (i * bits);
        (v & !mask) | (((x as u128) << (i * bits)) & mask)
    }

    /// The lanes of `v` as text, lane 0 first: signed integers, floats as
    /// Rust prints them (`1.5`, `-0.0`, `inf`) and NaNs with their bits
    /// (`nan:0x7fc00000`), e.g. `v128:i32x4 [1 -2 3 4]`.
    pub fn format(self, v: u128) -> String {
        let lanes: Vec<String> = (0..self.lanes())
            .map(|i| {
                let x = self.lane(v, i);
                match self {
                    LaneShape::I8x16 => (x as u8 as i8).to_string(),
                    LaneShape::I16x8 => (x as u16 as i16).to_string(),
                    LaneShape::I32x4 => (x as u32 as i32).to_string(),
                    LaneShape::I64x2 => (x as i64).to_string(),
                    LaneShape::F32x4 => {
                        let f = f32::from_bits(x as u32);
                        if f.is_nan() { format!("nan:0x{x:08x}") } else { format!("{f:?}") }
                    }
                    LaneShape::F64x2 => {
                        let f = f64::from_bits(x);
                        if f.is_nan() { format!("nan:0x{x:016x}") } else { format!("{f:?}") }
                    }
                }
            })
            .collect();
        format!("v128:{} [{}]", self.name(), lanes.join(" "))
    }
}

impl fmt::Display for LaneShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A lane-shape name that is none of `i8x16 i16x8 i32x4 i64x2 f32x4 f64x2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownLaneShape(pub String);

impl fmt::Display for UnknownLaneShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown lane shape {:?}: expected one of i8x16, i16x8, i32x4, i64x2, f32x4, f64x2", self.0)
    }
}

impl std::error::Error for UnknownLaneShape {}

impl std::str::FromStr for LaneShape {
    type Err = UnknownLaneShape;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LaneShape::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLaneShape(s.to_string()))
    }
}

/// Serde for a `v128` payload: 16 little-endian bytes in binary formats
/// (MessagePack `bin 8`), a `"0x…"` string of 32 hex digits (the `u128`,
/// most significant digit first) in human-readable ones.
pub(crate) mod v128_serde {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format!("0x{v:032x}"))
        } else {
            s.serialize_bytes(&v.to_le_bytes())
        }
    }

    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = u128;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a v128: 16 bytes, or a string \"0x\" followed by up to 32 hex digits")
        }

        fn visit_bytes<E: Error>(self, b: &[u8]) -> Result<u128, E> {
            let a: [u8; 16] = b
                .try_into()
                .map_err(|_| E::custom(format!("a v128 has 16 bytes, found {}", b.len())))?;
            Ok(u128::from_le_bytes(a))
        }

        fn visit_str<E: Error>(self, s: &str) -> Result<u128, E> {
            let hex = s
                .strip_prefix("0x")
                .ok_or_else(|| E::custom(format!("v128 {s:?} does not start with 0x")))?;
            if hex.is_empty() || hex.len() > 32 {
                return Err(E::custom(format!("v128 {s:?} needs 1 to 32 hex digits")));
            }
            u128::from_str_radix(hex, 16).map_err(|e| E::custom(format!("v128 {s:?}: {e}")))
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<u128, A::Error> {
            // Some binary deserializers hand a byte string over as a sequence.
            let mut a = [0u8; 16];
            for (i, slot) in a.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::custom(format!("a v128 has 16 bytes, found {i}")))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(A::Error::custom("a v128 has 16 bytes, found more"));
            }
            Ok(u128::from_le_bytes(a))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_bytes(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LaneShape;

    #[test]
    fn lane_shapes_read_write_and_format_lanes() {
        let v: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0180;
        assert_eq!(LaneShape::I8x16.lane(v, 0), 0x80);
        assert_eq!(LaneShape::I16x8.lane(v, 1), 0x0302);
        assert_eq!(LaneShape::I32x4.lane(v, 3), 0x0f0e_0d0c);
        assert_eq!(LaneShape::I64x2.lane(v, 1), 0x0f0e_0d0c_0b0a_0908);
        assert_eq!(LaneShape::I64x2.lane(v, 2), 0);
        let w = LaneShape::I16x8.with_lane(v, 7, 0xffff_1234);
        assert_eq!(w, (v & !(0xffffu128 << 112)) | (0x1234u128 << 112));
        assert_eq!(LaneShape::I64x2.with_lane(0, 1, u64::MAX), u128::MAX << 64);
        assert_eq!(LaneShape::I8x16.with_lane(v, 16, 1), v);
        assert_eq!(LaneShape::I8x16.format(v).split(' ').nth(1), Some("[-128"));
        let f = (f32::NAN.to_bits() as u128) | ((1.5f32.to_bits() as u128) << 32) | ((-0.0f32).to_bits() as u128) << 64;
        assert_eq!(LaneShape::F32x4.format(f), "v128:f32x4 [nan:0x7fc00000 1.5 -0.0 0.0]");
        assert_eq!(LaneShape::I32x4.format(u128::MAX), "v128:i32x4 [-1 -1 -1 -1]");
        for s in LaneShape::ALL {
            assert_eq!(s.name().parse::<LaneShape>(), Ok(s));
            assert_eq!(s.lane_bits() * s.lanes(), 128);
            assert_eq!(LaneShape::int_of_bytes(s.lane_bytes()).map(|i| i.lane_bits()), Some(s.lane_bits()));
        }
        assert!("i8x8".parse::<LaneShape>().unwrap_err().to_string().contains("expected one of"));
        assert_eq!(LaneShape::I8x16.wider(), LaneShape::I16x8);
        assert_eq!(LaneShape::I32x4.wider(), LaneShape::I64x2);
    }

    use super::*;

    #[test]
    fn v128_round_trips_in_msgpack_and_json() {
        let v = Value::V128(0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100);
        let mp = rmp_serde::to_vec_named(&v).unwrap();
        // 16 raw bytes (bin 8), lane 0 first, not a number.
        assert!(mp.windows(16).any(|w| w == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]));
        assert_eq!(rmp_serde::from_slice::<Value>(&mp).unwrap(), v);
        let js = serde_json::to_string(&v).unwrap();
        assert_eq!(js, r#"{"V128":"0x0f0e0d0c0b0a09080706050403020100"}"#);
        assert_eq!(serde_json::from_str::<Value>(&js).unwrap(), v);
        assert!(serde_json::from_str::<Value>(r#"{"V128":"12"}"#).is_err());
        assert!(rmp_serde::from_slice::<Value>(&rmp_serde::to_vec_named(&Value::I32(1)).unwrap()).is_ok());
    }

    #[test]
    fn v128_displays_bytes_in_memory_order() {
        let v = Value::V128(u128::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]));
        assert_eq!(v.to_string(), "v128:01020304 05060708 090a0b0c 0d0e0f10");
        assert_eq!(Value::default_of(ValType::V128), Value::V128(0));
        assert_eq!(v.raw_bits(), None);
    }
}
