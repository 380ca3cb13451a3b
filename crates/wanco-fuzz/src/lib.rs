//! `wanco-fuzz`: differential testing of wanco's reference interpreter
//! (`wanco-interp`) against an independent engine (`wasmi`, used as a
//! library).
//!
//! * [`generate`] turns a seed into a valid module from `wasm-smith`,
//!   restricted to what wanco supports (Wasm 2.0 without SIMD), without
//!   imports, with everything exported and with every function guaranteed to
//!   terminate (`wasm-smith`'s `ensure_termination`: a fuel global that traps
//!   with `unreachable` when it runs out; both engines see the same counter).
//! * [`run_differential`] runs a module in both engines and compares the
//!   outcome of instantiation, of calls to every exported function with a few
//!   deterministic argument vectors (results bit-exactly, except that NaNs
//!   only need to be NaN on both sides; traps by kind), and the exported
//!   globals and memories afterwards.
//! * [`run_seed`] does both for one seed and writes the module of a mismatch
//!   to [`failure_dir`]`/<seed>.wasm`.
//!
//! Each exported function is exercised on a fresh pair of instances (so the
//! fuel is fresh for it and a trap in one export does not starve the
//! others); the argument vectors of one export run one after the other on the
//! same instances, so effects of earlier calls are seen by later ones.
//!
//! Stack exhaustion: if both engines exhaust, that is agreement; if only one
//! does (the engines have different depth limits) the rest of that export is
//! inconclusive and skipped, never a mismatch.
#![deny(missing_docs)]

// The wasm-smith config reads best as a list of assignments; a mismatch is
// rare and carries its whole report.
#![allow(clippy::field_reassign_with_default, clippy::result_large_err)]

pub mod aot;

use std::fmt;
use std::path::PathBuf;

use wanco_interp as interp;
use wanco_state::abi::TrapCode;
use wanco_state::Value;

/// Fuel given to every instance: the number of function entries plus loop
/// iterations it may execute before trapping with `unreachable`.
pub const DEFAULT_FUEL: u32 = 1000;

/// Bytes of random input `wasm-smith` draws a module from.
const INPUT_BYTES: usize = 16 * 1024;

/// splitmix64: a small deterministic generator for the `wasm-smith` input and
/// the random argument vector.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `wasm-smith` configuration: what wanco supports, bounded sizes, no
/// imports, everything exported. With `disallow_traps`, `wasm-smith` guards
/// the instructions that could trap (so more calls run to the end and
/// compare values); without, traps are compared.
pub fn config(disallow_traps: bool) -> wasm_smith::Config {
    config_with(disallow_traps, false)
}

/// Like [`config`], with 128-bit SIMD when `simd` (Wasm 2.0 complete).
pub fn config_with(disallow_traps: bool, simd: bool) -> wasm_smith::Config {
    let mut c = wasm_smith::Config::default();
    c.disallow_traps = disallow_traps;
    // Wasm 2.0, with or without SIMD.
    c.bulk_memory_enabled = true;
    c.reference_types_enabled = true;
    c.multi_value_enabled = true;
    c.sign_extension_ops_enabled = true;
    c.saturating_float_to_int_enabled = true;
    c.simd_enabled = simd;
    c.relaxed_simd_enabled = false;
    c.threads_enabled = false;
    c.tail_call_enabled = false;
    c.exceptions_enabled = false;
    c.gc_enabled = false;
    c.memory64_enabled = false;
    c.custom_page_sizes_enabled = false;
    c.wide_arithmetic_enabled = false;
    c.extended_const_enabled = false;
    c.shared_everything_threads_enabled = false;
    c.custom_descriptors_enabled = false;
    c.compact_imports_enabled = false;
    c.max_memories = 1; // no multi-memory
                        // No imports; everything exported.
    c.max_imports = 0;
    c.min_imports = 0;
    c.export_everything = true;
    // Bounded sizes (every memory and table has a small maximum, so
    // `memory.grow` / `table.grow` fail the same way in both engines).
    c.min_types = 3;
    c.min_funcs = 4;
    c.min_memories = 1;
    c.min_tables = 1;
    c.min_globals = 2;
    c.max_types = 20;
    c.max_funcs = 20;
    c.max_globals = 20;
    c.max_exports = 50;
    c.max_tables = 3;
    c.max_table_elements = 200;
    c.table_max_size_required = true;
    c.max_memory32_bytes = 16 * 65536;
    c.memory_max_size_required = true;
    c.max_data_segments = 10;
    c.max_element_segments = 10;
    c.max_elements = 50;
    c.max_instructions = 1000;
    c.max_nesting_depth = 10;
    c.max_type_size = 100;
    c.allow_start_export = true;
    c.generate_custom_sections = false;
    c.allow_invalid_funcs = false;
    // NaN payloads produced by arithmetic are nondeterministic in Wasm; with
    // canonicalisation they cannot leak into memory or globals differently.
    c.canonicalize_nans = true;
    c
}

