//! The binary interface between compiled code and the runtime.
//!
//! Both `wanco-compiler` (which emits loads at these offsets) and `wanco-rt`
//! (which lays the structures out) use these constants, so they cannot drift.
//!
//! # Calling conventions
//!
//! *Native*: a function of Wasm type `[p0..pn] -> [r0..rm]` is the native
//! function `fn(vmctx: *mut VMContext, p0, .., pn [, out: *mut u64]) -> r`, where
//! `r` is the result if `m == 1`, nothing otherwise; with `m > 1` the results
//! are stored into the 8-byte slots of `out` laid out by [`slot_layout`]
//! (integers and floats stored with their own width at the start of their
//! slot, references as pointers, a v128 in two consecutive slots).
//!
//! *Array*: `fn(ctx: *mut c_void, values: *mut u64)`: parameters are read from
//! the slots of `values` laid out by [`slot_layout`] of the parameter types,
//! results written to those of the result types (the buffer holds the larger
//! of the two slot counts, at least 1). Without v128 values, value `i` is in
//! slot `i`. Every defined function has an array trampoline; host functions
//! are array functions.
//!
//! # Values
//! `i32`/`i64`/`f32`/`f64` are passed as themselves, `v128` as an LLVM
//! `<4 x i32>` (a vector register: xmm on x86_64, q on aarch64); in memory
//! (slots, global cells, the restore buffer) it is its 16 bytes in Wasm's
//! little-endian lane order. `funcref` is a pointer to a
//! [`FuncRef`] record (null = null). `externref` is an opaque pointer-sized
//! value (0 = null).
//!
//! # Globals
//! Each global has a cell of its own: 8 bytes, 16 for a v128 global (the
//! runtime aligns every cell to 16 bytes).

/// Version of this ABI; the runtime refuses objects built for another one.
pub const ABI_VERSION: u64 = 3;

/// Number of 8-byte slots a value of type `t` takes in a value buffer: 2
/// for a v128, else 1.
pub fn slot_width(t: crate::ValType) -> usize {
    if t == crate::ValType::V128 { 2 } else { 1 }
}

/// Slot index of each of `types` laid out one after another in a value
/// buffer, and the number of slots they take.
pub fn slot_layout(types: &[crate::ValType]) -> (Vec<usize>, usize) {
    let mut at = 0;
    let idx = types
        .iter()
        .map(|t| {
            let i = at;
            at += slot_width(*t);
            i
        })
        .collect();
    (idx, at)
}

/// Offsets of fields in the instance context (`VMContext`). Every field is 8 bytes.
pub mod vmctx {
    /// `*mut u8`: base of linear memory 0 (null if the module has no memory).
    /// Never changes while the instance lives: memory is reserved up front.
    pub const MEMORY_BASE: u32 = 0;
    /// `*mut Memory`: the runtime's memory record (see [`super::memory`]).
    pub const MEMORY: u32 = 8;
    /// `*const *const FuncRef`: one pointer per function index (imported first).
    pub const FUNC_REFS: u32 = 16;
    /// `*const u32`: canonical type id for each type index of the module.
    pub const TYPE_IDS: u32 = 24;
    /// `*const *mut Table`: one pointer per table index (imported first).
    pub const TABLES: u32 = 32;
    /// `*const *mut u64`: one pointer to a cell per global index (8 bytes,
    /// 16 for a v128 global).
    pub const GLOBALS: u32 = 40;
    /// `*mut c_void`: the runtime's instance object.
    pub const INSTANCE: u32 = 48;
    /// Size of the fixed part of the context.
    pub const SIZE: u32 = 56;
}

/// Layout of the runtime's memory record, pointed to by [`vmctx::MEMORY`].
pub mod memory {
    /// `u64`: current size in bytes.
    pub const SIZE_BYTES: u32 = 0;
}

/// Layout of a table, pointed to by an entry of [`vmctx::TABLES`].
pub mod table {
    /// `*mut u64`: the elements (funcref: `*const FuncRef`, externref: opaque).
    pub const ELEMS: u32 = 0;
    /// `u64`: current number of elements.
    pub const LEN: u32 = 8;
}

