;; C/R test program: 128-bit SIMD state live across calls and loops.
;;
;; v128 values in locals, on the operand stack below calls (the first operand of an
;; `i32x4.add` whose second comes from a call), in a mutable v128 global, passed as
;; parameters, returned as results (one, and two through multi-value), and carried by a loop
;; with a v128 parameter. Compiled code hands a v128 in a deopt bundle as two 64-bit halves;
;; a checkpoint at any point must capture the same 16 bytes on x86_64 and aarch64 and
;; restore them on either. Every round prints the lanes in hex.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "cr_simd: v128 across calls and loops\00")
  (data (i32.const 1088) "round\00")
  (data (i32.const 1152) "final\00")
  (global $g (mut v128) (v128.const i32x4 0x01020304 0x05060708 0x090a0b0c 0x0d0e0f10))

  ;; ---- output helpers (the same in every cr_*.wat) --------------------------------------
  ;; memory: [0,8) iovec, [8,12) nwritten, [16,48) digit buffer, [48] putc byte
  (func $write (param $fd i32) (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $strlen (param $p i32) (result i32) (local $q i32)
    (local.set $q (local.get $p))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (i32.load8_u (local.get $q))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $l)))
    (i32.sub (local.get $q) (local.get $p)))
  ;; NUL-terminated string to fd
  (func $fputs (param $fd i32) (param $p i32)
    (call $write (local.get $fd) (local.get $p) (call $strlen (local.get $p))))
  (func $fputc (param $fd i32) (param $c i32)
    (i32.store8 (i32.const 48) (local.get $c))
    (call $write (local.get $fd) (i32.const 48) (i32.const 1)))
  ;; unsigned decimal, at least $width digits (zero-padded)
  (func $fputu (param $fd i32) (param $v i64) (param $width i32) (local $p i32)
    (local.set $p (i32.const 48))
    (loop $l
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (local.set $width (i32.sub (local.get $width) (i32.const 1)))
      (br_if $l (i32.or (i64.ne (local.get $v) (i64.const 0)) (i32.gt_s (local.get $width) (i32.const 0)))))
    (call $write (local.get $fd) (local.get $p) (i32.sub (i32.const 48) (local.get $p))))
  ;; $digits hex digits (1..16)
  (func $fputx (param $fd i32) (param $v i64) (param $digits i32) (local $i i32) (local $d i32)
    (local.set $i (local.get $digits))
    (loop $l
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (local.set $d (i32.wrap_i64 (i64.and (local.get $v) (i64.const 15))))
      (i32.store8 (i32.add (i32.const 16) (local.get $i))
        (i32.add (local.get $d)
          (select (i32.const 87) (i32.const 48) (i32.gt_u (local.get $d) (i32.const 9)))))
      (local.set $v (i64.shr_u (local.get $v) (i64.const 4)))
      (br_if $l (local.get $i)))
    (call $write (local.get $fd) (i32.const 16) (local.get $digits)))
  (func $putv (param $v v128)
    (call $fputc (i32.const 1) (i32.const 32))
    (call $fputx (i32.const 1) (i64x2.extract_lane 1 (local.get $v)) (i32.const 16))
    (call $fputx (i32.const 1) (i64x2.extract_lane 0 (local.get $v)) (i32.const 16)))

  ;; a v128 result through a call chain; mixes lanes with shuffles and saturating ops
  (func $mix (param $a v128) (param $b v128) (result v128)
    (i8x16.add_sat_u
      (i8x16.shuffle 15 0 14 1 13 2 12 3 11 4 10 5 9 6 8 7 (local.get $a) (local.get $b))
      (i16x8.q15mulr_sat_s (local.get $b) (v128.const i16x8 0x4000 0x7fff 0x8000 3 5 7 11 13))))
  (func $step (param $v v128) (param $k i32) (result v128)
    (local $t v128)
    (local.set $t (i32x4.splat (local.get $k)))
    ;; the global, an operand below the call, and a local live across it
    (i32x4.add
      (global.get $g)
      (call $mix (local.get $v) (i32x4.mul (local.get $t) (v128.const i32x4 3 5 7 11)))))
  ;; two v128 results (multi-value)
  (func $pair (param $v v128) (result v128 v128)
    (f32x4.mul (local.get $v) (v128.const f32x4 1.5 -2.0 0.25 3.0))
    (i64x2.shl (local.get $v) (i32.const 3)))

  (func (export "_start")
    (local $v v128) (local $w v128) (local $i i32) (local $j i32)
    (call $fputs (i32.const 1) (i32.const 1024))
    (call $fputc (i32.const 1) (i32.const 10))
    (local.set $v (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16))
    (local.set $w (v128.const f32x4 1.0 2.0 3.0 4.0))
    (loop $outer
      ;; a loop carrying a v128 parameter and result, calls inside
      (local.get $v)
      (loop $inner (param v128) (result v128)
        (call $step (local.get $j))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $inner (i32.and (local.get $j) (i32.const 3))))
      (local.set $v)
      (global.set $g (i32x4.add (global.get $g) (i32x4.extadd_pairwise_i16x8_s (local.get $v))))
      ;; two v128 results; the floats stay finite (no NaN whose bits differ by ISA)
      (call $pair (local.get $w))
      (v128.xor (local.get $v))
      (i32x4.shr_s (i32.const 20))
      (f32x4.convert_i32x4_s)
      (f32x4.add)
      (local.set $w (f32x4.sqrt (f32x4.abs)))
      (call $fputs (i32.const 1) (i32.const 1088))
      (call $fputc (i32.const 1) (i32.const 32))
      (call $fputu (i32.const 1) (i64.extend_i32_u (local.get $i)) (i32.const 1))
      (call $putv (local.get $v))
      (call $putv (global.get $g))
      (call $fputc (i32.const 1) (i32.const 10))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (i32.const 40))))
    (call $fputs (i32.const 1) (i32.const 1152))
    (call $putv (local.get $v))
    (call $putv (local.get $w))
    (call $putv (global.get $g))
    (call $fputc (i32.const 1) (i32.const 10))))