/// The module for `seed`: valid, within wanco's feature set, with every
/// function guaranteed to terminate (fuel [`DEFAULT_FUEL`]). Odd seeds use
/// `disallow_traps` (see [`config`]).
pub fn generate(seed: u64) -> Vec<u8> {
    generate_with_fuel(seed, DEFAULT_FUEL)
}

/// Like [`generate`], with an explicit fuel amount.
pub fn generate_with_fuel(seed: u64, fuel: u32) -> Vec<u8> {
    generate_with(seed, fuel, false)
}

/// Like [`generate`], with 128-bit SIMD (what both differential fuzzers run).
pub fn generate_simd(seed: u64) -> Vec<u8> {
    generate_with(seed, DEFAULT_FUEL, true)
}

/// Like [`generate_with_fuel`], with SIMD instructions when `simd`.
pub fn generate_with(seed: u64, fuel: u32, simd: bool) -> Vec<u8> {
    // `wasm-smith` gives up on some inputs (when the minimum counts cannot be
    // met): then derive a new input from the seed, deterministically.
    let mut state = seed;
    loop {
        let mut data = Vec::with_capacity(INPUT_BYTES);
        while data.len() < INPUT_BYTES {
            data.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        let mut u = arbitrary::Unstructured::new(&data);
        let Ok(mut module) = wasm_smith::Module::new(config_with(seed % 2 == 1, simd), &mut u) else {
            continue;
        };
        module
            .ensure_termination(fuel)
            .expect("wasm-smith generated every function body itself");
        return module.to_bytes();
    }
}

/// A trap, normalised so that the two engines' trap codes can be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// `unreachable` executed (this includes running out of fuel).
    Unreachable,
    /// Integer division or remainder by zero.
    IntegerDivideByZero,
    /// Signed division overflow, or float-to-int conversion out of range.
    IntegerOverflow,
    /// Float-to-int conversion of NaN.
    InvalidConversion,
    /// Memory access out of bounds.
    MemoryOutOfBounds,
    /// Table access out of bounds (`call_indirect` index or `table.*`).
    TableOutOfBounds,
    /// `call_indirect` to a null entry.
    IndirectCallNull,
    /// `call_indirect` signature mismatch.
    IndirectCallType,
    /// Call stack exhausted.
    StackExhausted,
    /// Anything else (host errors, engine limits), with its message.
    Other(String),
}