/// Layout of a function reference record (`FuncRef`).
pub mod funcref {
    /// `*const ()`: entry with the native convention.
    pub const NATIVE: u32 = 0;
    /// `*mut VMContext`: first argument for `NATIVE`.
    pub const VMCTX: u32 = 8;
    /// `u64`: canonical type id (compared by `call_indirect`).
    pub const TYPE_ID: u32 = 16;
    /// `*const ()`: entry with the array convention.
    pub const ARRAY: u32 = 24;
    /// `*mut c_void`: first argument for `ARRAY`.
    pub const ARRAY_CTX: u32 = 32;
    /// Size of the record.
    pub const SIZE: u32 = 40;
}

/// Symbols shared by compiled objects and the runtime.
pub mod symbols {
    /// Global `usize`: lowest address the native stack
    /// may reach before compiled code reports stack exhaustion.
    pub const STACK_LIMIT: &str = "wanco_stack_limit";
    /// `fn(vmctx, code: u32) -> !`: raise a trap.
    pub const TRAP: &str = "wanco_trap";
    /// `fn(vmctx, delta_pages: u32) -> i32`: `memory.grow`.
    pub const MEMORY_GROW: &str = "wanco_memory_grow";
    /// `fn(vmctx, dst: u32, val: u32, len: u32)`: `memory.fill`.
    pub const MEMORY_FILL: &str = "wanco_memory_fill";
    /// `fn(vmctx, dst: u32, src: u32, len: u32)`: `memory.copy`.
    pub const MEMORY_COPY: &str = "wanco_memory_copy";
    /// `fn(vmctx, seg: u32, dst: u32, src: u32, len: u32)`: `memory.init`.
    pub const MEMORY_INIT: &str = "wanco_memory_init";
    /// `fn(vmctx, seg: u32)`: `data.drop`.
    pub const DATA_DROP: &str = "wanco_data_drop";
    /// `fn(vmctx, table: u32, idx: u32) -> u64`: `table.get`.
    pub const TABLE_GET: &str = "wanco_table_get";
    /// `fn(vmctx, table: u32, idx: u32, val: u64)`: `table.set`.
    pub const TABLE_SET: &str = "wanco_table_set";
    /// `fn(vmctx, table: u32, init: u64, delta: u32) -> i32`: `table.grow`.
    pub const TABLE_GROW: &str = "wanco_table_grow";
    /// `fn(vmctx, table: u32, dst: u32, val: u64, len: u32)`: `table.fill`.
    pub const TABLE_FILL: &str = "wanco_table_fill";
    /// `fn(vmctx, dst_table: u32, src_table: u32, dst: u32, src: u32, len: u32)`: `table.copy`.
    pub const TABLE_COPY: &str = "wanco_table_copy";
    /// `fn(vmctx, table: u32, seg: u32, dst: u32, src: u32, len: u32)`: `table.init`.
    pub const TABLE_INIT: &str = "wanco_table_init";
    /// `fn(vmctx, seg: u32)`: `elem.drop`.
    pub const ELEM_DROP: &str = "wanco_elem_drop";
    /// `fn(argc: i32, argv: **u8, module: *const ModuleDescriptor) -> i32`:
    /// entry of a compiled program (called by the `main` the compiler emits).
    pub const PROGRAM_MAIN: &str = "wanco_program_main";
    /// `fn(argc: i32, argv: **u8, modules: *const *const ModuleDescriptor, n: u64) -> i32`:
    /// entry of a spec-test bundle.
    pub const SPEC_MAIN: &str = "wanco_spec_main";
    /// `u64` global: migration points left until the runtime's next look
    /// (counted down by compiled code; current at every call, return and
    /// `unreachable`: a loop counts in a register and stores the count back
    /// before calls and when left; reaching zero calls [`CR_SLOW`]). The
    /// runtime sets it to a batch of points, to the points left to a
    /// `--checkpoint-after-points` target, or to 1 while a restore rebuilds
    /// the frames.
    pub const CR_COUNTER: &str = "wanco_cr_counter";
    /// `fn(vmctx, point: u32) -> u32`: the slow path of a migration point;
    /// returns a route (see [`crate::crmeta`]).
    pub const CR_SLOW: &str = "wanco_cr_slow";
    /// `*mut u128` global: the restore value buffer (fixed slots, locals,
    /// operand stack; 16-byte entries, a value at the start of its entry,
    /// a v128 filling it) the restore routes load from.
    pub const CR_VALUES: &str = "wanco_cr_values";
    /// Suffix of the checkpoint metadata symbol: `<descriptor symbol>_crmeta`.
    pub const CRMETA_SUFFIX: &str = "_crmeta";
}

