;; NaNs made by operations, computed at run time. Compiled with `--canonicalize-nans` they have
;; the same bits on x86_64 and aarch64: the positive canonical NaN (x86's own NaN is negative,
;; aarch64's positive; a trial on unseen programs found a program whose path, and so its
;; migration-point count, followed the sign). Test: crates/wanco-cli/tests/cli.rs.
;; Each result's bits are printed in hex and the program loops once more for every set bit of
;; each result's top nibble, so a different NaN changes the output and the number of points.
;; neg/abs/copysign and moves keep the bits: checked too.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "0123456789abcdef")
  (global $spins (mut i32) (i32.const 0))
  ;; The operands come from linear memory (a data segment; zeros at 1024), so that LLVM cannot
  ;; fold the operations at compile time: these small functions have no migration point and
  ;; are inlined, constants and all.
  ;; 1032: f64 inf; 1040: f32 nan:0x200001; 1048: f64 -nan:0x4000000000001.
  (data (i32.const 1032) "\00\00\00\00\00\00\f0\7f\01\00\a0\7f\00\00\00\00\01\00\00\00\00\00\f4\ff")
  (func $z64 (result f64) (f64.load (i32.const 1024)))
  (func $z32 (result f32) (f32.load (i32.const 1024)))
  (func $inf64 (result f64) (f64.load (i32.const 1032)))
  (func $snan32 (result f32) (f32.load (i32.const 1040)))
  (func $snan64 (result f64) (f64.load (i32.const 1048)))
  ;; print 16 hex digits of $v and a newline; spin once per set bit of the top nibble
  (func $show (param $v i64) (local $k i32) (local $n i32)
    (loop $digit
      (i32.store8 (i32.add (i32.const 100) (local.get $k))
        (i32.load8_u offset=16 (i32.wrap_i64 (i64.and (i64.shr_u (local.get $v)
          (i64.extend_i32_u (i32.sub (i32.const 60) (i32.mul (local.get $k) (i32.const 4))))) (i64.const 15)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $digit (i32.lt_u (local.get $k) (i32.const 16))))
    (i32.store8 (i32.const 116) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.popcnt (i32.wrap_i64 (i64.shr_u (local.get $v) (i64.const 60)))))
    (loop $spin
      (global.set $spins (i32.add (global.get $spins) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $spin (i32.gt_s (local.get $n) (i32.const 0)))))
  (func $show32 (param $v f32) (call $show (i64.shl (i64.extend_i32_u (i32.reinterpret_f32 (local.get $v))) (i64.const 32))))
  (func $show64 (param $v f64) (call $show (i64.reinterpret_f64 (local.get $v))))
  (func (export "_start")
    (call $show64 (f64.div (call $z64) (call $z64)))                    ;; invalid: 0/0
    (call $show64 (f64.sub (call $inf64) (call $inf64)))                ;; inf - inf
    (call $show32 (f32.sqrt (f32.sub (call $z32) (f32.const 1))))       ;; sqrt(-1)
    (call $show32 (f32.mul (call $z32) (f32.const inf)))                ;; 0 * inf
    (call $show32 (f32.add (call $snan32) (f32.const 0)))               ;; a signalling payload, x + 0
    (call $show64 (f64.mul (call $snan64) (f64.const 1)))               ;; negative payload, x * 1
    (call $show32 (f32.min (call $snan32) (f32.const 1)))               ;; min with a NaN
    (call $show64 (f64.max (f64.const 2) (call $snan64)))               ;; max with a NaN
    (call $show32 (f32.ceil (call $snan32)))                            ;; rounding a NaN
    (call $show64 (f64.nearest (call $snan64)))
    (call $show64 (f64.promote_f32 (call $snan32)))                     ;; conversions
    (call $show32 (f32.demote_f64 (call $snan64)))
    (call $show32 (f32.demote_f64 (f64.promote_f32 (call $snan32))))    ;; folded by LLVM
    (call $show32 (f32.neg (call $snan32)))                             ;; bit operations keep the bits
    (call $show64 (f64.abs (call $snan64)))
    (call $show32 (f32.copysign (call $snan32) (f32.const -1)))
    (call $show (i64.extend_i32_u (global.get $spins)))))