impl TrapKind {
    /// The kind of a `wanco-interp` trap.
    pub fn from_interp(t: &interp::Trap) -> TrapKind {
        match t {
            interp::Trap::Wasm(code) => match code {
                TrapCode::Unreachable => TrapKind::Unreachable,
                TrapCode::IntegerDivideByZero => TrapKind::IntegerDivideByZero,
                TrapCode::IntegerOverflow | TrapCode::ConversionOverflow => {
                    TrapKind::IntegerOverflow
                }
                TrapCode::InvalidConversion => TrapKind::InvalidConversion,
                TrapCode::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
                TrapCode::TableOutOfBounds | TrapCode::TableAccessOutOfBounds => {
                    TrapKind::TableOutOfBounds
                }
                TrapCode::IndirectCallNull | TrapCode::UninitializedElement => {
                    TrapKind::IndirectCallNull
                }
                TrapCode::IndirectCallType => TrapKind::IndirectCallType,
                TrapCode::StackExhausted => TrapKind::StackExhausted,
            },
            other => TrapKind::Other(other.to_string()),
        }
    }

    /// The kind of a `wasmi` error.
    pub fn from_wasmi(e: &wasmi::Error) -> TrapKind {
        use wasmi::errors::{ErrorKind, TableError};
        use wasmi::TrapCode as W;
        // `as_trap_code` leaves out `table.copy` out of bounds.
        if let ErrorKind::Table(TableError::CopyOutOfBounds) = e.kind() {
            return TrapKind::TableOutOfBounds;
        }
        match e.as_trap_code() {
            Some(W::UnreachableCodeReached) => TrapKind::Unreachable,
            Some(W::MemoryOutOfBounds) => TrapKind::MemoryOutOfBounds,
            Some(W::TableOutOfBounds) => TrapKind::TableOutOfBounds,
            Some(W::IndirectCallToNull) => TrapKind::IndirectCallNull,
            Some(W::IntegerDivisionByZero) => TrapKind::IntegerDivideByZero,
            Some(W::IntegerOverflow) => TrapKind::IntegerOverflow,
            Some(W::BadConversionToInteger) => TrapKind::InvalidConversion,
            Some(W::StackOverflow) => TrapKind::StackExhausted,
            Some(W::BadSignature) => TrapKind::IndirectCallType,
            _ => TrapKind::Other(e.to_string()),
        }
    }
}

/// What one engine did with one call (or one instantiation).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Returned these values (references are normalised: a non-null
    /// reference is `Some(0)`, since the engines name functions differently).
    Values(Vec<Value>),
    /// Trapped.
    Trap(TrapKind),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Values(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", ShowValue(x))?;
                }
                f.write_str("]")
            }
            Outcome::Trap(k) => write!(f, "trap {k:?}"),
        }
    }
}

struct ShowValue<'a>(&'a Value);

impl fmt::Display for ShowValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.0 {
            Value::I32(v) => write!(f, "i32:{v}"),
            Value::I64(v) => write!(f, "i64:{v}"),
            Value::F32(b) => write!(f, "f32:{}(0x{b:08x})", f32::from_bits(b)),
            Value::F64(b) => write!(f, "f64:{}(0x{b:016x})", f64::from_bits(b)),
            Value::V128(v) => write!(f, "v128:0x{v:032x}"),
            Value::FuncRef(r) => write!(
                f,
                "funcref:{}",
                if r.is_some() { "non-null" } else { "null" }
            ),
            Value::ExternRef(r) => {
                write!(
                    f,
                    "externref:{}",
                    if r.is_some() { "non-null" } else { "null" }
                )
            }
        }
    }
}