/// The module descriptor every compiled object exports (C layout, all fields 8 bytes):
///
/// | offset | field |
/// |---|---|
/// | 0 | `u64` ABI version ([`ABI_VERSION`]) |
/// | 8 | `*const u8` module metadata ([`crate::module::ModuleInfo`], MessagePack) |
/// | 16 | `u64` metadata length |
/// | 24 | `*const *const ()` native entry of each *defined* function |
/// | 32 | `*const *const ()` array trampoline of each *defined* function |
/// | 40 | `*const *const ()` native adapter for each *imported* function (calls its array entry) |
/// | 48 | `*const u8` checkpoint metadata: `u64` length then [`crate::crmeta::CrMeta`] (MessagePack); null when compiled without checkpointing |
pub mod descriptor {
    /// Size of the descriptor.
    pub const SIZE: u32 = 56;
}

/// Trap codes passed to [`symbols::TRAP`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapCode {
    /// `unreachable` executed.
    Unreachable = 0,
    /// Integer division or remainder by zero.
    IntegerDivideByZero = 1,
    /// Signed division overflow (`INT_MIN / -1`).
    IntegerOverflow = 2,
    /// Float-to-int conversion of NaN.
    InvalidConversion = 3,
    /// Memory access out of bounds.
    MemoryOutOfBounds = 4,
    /// Table access out of bounds (including `call_indirect` index).
    TableOutOfBounds = 5,
    /// `call_indirect` to a null entry.
    IndirectCallNull = 6,
    /// `call_indirect` signature mismatch.
    IndirectCallType = 7,
    /// Native stack exhausted (runaway recursion).
    StackExhausted = 8,
    /// Float-to-int conversion out of the integer's range.
    ConversionOverflow = 9,
    /// Access to an uninitialised element (null funcref) in `table.*`.
    UninitializedElement = 10,
    /// `table.get`/`set`/`fill`/`copy`/`init` out of bounds.
    TableAccessOutOfBounds = 11,
}

impl TrapCode {
    /// Decode a trap code.
    pub fn from_u32(v: u32) -> Option<TrapCode> {
        use TrapCode::*;
        Some(match v {
            0 => Unreachable,
            1 => IntegerDivideByZero,
            2 => IntegerOverflow,
            3 => InvalidConversion,
            4 => MemoryOutOfBounds,
            5 => TableOutOfBounds,
            6 => IndirectCallNull,
            7 => IndirectCallType,
            8 => StackExhausted,
            9 => ConversionOverflow,
            10 => UninitializedElement,
            11 => TableAccessOutOfBounds,
            _ => return None,
        })
    }

    /// The message the spec suite and users see (spec wording).
    pub fn message(self) -> &'static str {
        use TrapCode::*;
        match self {
            Unreachable => "unreachable",
            IntegerDivideByZero => "integer divide by zero",
            IntegerOverflow => "integer overflow",
            InvalidConversion => "invalid conversion to integer",
            MemoryOutOfBounds => "out of bounds memory access",
            TableOutOfBounds => "undefined element",
            IndirectCallNull => "uninitialized element",
            IndirectCallType => "indirect call type mismatch",
            StackExhausted => "call stack exhausted",
            ConversionOverflow => "integer overflow",
            UninitializedElement => "uninitialized element",
            TableAccessOutOfBounds => "out of bounds table access",
        }
    }
}

/// Exit code of a process that ended in a trap (as wasmtime: 128 + SIGABRT).
pub const TRAP_EXIT_CODE: i32 = 134;
