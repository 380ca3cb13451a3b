//! End-to-end tests on objects produced by LLVM 19 (`opt` + `llc`) for
//! x86-64 and AArch64: stack map records out of relocatable objects, CFI
//! unwinding of a simulated stack, and decoding of the values it holds.
//!
//! The stack layouts below were read off `llvm-objdump -d` and
//! `llvm-dwarfdump --eh-frame` of the fixture objects (see the comments of
//! each simulation); they are written down independently of the CFI so that
//! the unwinder is checked against the real prologues.
#![cfg(feature = "elf")]

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SymbolSection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use wanco_state::crmeta::{CrFunc, CrMeta, CrPoint, CrRecord, Location, CRMETA_VERSION};
use wanco_state::snapshot::FrameKind;
use wanco_state::ValType;
use wanco_translate::decode::{decode_record, walk, NativeFrame, RawValue, VirtualFrame};
use wanco_translate::elf::records_from_object;
use wanco_translate::unwind::{Cfi, Isa, Memory, Regs};
use wanco_translate::Error;

const LLVM_BIN: &str = "/usr/lib/llvm-19/bin";

fn llvm_available() -> bool {
    let ok = Path::new(LLVM_BIN).join("llc").exists() && Path::new(LLVM_BIN).join("opt").exists();
    if !ok {
        eprintln!("note: {LLVM_BIN}/llc not found; skipping the LLVM-based test");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn triple(isa: Isa) -> &'static str {
    match isa {
        Isa::X86_64 => "x86_64-linux-gnu",
        Isa::Aarch64 => "aarch64-linux-gnu",
    }
}

/// Compile an IR file like the wanco compiler does; returns the object path.
fn compile_ir(dir: &Path, ir: &Path, isa: Isa, gc: bool) -> PathBuf {
    let stem = ir.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
    let bc = dir.join(format!("{stem}.{}.bc", isa.name()));
    let obj = dir.join(format!("{stem}.{}.o", isa.name()));
    let passes = if gc {
        "default<O2>,rewrite-statepoints-for-gc"
    } else {
        "default<O2>"
    };
    run(Command::new(Path::new(LLVM_BIN).join("opt"))
        .arg(format!("-passes={passes}"))
        .arg(ir)
        .arg("-o")
        .arg(&bc));
    run(Command::new(Path::new(LLVM_BIN).join("llc"))
        .args(["-O2", &format!("-mtriple={}", triple(isa))])
        .args([
            "-relocation-model=pic",
            "-use-registers-for-deopt-values",
            "-filetype=obj",
        ])
        .arg(&bc)
        .arg("-o")
        .arg(&obj));
    obj
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn compile_fixture(dir: &Path, name: &str, isa: Isa) -> Vec<u8> {
    let obj = compile_ir(dir, &fixture(name), isa, true);
    std::fs::read(&obj).expect("read object")
}

/// The compiler's naming: `f<module index>`, with two imported functions
/// (defined index = module index - 2).
fn defined_index(name: &str) -> Option<u32> {
    name.strip_prefix('f')?.parse::<u32>().ok()?.checked_sub(2)
}

fn reg(reg: u16, size: u8) -> Location {
    Location::Register { reg, size }
}

fn ind(reg: u16, offset: i32, size: u8) -> Location {
    Location::Indirect { reg, offset, size }
}

const BIG: i64 = 0x1234_5678_9abc_def0; // 1311768467463790320 in the IR

/// What LLVM 19 produces for `multi.ll` (verified with
/// `llvm-readobj --stackmap`). f2 = defined 0, f3 = 1, f4 = 2; the record of
/// `wanco_other` is skipped.
fn expected_multi_records(isa: Isa) -> Vec<CrRecord> {
    match isa {
        Isa::X86_64 => vec![
            CrRecord {
                func: 0,
                offset: 16,
                locations: vec![Location::Constant(9), reg(3, 4)],
            },
            CrRecord {
                func: 1,
                offset: 52,
                locations: vec![
                    Location::Constant(2),
                    reg(15, 4),   // a: r15 (holds sext(a))
                    ind(7, 8, 8), // d: spilled (no callee-saved xmm on SysV)
                    reg(3, 4),    // s: rbx
                    reg(14, 8),   // x2: r14
                    ind(7, 4, 4), // f: spilled, 4 bytes
                ],
            },
            CrRecord {
                func: 2,
                offset: 38,
                locations: vec![
                    Location::Constant(1),
                    reg(3, 8),               // x: rbx
                    ind(7, 4, 4),            // f: spilled
                    Location::Constant(BIG), // ConstantIndex
                    Location::Constant(-5),  // sign-extended small constant
                    reg(14, 8),              // vm: r14
                ],
            },
        ],
        Isa::Aarch64 => vec![
            CrRecord {
                func: 0,
                offset: 16,
                locations: vec![Location::Constant(9), reg(19, 4)],
            },
            CrRecord {
                func: 1,
                offset: 52,
                locations: vec![
                    Location::Constant(2),
                    reg(19, 4), // a: w19
                    reg(72, 8), // d: d8
                    reg(21, 4), // s: w21
                    reg(20, 8), // x2: x20
                    reg(73, 4), // f: s9 (low half of d9)
                ],
            },
            CrRecord {
                func: 2,
                offset: 48,
                locations: vec![
                    Location::Constant(1),
                    reg(19, 8), // x: x19
                    reg(72, 4), // f: s8
                    Location::Constant(BIG),
                    Location::Constant(-5),
                    reg(20, 8), // vm: x20
                ],
            },
        ],
    }
}

#[test]
fn records_from_llc_objects() {
    if !llvm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for isa in [Isa::X86_64, Isa::Aarch64] {
        let obj = compile_fixture(dir.path(), "multi.ll", isa);
        let recs = records_from_object(&obj, defined_index).expect("records");
        assert_eq!(recs, expected_multi_records(isa), "{isa:?}");

        // Every function skipped: nothing.
        assert_eq!(records_from_object(&obj, |_| None), Ok(vec![]));

        // Including `wanco_other` (header N = 1: a single constant 0).
        let all = records_from_object(&obj, |n| {
            if n == "wanco_other" {
                Some(7)
            } else {
                defined_index(n)
            }
        })
        .expect("records");
        assert_eq!(all.len(), 4);
        let other = &all[3];
        assert_eq!(other.func, 7);
        assert_eq!(other.locations, vec![Location::Constant(0)]);
    }
}

#[test]
fn records_of_inlined_frames() {
    if !llvm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for isa in [Isa::X86_64, Isa::Aarch64] {
        let obj = compile_fixture(dir.path(), "inlined.ll", isa);
        let recs = records_from_object(&obj, defined_index).expect("records");
        // f3 is inlined twice into f2: two records of f2, each with two
        // virtual frames (f2's point then f3's point 7).
        assert_eq!(recs.len(), 2, "{isa:?}: {recs:?}");
        let (a, d, s0, s1) = match isa {
            // a in rbx, d spilled at [rsp], s in rbp, y.i in r15.
            Isa::X86_64 => (reg(3, 4), ind(7, 0, 8), reg(6, 4), reg(15, 4)),
            Isa::Aarch64 => (reg(19, 4), reg(72, 8), reg(21, 4), reg(22, 4)),
        };
        let offsets = match isa {
            Isa::X86_64 => [42, 76],
            Isa::Aarch64 => [56, 88],
        };
        assert_eq!(
            recs,
            vec![
                CrRecord {
                    func: 0,
                    offset: offsets[0],
                    locations: vec![Location::Constant(3), a, d, s0, Location::Constant(7), a],
                },
                CrRecord {
                    func: 0,
                    offset: offsets[1],
                    locations: vec![Location::Constant(4), a, d, s1, Location::Constant(7), s1],
                },
            ],
            "{isa:?}"
        );
    }
}

#[test]
fn object_without_stackmaps_and_garbage() {
    if !llvm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ir = dir.path().join("plain.ll");
    std::fs::write(
        &ir,
        "define i32 @f2(i32 %a) {\n  %b = add i32 %a, 1\n  ret i32 %b\n}\n",
    )
    .expect("write");
    for isa in [Isa::X86_64, Isa::Aarch64] {
        let obj = std::fs::read(compile_ir(dir.path(), &ir, isa, false)).expect("read");
        assert_eq!(records_from_object(&obj, defined_index), Ok(vec![]));
    }
    assert!(matches!(
        records_from_object(b"not an object", defined_index),
        Err(Error::Object(_))
    ));

    // A corrupted stack map section: an error with the offset, no panic.
    let mut obj = compile_fixture(dir.path(), "multi.ll", Isa::X86_64);
    let file = object::File::parse(&*obj).expect("parse");
    let (start, _) = file
        .section_by_name(".llvm_stackmaps")
        .and_then(|s| s.file_range())
        .expect("stackmap section");
    drop(file);
    obj[start as usize] = 2; // version
    assert_eq!(
        records_from_object(&obj, defined_index),
        Err(Error::StackMap {
            offset: 0,
            message: "expected stack map version 3, found 2".into()
        })
    );
    obj[start as usize] = 3;
    obj[start as usize + 8..start as usize + 12].copy_from_slice(&100u32.to_le_bytes()); // NumConstants
    assert!(matches!(
        records_from_object(&obj, defined_index),
        Err(Error::StackMap { .. })
    ));
}

// ---------------------------------------------------------------------------
// Unwinding and decoding a simulated stack.

/// Sparse 8-byte-word memory.
#[derive(Default)]
struct Words(HashMap<u64, u64>);

impl Words {
    fn put(&mut self, addr: u64, v: u64) {
        assert_eq!(addr % 8, 0);
        self.0.insert(addr, v);
    }
}

impl Memory for Words {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.0.get(&addr).copied()
    }
}

/// Start addresses of f2, f3, f4 (defined 0, 1, 2) in the loaded code.
#[derive(Clone, Copy, Debug)]
struct Funcs {
    f2: u64,
    f3: u64,
    f4: u64,
}

/// The Wasm values of the scenario: the trampoline called f2(vm, a), which
/// called f3(vm, a, d) (d = 1.5 in the IR, but any value will do for the
/// simulated stack), which called f4(vm, x2, f), which is in its slow path.
struct Vals {
    vm: u64,
    a: u32,
    d: u64,
    s: u32,
    x2: u64,
    f: u32,
}

fn vals() -> Vals {
    let a: i32 = -7;
    Vals {
        vm: 0x7f00_1234_5000,
        a: a as u32,
        d: 2.75f64.to_bits(),
        s: (a + 5) as u32,
        x2: (i64::from(a) * 1_000_000_007) as u64,
        f: (a as f32).to_bits(),
    }
}

const S0: u64 = 0x7ffc_0000_1000;
/// Registers of the trampoline (preserved through the compiled frames).
const T_RBX: u64 = 0x1111_0000_0000_0003;
const T_RBP: u64 = 0x1111_0000_0000_0006;
const T_R14: u64 = 0x1111_0000_0000_000e;
const T_R15: u64 = 0x1111_0000_0000_000f;
const T_X19: u64 = 0x2222_0000_0000_0013;
const T_X20: u64 = 0x2222_0000_0000_0014;
const T_X21: u64 = 0x2222_0000_0000_0015;
const T_X29: u64 = 0x2222_0000_0000_001d;
const T_D8: u64 = 0x2222_0000_0000_0048;
const T_D9: u64 = 0x2222_0000_0000_0049;

/// Expected pc, sp and `(register, value)`s of one frame.
type FrameState = (u64, u64, Vec<(u16, u64)>);

/// The expected state of each frame after unwinding.
struct Expect {
    /// f4, f3, f2 and the trampoline.
    frames: Vec<FrameState>,
}

/// x86-64 (llc output for multi.ll, .text offsets):
/// ```text
/// f4:  push r14; push rbx; push rax; movss [rsp+4], xmm0; ... call slow  ; ret at +0x26
///      CFA = rsp+32, rbx = [CFA-24], r14 = [CFA-16], ra = [CFA-8]
/// f3:  push r15; push r14; push rbx; sub rsp, 16; movsd [rsp+8], xmm0;
///      movss [rsp+4], xmm0; ... call f4                                ; ret at +0x34
///      CFA = rsp+48, rbx = [CFA-32], r14 = [CFA-24], r15 = [CFA-16]
/// f2:  push rbx; mov ebx, esi; ... call f3                               ; ret at +0x10
///      CFA = rsp+16, rbx = [CFA-16]
/// ```
fn simulate_x86_64(fs: Funcs, tramp: u64) -> (Regs, Words, Expect) {
    let v = vals();
    let mut m = Words::default();
    // f2's frame: entered with [S0] = return address into the trampoline.
    m.put(S0, tramp);
    m.put(S0 - 8, T_RBX); // push rbx
    m.put(S0 - 16, fs.f2 + 0x10); // call f3
                                  // f3's frame.
    m.put(S0 - 24, T_R15);
    m.put(S0 - 32, T_R14);
    let f2_rbx = 0xdead_0000_0000_0000 | u64::from(v.a); // garbage above the i32
    m.put(S0 - 40, f2_rbx);
    m.put(S0 - 48, v.d); // [rsp+8], rsp = S0-56
    m.put(S0 - 56, (u64::from(v.f) << 32) | 0xcafe_babe); // [rsp+4]
    m.put(S0 - 64, fs.f3 + 0x34); // call f4
                                  // f4's frame.
    m.put(S0 - 72, v.x2); // push r14 (f3's r14)
    let f3_rbx = 0xbeef_0000_0000_0000 | u64::from(v.s);
    m.put(S0 - 80, f3_rbx); // push rbx (f3's rbx)
    m.put(S0 - 88, (u64::from(v.f) << 32) | 0x1111_2222); // push rax; [rsp+4] = f
    let f3_r15 = i64::from(v.a as i32) as u64; // movslq: sext(a)

    let mut r = Regs::new(Isa::X86_64, fs.f4 + 0x26);
    r.set_sp(S0 - 88);
    r.set(3, v.x2); // rbx = x
    r.set(14, v.vm); // r14 = vm
    r.set(15, f3_r15);
    r.set(6, T_RBP);
    r.set(0, 0x5555); // rax: caller-saved garbage
    r.set(5, 0x6666); // rdi

    let e = Expect {
        frames: vec![
            (
                fs.f4 + 0x26,
                S0 - 88,
                vec![(3, v.x2), (14, v.vm), (15, f3_r15), (6, T_RBP)],
            ),
            (
                fs.f3 + 0x34,
                S0 - 56,
                vec![(3, f3_rbx), (14, v.x2), (15, f3_r15), (6, T_RBP)],
            ),
            (
                fs.f2 + 0x10,
                S0 - 8,
                vec![(3, f2_rbx), (14, T_R14), (15, T_R15), (6, T_RBP)],
            ),
            (
                tramp,
                S0 + 8,
                vec![(3, T_RBX), (14, T_R14), (15, T_R15), (6, T_RBP)],
            ),
        ],
    };
    (r, m, e)
}

/// AArch64 (llc output for multi.ll, .text offsets):
/// ```text
/// f4:  str d8, [sp,#-32]!; str x30, [sp,#8]; stp x20, x19, [sp,#16]; fmov s8, s0; ... bl slow ; ret at +0x30
///      CFA = sp+32: x19 = [CFA-8], x20 = [CFA-16], x30 = [CFA-24], d8 = [CFA-32]
/// f3:  stp d9, d8, [sp,#-48]!; stp x30, x21, [sp,#16]; stp x20, x19, [sp,#32]; ... bl f4   ; ret at +0x34
///      CFA = sp+48: x19 = [CFA-8], x20 = [CFA-16], x21 = [CFA-24], x30 = [CFA-32],
///      d8 = [CFA-40], d9 = [CFA-48]
/// f2:  stp x30, x19, [sp,#-16]!; ... bl f3                                                 ; ret at +0x10
///      CFA = sp+16: x19 = [CFA-8], x30 = [CFA-16]
/// ```
fn simulate_aarch64(fs: Funcs, tramp: u64) -> (Regs, Words, Expect) {
    let v = vals();
    let mut m = Words::default();
    // f2's frame (CFA = S0).
    m.put(S0 - 8, T_X19);
    m.put(S0 - 16, tramp);
    // f3's frame (CFA = S0-16).
    let f2_x19 = 0xdead_0000_0000_0000 | u64::from(v.a);
    m.put(S0 - 24, f2_x19);
    m.put(S0 - 32, T_X20);
    m.put(S0 - 40, T_X21);
    m.put(S0 - 48, fs.f2 + 0x10);
    m.put(S0 - 56, T_D8);
    m.put(S0 - 64, T_D9);
    // f4's frame (CFA = S0-64).
    let f3_x19 = 0xbeef_0000_0000_0000 | u64::from(v.a);
    m.put(S0 - 72, f3_x19);
    m.put(S0 - 80, v.x2);
    m.put(S0 - 88, fs.f3 + 0x34);
    m.put(S0 - 96, v.d); // f3's d8

    let f3_x21 = 0x7777_0000_0000_0000 | u64::from(v.s);
    let f3_d9 = 0x4141_4141_0000_0000 | u64::from(v.f); // s9 in the low half
    let f4_d8 = 0x4242_4242_0000_0000 | u64::from(v.f); // s8
    let mut r = Regs::new(Isa::Aarch64, fs.f4 + 0x30);
    r.set_sp(S0 - 96);
    r.set(19, v.x2);
    r.set(20, v.vm);
    r.set(21, f3_x21);
    r.set(29, T_X29);
    r.set(30, fs.f4 + 0x30);
    r.set(72, f4_d8);
    r.set(73, f3_d9);
    r.set(0, 0x5555); // x0: caller-saved garbage

    let e = Expect {
        frames: vec![
            (
                fs.f4 + 0x30,
                S0 - 96,
                vec![
                    (19, v.x2),
                    (20, v.vm),
                    (21, f3_x21),
                    (72, f4_d8),
                    (73, f3_d9),
                    (29, T_X29),
                ],
            ),
            (
                fs.f3 + 0x34,
                S0 - 64,
                vec![
                    (19, f3_x19),
                    (20, v.x2),
                    (21, f3_x21),
                    (72, v.d),
                    (73, f3_d9),
                    (29, T_X29),
                    (30, fs.f3 + 0x34),
                ],
            ),
            (
                fs.f2 + 0x10,
                S0 - 16,
                vec![
                    (19, f2_x19),
                    (20, T_X20),
                    (21, T_X21),
                    (72, T_D8),
                    (73, T_D9),
                    (29, T_X29),
                    (30, fs.f2 + 0x10),
                ],
            ),
            (
                tramp,
                S0,
                vec![
                    (19, T_X19),
                    (20, T_X20),
                    (21, T_X21),
                    (72, T_D8),
                    (73, T_D9),
                    (29, T_X29),
                    (30, tramp),
                ],
            ),
        ],
    };
    (r, m, e)
}

fn simulate(isa: Isa, fs: Funcs, tramp: u64) -> (Regs, Words, Expect) {
    match isa {
        Isa::X86_64 => simulate_x86_64(fs, tramp),
        Isa::Aarch64 => simulate_aarch64(fs, tramp),
    }
}

fn filler_point(func: u32) -> CrPoint {
    CrPoint {
        func,
        code_offset: 0,
        kind: FrameKind::Entry,
        indirect: false,
        stack: vec![],
        args: 0,
        callee: None,
        parent: None,
        route: 0,
    }
}

/// Metadata of the multi.ll scenario: module functions 2 (f2), 3 (f3), 4 (f4).
fn multi_meta(isa: Isa, records: Vec<CrRecord>) -> CrMeta {
    let mut points: Vec<CrPoint> = (0..10).map(|_| filler_point(2)).collect();
    points[1] = CrPoint {
        func: 4,
        code_offset: 100,
        kind: FrameKind::Loop,
        stack: vec![ValType::I64, ValType::I32, ValType::ExternRef],
        ..filler_point(4)
    };
    points[2] = CrPoint {
        func: 3,
        code_offset: 80,
        kind: FrameKind::Call,
        stack: vec![ValType::I64, ValType::F32],
        args: 3,
        ..filler_point(3)
    };
    points[9] = CrPoint {
        func: 2,
        code_offset: 60,
        kind: FrameKind::Call,
        args: 3,
        ..filler_point(2)
    };
    let func = |func, locals| CrFunc {
        func,
        locals,
        entry_point: 0,
        max_height: 4,
    };
    CrMeta {
        version: CRMETA_VERSION,
        module: String::new(),
        build: String::new(),
        isa: isa.name().to_string(),
        funcs: vec![
            func(2, vec![ValType::I32]),
            func(3, vec![ValType::I32, ValType::F64, ValType::I32]),
            func(4, vec![ValType::I64, ValType::F32]),
        ]
        .into(),
        points: points.into(),
        records: records.into(),
    }
}

fn raw(ty: ValType, bits: u64) -> RawValue {
    RawValue::new(ty, bits)
}

fn expected_walk(fs: Funcs, isa: Isa) -> Vec<NativeFrame> {
    let v = vals();
    let (off4, off3, off2) = match isa {
        Isa::X86_64 => (0x26, 0x34, 0x10),
        Isa::Aarch64 => (0x30, 0x34, 0x10),
    };
    let (sp4, sp3, sp2) = match isa {
        Isa::X86_64 => (S0 - 88, S0 - 56, S0 - 8),
        Isa::Aarch64 => (S0 - 96, S0 - 64, S0 - 16),
    };
    // The caller of the outermost compiled frame (the trampoline) has its sp
    // above the return address slot on x86-64.
    let cfa2 = match isa {
        Isa::X86_64 => S0 + 8,
        Isa::Aarch64 => S0,
    };
    vec![
        NativeFrame {
            pc: fs.f4 + off4,
            sp: sp4,
            cfa: sp3,
            func: 2,
            offset: off4 as u32,
            frames: vec![VirtualFrame {
                point: 1,
                locals: vec![raw(ValType::I64, v.x2), raw(ValType::F32, v.f.into())],
                stack: vec![
                    raw(ValType::I64, BIG as u64),
                    raw(ValType::I32, 0xffff_fffb),
                    raw(ValType::ExternRef, v.vm),
                ],
            }],
        },
        NativeFrame {
            pc: fs.f3 + off3,
            sp: sp3,
            cfa: sp2,
            func: 1,
            offset: off3 as u32,
            frames: vec![VirtualFrame {
                point: 2,
                locals: vec![
                    raw(ValType::I32, v.a.into()),
                    raw(ValType::F64, v.d),
                    raw(ValType::I32, v.s.into()),
                ],
                stack: vec![raw(ValType::I64, v.x2), raw(ValType::F32, v.f.into())],
            }],
        },
        NativeFrame {
            pc: fs.f2 + off2,
            sp: sp2,
            cfa: cfa2,
            func: 0,
            offset: off2 as u32,
            frames: vec![VirtualFrame {
                point: 9,
                locals: vec![raw(ValType::I32, v.a.into())],
                stack: vec![],
            }],
        },
    ]
}

/// Step through the four frames, checking every register of the
/// expectation, then walk and decode.
fn check_stack(isa: Isa, cfi: &Cfi<'_>, fs: Funcs, tramp: u64, records: Vec<CrRecord>) {
    let (start, mem, expect) = simulate(isa, fs, tramp);

    let mut regs = start.clone();
    for (k, (pc, sp, vals)) in expect.frames.iter().enumerate() {
        assert_eq!(regs.pc(), *pc, "{isa:?} frame {k}: pc");
        assert_eq!(regs.sp(), Some(*sp), "{isa:?} frame {k}: sp");
        for (r, v) in vals {
            assert_eq!(
                regs.get(*r),
                Some(*v),
                "{isa:?} frame {k}: {}",
                isa.reg_name(*r)
            );
        }
        if k > 0 {
            // Caller-saved registers are not recovered.
            assert_eq!(regs.get(0), None, "{isa:?} frame {k}: register 0");
        }
        if k + 1 < expect.frames.len() {
            regs = cfi
                .step(&regs, &mem)
                .unwrap_or_else(|e| panic!("{isa:?} frame {k}: {e}"));
        }
    }
    // The trampoline has no unwind info in this object.
    assert!(cfi.step(&regs, &mem).is_err());

    let meta = multi_meta(isa, records);
    let starts = [fs.f2, fs.f3, fs.f4];
    let frames = walk(&meta, &starts, cfi, start.clone(), &mem).expect("walk");
    assert_eq!(frames, expected_walk(fs, isa), "{isa:?}");

    // A saved register that cannot be read: an error naming it and its address.
    let mut holey = Words(mem.0.clone());
    let (hole, name) = match isa {
        Isa::X86_64 => (S0 - 80, "rbx"),
        Isa::Aarch64 => (S0 - 72, "x19"),
    };
    holey.0.remove(&hole);
    match walk(&meta, &starts, cfi, start.clone(), &holey) {
        Err(Error::Memory { addr, what }) => {
            assert_eq!(addr, hole);
            assert!(what.contains(name), "{what}");
        }
        other => panic!("{isa:?}: expected a memory error, got {other:?}"),
    }

    // The innermost frame must be a return site.
    let mut bad = start.clone();
    bad.set_pc(fs.f4 + 1);
    assert!(matches!(
        walk(&meta, &starts, cfi, bad, &mem),
        Err(Error::Decode(_))
    ));
    let mut bad = start;
    bad.set_pc(1);
    assert!(matches!(
        walk(&meta, &starts, cfi, bad.clone(), &mem),
        Err(Error::Decode(_))
    ));
    assert_eq!(cfi.step(&bad, &mem), Err(Error::NoUnwindInfo { pc: 1 }));
}

/// Apply the `.eh_frame` relocations of a relocatable object with `.text`
/// loaded at `text` and `.eh_frame` at `eh`. Returns the relocated bytes.
fn relocate_eh_frame(obj: &[u8], text: u64, eh: u64) -> Vec<u8> {
    let file = object::File::parse(obj).expect("parse");
    let text_index = file.section_by_name(".text").expect(".text").index();
    let sec = file.section_by_name(".eh_frame").expect(".eh_frame");
    let mut data = sec.data().expect("data").to_vec();
    for (off, r) in sec.relocations() {
        let RelocationTarget::Symbol(si) = r.target() else {
            panic!("target {:?}", r.target())
        };
        let sym = file.symbol_by_index(si).expect("symbol");
        assert_eq!(
            sym.section(),
            SymbolSection::Section(text_index),
            "eh_frame relocation target"
        );
        let s = text + sym.address();
        let p = eh + off;
        let val = (s as i64 + r.addend() - p as i64) as i32; // PC32 / PREL32
        data[off as usize..off as usize + 4].copy_from_slice(&val.to_le_bytes());
    }
    data
}

fn symbol_address(file: &object::File<'_>, name: &str) -> u64 {
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .expect(name)
}

#[test]
fn unwind_and_decode_relocated_object() {
    if !llvm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for isa in [Isa::X86_64, Isa::Aarch64] {
        let obj = compile_fixture(dir.path(), "multi.ll", isa);
        let records = records_from_object(&obj, defined_index).expect("records");
        const TEXT: u64 = 0x40_0000;
        const EH: u64 = 0x50_0000;
        let eh = relocate_eh_frame(&obj, TEXT, EH);
        let cfi = Cfi::from_eh_frame(isa, &eh, EH);
        let file = object::File::parse(&*obj).expect("parse");
        let fs = Funcs {
            f2: TEXT + symbol_address(&file, "f2"),
            f3: TEXT + symbol_address(&file, "f3"),
            f4: TEXT + symbol_address(&file, "f4"),
        };
        assert_eq!(cfi.fde_range(fs.f4).map(|r| r.0), Ok(fs.f4));
        // The trampoline: past the end of the code.
        check_stack(isa, &cfi, fs, TEXT + 0x10_0000, records);
    }
}

/// Link the fixture into a shared object with the system linker (GNU ld
/// writes `.eh_frame_hdr`), then unwind with the binary search table.
#[test]
fn unwind_and_decode_linked_shared_object() {
    if !llvm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pending = dir.path().join("pending.ll");
    std::fs::write(&pending, "@wanco_cr_pending = hidden global i32 0\n").expect("write");
    for (isa, cc) in [
        (Isa::X86_64, "gcc"),
        (Isa::Aarch64, "aarch64-linux-gnu-gcc"),
    ] {
        if Command::new(cc).arg("--version").output().is_err() {
            eprintln!("note: {cc} not found; skipping the linked {isa:?} case");
            continue;
        }
        let obj_path = compile_ir(dir.path(), &fixture("multi.ll"), isa, true);
        let obj = std::fs::read(&obj_path).expect("read");
        let records = records_from_object(&obj, defined_index).expect("records");
        let p = compile_ir(dir.path(), &pending, isa, false);
        let so = dir.path().join(format!("multi.{}.so", isa.name()));
        run(Command::new(cc)
            .args(["-shared", "-nostdlib", "-Wl,--eh-frame-hdr", "-o"])
            .arg(&so)
            .arg(&obj_path)
            .arg(&p));
        let bytes = std::fs::read(&so).expect("read so");
        let file = object::File::parse(&*bytes).expect("parse so");
        let hdr = file
            .section_by_name(".eh_frame_hdr")
            .expect(".eh_frame_hdr");
        let eh = file.section_by_name(".eh_frame").expect(".eh_frame");
        let (hdr_data, eh_data) = (hdr.data().expect("hdr"), eh.data().expect("eh"));
        let cfi = Cfi::from_eh_frame_hdr(isa, hdr_data, hdr.address(), eh_data, eh.address())
            .expect("eh_frame_hdr");
        assert!(cfi.has_search_table());
        // Wrong .eh_frame address: refused.
        assert!(
            Cfi::from_eh_frame_hdr(isa, hdr_data, hdr.address(), eh_data, eh.address() + 8)
                .is_err()
        );
        let fs = Funcs {
            f2: symbol_address(&file, "f2"),
            f3: symbol_address(&file, "f3"),
            f4: symbol_address(&file, "f4"),
        };
        // The search table and the linear scan agree.
        let linear = Cfi::from_eh_frame(isa, eh_data, eh.address());
        for f in [fs.f2, fs.f3, fs.f4] {
            let r = cfi.fde_range(f + 4).expect("fde");
            assert_eq!(r.0, f);
            assert_eq!(linear.fde_range(f + 4), Ok(r));
        }
        assert_eq!(cfi.fde_range(0x10), Err(Error::NoUnwindInfo { pc: 0x10 }));
        // The trampoline: below the code (no function starts there).
        check_stack(isa, &cfi, fs, 0x100, records);
    }
}

/// Decode the two-frame records of the inlined fixture from a simulated
/// register file and stack.
#[test]
fn decode_inlined_frames() {
    if !llvm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for isa in [Isa::X86_64, Isa::Aarch64] {
        let obj = compile_fixture(dir.path(), "inlined.ll", isa);
        let records = records_from_object(&obj, defined_index).expect("records");
        let mut points: Vec<CrPoint> = (0..8).map(|_| filler_point(2)).collect();
        points[3] = CrPoint {
            kind: FrameKind::Call,
            stack: vec![ValType::I32],
            ..filler_point(2)
        };
        points[4] = CrPoint {
            kind: FrameKind::Call,
            stack: vec![ValType::I32],
            ..filler_point(2)
        };
        points[7] = CrPoint {
            kind: FrameKind::Entry,
            ..filler_point(3)
        };
        let meta = CrMeta {
            version: CRMETA_VERSION,
            module: String::new(),
            build: String::new(),
            isa: isa.name().to_string(),
            funcs: vec![
                CrFunc {
                    func: 2,
                    locals: vec![ValType::I32, ValType::F64],
                    entry_point: 0,
                    max_height: 1,
                },
                CrFunc {
                    func: 3,
                    locals: vec![ValType::I32],
                    entry_point: 7,
                    max_height: 0,
                },
            ]
            .into(),
            points: points.into(),
            records: records.clone().into(),
        };
        let a: u32 = 41;
        let d = (-0.5f64).to_bits();
        let s = a + 5;
        let sp = 0x7000_0000u64;
        let mut regs = Regs::new(isa, 0);
        regs.set_sp(sp);
        let mut mem = Words::default();
        match isa {
            Isa::X86_64 => {
                regs.set(3, 0xffff_ffff_0000_0000 | u64::from(a));
                regs.set(6, u64::from(s));
                mem.put(sp, d);
            }
            Isa::Aarch64 => {
                regs.set(19, u64::from(a));
                regs.set(72, d);
                regs.set(21, u64::from(s));
            }
        }
        let frames = decode_record(&meta, &records[0], &regs, &mem).expect("decode");
        assert_eq!(
            frames,
            vec![
                VirtualFrame {
                    point: 3,
                    locals: vec![raw(ValType::I32, a.into()), raw(ValType::F64, d)],
                    stack: vec![raw(ValType::I32, s.into())],
                },
                VirtualFrame {
                    point: 7,
                    locals: vec![raw(ValType::I32, a.into())],
                    stack: vec![]
                },
            ],
            "{isa:?}"
        );
        // Without the spill slot / the d8 value: an error naming the slot.
        let (regs2, mem2) = match isa {
            Isa::X86_64 => (regs.clone(), Words::default()),
            Isa::Aarch64 => {
                let mut r = regs.clone();
                r.clear(72);
                (r, Words::default())
            }
        };
        let e = decode_record(&meta, &records[0], &regs2, &mem2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("point 3, local 1"), "{e}");
    }
}