/// A disagreement between the engines.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The seed the module was generated from (if known).
    pub seed: Option<u64>,
    /// The export concerned (`<validate>`, `<instantiate>` for those steps;
    /// `global NAME` / `memory NAME` for state compared after calls).
    pub export: String,
    /// The arguments of the call (empty for other steps).
    pub args: Vec<Value>,
    /// What `wanco-interp` did.
    pub interp: String,
    /// What `wasmi` did.
    pub wasmi: String,
    /// Where the failing module was written, if it was.
    pub saved_to: Option<PathBuf>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seed {
            Some(s) => write!(f, "mismatch (seed {s})")?,
            None => write!(f, "mismatch")?,
        }
        write!(f, " at {:?}", self.export)?;
        if !self.args.is_empty() {
            f.write_str(" args (")?;
            for (i, a) in self.args.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}", ShowValue(a))?;
            }
            f.write_str(")")?;
        }
        write!(f, ": wanco-interp {} vs wasmi {}", self.interp, self.wasmi)?;
        if let Some(p) = &self.saved_to {
            write!(f, " (module: {})", p.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

/// Counters of one differential run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Modules run.
    pub modules: u64,
    /// Modules whose instantiation failed in both engines.
    pub uninstantiable: u64,
    /// Calls compared (each call runs in both engines).
    pub calls: u64,
    /// Calls that trapped (identically) in both engines.
    pub traps: u64,
    /// Calls that ran out of fuel (trapped with `unreachable`) in both engines;
    /// an upper bound, since genuine `unreachable` traps count too.
    pub unreachable: u64,
    /// Calls whose comparison was inconclusive (only one engine exhausted
    /// its stack); the rest of that export was skipped.
    pub inconclusive: u64,
}

impl RunStats {
    /// Add `other`'s counters to `self`.
    pub fn add(&mut self, other: &RunStats) {
        self.modules += other.modules;
        self.uninstantiable += other.uninstantiable;
        self.calls += other.calls;
        self.traps += other.traps;
        self.unreachable += other.unreachable;
        self.inconclusive += other.inconclusive;
    }
}

/// The directory failing modules are written to: `$WANCO_FUZZ_FAILURES` if
/// set, else `target/fuzz-failures` of the workspace.
pub fn failure_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WANCO_FUZZ_FAILURES") {
        return PathBuf::from(d);
    }
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(crate_dir);
    root.join("target/fuzz-failures")
}

/// Generate the module of `seed` and run it differentially. On a mismatch the
/// module is written to [`failure_dir`]`/<seed>.wasm`. A panic in either
/// engine is reported as a mismatch too.
pub fn run_seed(seed: u64) -> Result<RunStats, Mismatch> {
    let bytes = generate_simd(seed);
    let r = std::panic::catch_unwind(|| run_differential_stats(&bytes)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        Err(Mismatch {
            seed: None,
            export: "<panic>".into(),
            args: vec![],
            interp: msg,
            wasmi: "-".into(),
            saved_to: None,
        })
    });
    r.map_err(|mut m| {
        m.seed = Some(seed);
        let dir = failure_dir();
        let path = dir.join(format!("{seed}.wasm"));
        if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&path, &bytes).is_ok() {
            m.saved_to = Some(path);
        }
        m
    })
}

/// Run `bytes` in both engines and compare (see the crate documentation).
pub fn run_differential(bytes: &[u8]) -> Result<(), Mismatch> {
    run_differential_stats(bytes).map(|_| ())
}

fn mismatch(export: &str, args: &[Value], interp: impl ToString, wasmi: impl ToString) -> Mismatch {
    Mismatch {
        seed: None,
        export: export.to_string(),
        args: args.to_vec(),
        interp: interp.to_string(),
        wasmi: wasmi.to_string(),
        saved_to: None,
    }
}

/// The `wasmi` engine configuration: the same feature set as wanco.
fn wasmi_engine() -> wasmi::Engine {
    let mut c = wasmi::Config::default();
    c.wasm_mutable_global(true)
        .wasm_sign_extension(true)
        .wasm_saturating_float_to_int(true)
        .wasm_multi_value(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_simd(true)
        .wasm_relaxed_simd(false)
        .wasm_multi_memory(false)
        .wasm_tail_call(false)
        .wasm_extended_const(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .consume_fuel(false)
        .set_max_recursion_depth(100_000);
    wasmi::Engine::new(&c)
}

/// Like [`run_differential`], returning the counters.
pub fn run_differential_stats(bytes: &[u8]) -> Result<RunStats, Mismatch> {
    let mut stats = RunStats {
        modules: 1,
        ..RunStats::default()
    };
    // Decoding and validation must agree.
    let engine = wasmi_engine();
    let (imod, wmod) = match (
        interp::Module::new(bytes),
        wasmi::Module::new(&engine, bytes),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(_), Err(_)) => return Ok(stats),
        (a, b) => {
            return Err(mismatch(
                "<validate>",
                &[],
                a.map(|_| "valid".to_string())
                    .unwrap_or_else(|e| e.to_string()),
                b.map(|_| "valid".to_string())
                    .unwrap_or_else(|e| e.to_string()),
            ))
        }
    };
    let exports: Vec<(String, wasmi::ExternType)> = wmod
        .exports()
        .map(|e| (e.name().to_string(), e.ty().clone()))
        .collect();

    // The state right after instantiation.
    let Some(pair) = Pair::new(&engine, &imod, &wmod)? else {
        stats.uninstantiable += 1;
        return Ok(stats);
    };
    pair.compare_state(&exports)?;

    let mut export_no = 0u64;
    for (name, ty) in &exports {
        let wasmi::ExternType::Func(fty) = ty else {
            continue;
        };
        export_no += 1;
        let Some(mut pair) = Pair::new(&engine, &imod, &wmod)? else {
            return Err(mismatch(
                "<instantiate>",
                &[],
                "uninstantiable",
                "instantiable on retry",
            ));
        };
        let mut tainted = false;
        for args in arg_vectors(fty.params(), export_no) {
            stats.calls += 1;
            let a = pair.call_interp(name, &args);
            let b = pair.call_wasmi(name, &args, fty.results().len());
            let ea = matches!(a, Outcome::Trap(TrapKind::StackExhausted));
            let eb = matches!(b, Outcome::Trap(TrapKind::StackExhausted));
            if ea || eb {
                // Partial effects of an exhausted call depend on the depth
                // limit: stop comparing this export.
                if ea != eb {
                    stats.inconclusive += 1;
                }
                tainted = true;
                break;
            }
            if !outcomes_agree(&a, &b) {
                return Err(mismatch(name, &args, a, b));
            }
            if let Outcome::Trap(k) = &a {
                stats.traps += 1;
                if *k == TrapKind::Unreachable {
                    stats.unreachable += 1;
                }
            }
        }
        if !tainted {
            pair.compare_state(&exports).map_err(|mut m| {
                m.export = format!("{} (after calls to {name})", m.export);
                m
            })?;
        }
    }
    Ok(stats)
}

/// Whether two outcomes agree: same trap kind, or the same values bit for bit
/// except that two NaNs agree whatever their bits.
fn outcomes_agree(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Trap(x), Outcome::Trap(y)) => x == y,
        (Outcome::Values(x), Outcome::Values(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_agree(p, q))
        }
        _ => false,
    }
}

fn values_agree(a: &Value, b: &Value) -> bool {
    match (*a, *b) {
        (Value::F32(x), Value::F32(y)) => {
            x == y || (f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan())
        }
        (Value::F64(x), Value::F64(y)) => {
            x == y || (f64::from_bits(x).is_nan() && f64::from_bits(y).is_nan())
        }
        _ => a == b,
    }
}

/// Deterministic argument vectors for parameters `params`: zeros, small
/// values, minus one, minimum values (NaN for floats), maximum values
/// (infinities for floats), and pseudo-random bits. Reference parameters get
/// null.
fn arg_vectors(params: &[wasmi::ValType], salt: u64) -> Vec<Vec<Value>> {
    use wasmi::ValType as T;
    let mut rng = 0x5eed_0000_0000_0000 ^ salt.wrapping_mul(0x9e37_79b9);
    let mut out = Vec::new();
    for variant in 0..6 {
        let v: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let r = splitmix64(&mut rng);
                let small = i as i64 + 1;
                match (t, variant) {
                    (T::I32, 0) => Value::I32(0),
                    (T::I32, 1) => Value::I32(small as i32),
                    (T::I32, 2) => Value::I32(-1),
                    (T::I32, 3) => Value::I32(i32::MIN),
                    (T::I32, 4) => Value::I32(i32::MAX),
                    (T::I32, _) => Value::I32(r as i32),
                    (T::I64, 0) => Value::I64(0),
                    (T::I64, 1) => Value::I64(small),
                    (T::I64, 2) => Value::I64(-1),
                    (T::I64, 3) => Value::I64(i64::MIN),
                    (T::I64, 4) => Value::I64(i64::MAX),
                    (T::I64, _) => Value::I64(r as i64),
                    (T::F32, 0) => Value::F32(0),
                    (T::F32, 1) => Value::F32((small as f32 + 0.5).to_bits()),
                    (T::F32, 2) => Value::F32((-1.0f32).to_bits()),
                    (T::F32, 3) => Value::F32(0x7fc0_0000),
                    (T::F32, 4) => Value::F32(f32::INFINITY.to_bits()),
                    (T::F32, _) => Value::F32(r as u32),
                    (T::F64, 0) => Value::F64(0),
                    (T::F64, 1) => Value::F64((small as f64 + 0.5).to_bits()),
                    (T::F64, 2) => Value::F64((-1.0f64).to_bits()),
                    (T::F64, 3) => Value::F64(0x7ff8_0000_0000_0000),
                    (T::F64, 4) => Value::F64(f64::NEG_INFINITY.to_bits()),
                    (T::F64, _) => Value::F64(r),
                    (T::FuncRef, _) => Value::FuncRef(None),
                    (T::ExternRef, _) => Value::ExternRef(None),
                    (T::V128, 0) => Value::V128(0),
                    (T::V128, 1) => Value::V128(small as u128 * 0x0001_0002_0003_0004_0005_0006_0007_0008),
                    (T::V128, 2) => Value::V128(u128::MAX),
                    // f32x4 NaNs and infinities, i8 lanes at their extremes.
                    (T::V128, 3) => Value::V128(0x7fc0_0000_ff80_0000_7f80_0000_8000_0000),
                    (T::V128, 4) => Value::V128(0x7f80_7f80_8000_8000_0102_0304_fffe_8001),
                    (T::V128, _) => Value::V128((r as u128) << 64 | splitmix64(&mut rng) as u128),
                }
            })
            .collect();
        let dup = out.contains(&v);
        if !dup {
            out.push(v);
        }
    }
    out
}

fn to_wasmi(v: &Value) -> wasmi::Val {
    match *v {
        Value::I32(x) => wasmi::Val::I32(x),
        Value::I64(x) => wasmi::Val::I64(x),
        Value::F32(x) => wasmi::Val::F32(wasmi::F32::from_bits(x)),
        Value::F64(x) => wasmi::Val::F64(wasmi::F64::from_bits(x)),
        Value::FuncRef(_) => wasmi::Val::FuncRef(wasmi::Ref::Null),
        Value::ExternRef(_) => wasmi::Val::ExternRef(wasmi::Ref::Null),
        Value::V128(x) => wasmi::Val::V128(wasmi::V128::from(x)),
    }
}

fn from_wasmi(v: &wasmi::Val) -> Value {
    match v {
        wasmi::Val::I32(x) => Value::I32(*x),
        wasmi::Val::I64(x) => Value::I64(*x),
        wasmi::Val::F32(x) => Value::F32(x.to_bits()),
        wasmi::Val::F64(x) => Value::F64(x.to_bits()),
        wasmi::Val::FuncRef(r) => Value::FuncRef((!r.is_null()).then_some(0)),
        wasmi::Val::ExternRef(r) => Value::ExternRef((!r.is_null()).then_some(0)),
        wasmi::Val::V128(x) => Value::V128(x.as_u128()),
    }
}

/// References normalised (non-null is `Some(0)`).
fn normalise(v: Value) -> Value {
    match v {
        Value::FuncRef(r) => Value::FuncRef(r.map(|_| 0)),
        Value::ExternRef(r) => Value::ExternRef(r.map(|_| 0)),
        v => v,
    }
}

/// One instance of the module in each engine.
struct Pair {
    istore: interp::Store,
    iinst: interp::Instance,
    wstore: wasmi::Store<()>,
    winst: wasmi::Instance,
}

impl Pair {
    /// Instantiate in both engines: `Ok(None)` if both fail, a mismatch if
    /// only one does.
    fn new(
        engine: &wasmi::Engine,
        imod: &interp::Module,
        wmod: &wasmi::Module,
    ) -> Result<Option<Pair>, Mismatch> {
        let mut istore = interp::Store::new();
        let a = interp::Instance::instantiate(&mut istore, imod);
        let mut wstore = wasmi::Store::new(engine, ());
        let linker = wasmi::Linker::<()>::new(engine);
        let b = linker.instantiate_and_start(&mut wstore, wmod);
        match (a, b) {
            (Ok(iinst), Ok(winst)) => Ok(Some(Pair {
                istore,
                iinst,
                wstore,
                winst,
            })),
            (Err(_), Err(_)) => Ok(None),
            (a, b) => Err(mismatch(
                "<instantiate>",
                &[],
                a.map(|_| "instantiated".to_string())
                    .unwrap_or_else(|e| e.to_string()),
                b.map(|_| "instantiated".to_string())
                    .unwrap_or_else(|e| e.to_string()),
            )),
        }
    }

    fn call_interp(&mut self, name: &str, args: &[Value]) -> Outcome {
        match self.iinst.invoke(&mut self.istore, name, args) {
            Ok(v) => Outcome::Values(v.into_iter().map(normalise).collect()),
            Err(t) => Outcome::Trap(TrapKind::from_interp(&t)),
        }
    }

    fn call_wasmi(&mut self, name: &str, args: &[Value], nresults: usize) -> Outcome {
        let Some(f) = self.winst.get_func(&self.wstore, name) else {
            return Outcome::Trap(TrapKind::Other(format!("no function export {name:?}")));
        };
        let inputs: Vec<wasmi::Val> = args.iter().map(to_wasmi).collect();
        let mut outputs = vec![wasmi::Val::I32(0); nresults];
        // The output slots must have the right types.
        let ty = f.ty(&self.wstore);
        for (o, t) in outputs.iter_mut().zip(ty.results()) {
            *o = wasmi::Val::default(*t);
        }
        match f.call(&mut self.wstore, &inputs, &mut outputs) {
            Ok(()) => Outcome::Values(outputs.iter().map(from_wasmi).collect()),
            Err(e) => Outcome::Trap(TrapKind::from_wasmi(&e)),
        }
    }

    /// Compare exported globals (values) and memories (size and bytes).
    fn compare_state(&self, exports: &[(String, wasmi::ExternType)]) -> Result<(), Mismatch> {
        for (name, ty) in exports {
            match ty {
                wasmi::ExternType::Global(_) => {
                    let a = self.iinst.global(&self.istore, name).map(normalise);
                    let b = self
                        .winst
                        .get_global(&self.wstore, name)
                        .map(|g| from_wasmi(&g.get(&self.wstore)));
                    let agree = match (&a, &b) {
                        (Some(x), Some(y)) => values_agree(x, y),
                        _ => false,
                    };
                    if !agree {
                        let show = |v: Option<Value>| match v {
                            Some(v) => ShowValue(&v).to_string(),
                            None => "missing".into(),
                        };
                        return Err(mismatch(&format!("global {name:?}"), &[], show(a), show(b)));
                    }
                }
                wasmi::ExternType::Memory(_) => {
                    let a = self
                        .iinst
                        .export(&self.istore, name)
                        .and_then(|e| self.istore.memory(e));
                    let b = self
                        .winst
                        .get_memory(&self.wstore, name)
                        .map(|m| m.data(&self.wstore));
                    if a != b {
                        let show = |m: Option<&[u8]>| match m {
                            Some(m) => format!(
                                "{} bytes, hash {:016x}{}",
                                m.len(),
                                fnv1a(m),
                                first_difference(m, a.or(b).unwrap_or(&[]))
                            ),
                            None => "missing".into(),
                        };
                        return Err(mismatch(&format!("memory {name:?}"), &[], show(a), show(b)));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn first_difference(m: &[u8], other: &[u8]) -> String {
    match m.iter().zip(other).position(|(x, y)| x != y) {
        Some(i) => format!(", first difference at 0x{i:x}"),
        None => String::new(),
    }
}

/// FNV-1a hash of a byte slice (for reporting memory contents).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_modules_are_deterministic_and_valid() {
        for seed in 0..20 {
            let a = generate(seed);
            assert_eq!(a, generate(seed));
            interp::Module::new(&a).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
    }

    /// The interp-vs-wasmi modules use SIMD (a wasmi without SIMD refuses
    /// many of them), and they run in both engines alike.
    #[test]
    fn simd_modules_are_generated_and_agree() {
        let mut c = wasmi::Config::default();
        c.wasm_simd(false);
        let no_simd = wasmi::Engine::new(&c);
        let mut with_simd = 0;
        for seed in 0..30 {
            let bytes = generate_simd(seed);
            if wasmi::Module::new(&no_simd, &bytes[..]).is_err() {
                with_simd += 1;
            }
            run_differential(&bytes).unwrap_or_else(|m| panic!("seed {seed}: {m}"));
        }
        assert!(with_simd >= 10, "{with_simd} of 30 modules use SIMD");
        // `generate` stays without SIMD.
        for seed in 0..10 {
            assert!(wasmi::Module::new(&no_simd, &generate(seed)[..]).is_ok(), "seed {seed}");
        }
    }

    #[test]
    fn nan_results_agree_whatever_the_payload() {
        assert!(values_agree(
            &Value::F32(0x7fc0_0000),
            &Value::F32(0xffc0_0001)
        ));
        assert!(!values_agree(&Value::F32(0x7fc0_0000), &Value::F32(0)));
        assert!(!values_agree(&Value::F64(0), &Value::F64(1 << 63)));
    }

    /// `select (i32.const 7) (local.get 0) (i32.eqz (local.get 1))`: wasmi
    /// 2.0.0 returns 7 when `local 1` is non-zero (its fused select+eqz is
    /// inverted), which is why wasmi 1.x is the reference engine here.
    #[test]
    fn select_with_eqz_condition_agrees() {
        let wasm = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f,
            0x7f, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x0e, 0x01, 0x0a, 0x73, 0x65, 0x6c,
            0x65, 0x63, 0x74, 0x5f, 0x65, 0x71, 0x7a, 0x00, 0x00, 0x0a, 0x0c, 0x01, 0x0a, 0x00,
            0x41, 0x07, 0x20, 0x00, 0x20, 0x01, 0x45, 0x1b, 0x0b,
        ];
        let stats = run_differential_stats(&wasm).unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(stats.calls, 6);
        let m = interp::Module::new(&wasm).unwrap();
        let mut store = interp::Store::new();
        let inst = interp::Instance::instantiate(&mut store, &m).unwrap();
        let r = inst.invoke(&mut store, "select_eqz", &[Value::I32(1), Value::I32(2)]);
        assert_eq!(r, Ok(vec![Value::I32(1)]));
    }

    #[test]
    fn differential_1000_modules() {
        let start = std::time::Instant::now();
        let mut stats = RunStats::default();
        let mut failures = Vec::new();
        for seed in 0..1000 {
            match run_seed(seed) {
                Ok(s) => stats.add(&s),
                Err(m) => failures.push(m.to_string()),
            }
        }
        eprintln!(
            "fuzz: {} modules, {} calls, {} mismatches, {:.1} s",
            stats.modules + failures.len() as u64,
            stats.calls,
            failures.len(),
            start.elapsed().as_secs_f64()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(stats.calls > 300, "too few calls: {stats:?}");
    }
}
