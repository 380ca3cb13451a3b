;; C/R test program: floats with NaN payloads.
;;
;; Signaling and quiet NaNs of both signs with distinct payloads (made with `f32.reinterpret_i32`,
;; `f64.reinterpret_i64` and `nan:0x...` constants) are held in locals, parameters, globals,
;; linear memory and on the operand stack across calls and loop iterations (including as
;; parameters of a multi-value loop and results of a multi-value call). They are only moved
;; (local/global get/set, select, calls, loads/stores) or changed by bit operations (neg,
;; copysign, abs), which are exact in Wasm, so every bit is deterministic. The bits are printed
;; during the run and at the end.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "cr_nan: NaN payloads across calls and loops\00")
  (data (i32.const 1088) "iter\00")
  (data (i32.const 1152) "final\00")
  (data (i32.const 1216) "memory\00")
  (data (i32.const 1280) "globals\00")
  (global $g32 (mut f32) (f32.const nan:0x000001))
  (global $g64 (mut f64) (f64.const -nan:0x0000000000001))

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
  (func $puts (param $p i32) (call $fputs (i32.const 1) (local.get $p)))
  (func $sp (call $fputc (i32.const 1) (i32.const 32)))
  (func $nl (call $fputc (i32.const 1) (i32.const 10)))
  (func $putu (param $v i64) (call $fputu (i32.const 1) (local.get $v) (i32.const 1)))
  (func $putx32 (param $v i32) (call $fputx (i32.const 1) (i64.extend_i32_u (local.get $v)) (i32.const 8)))
  (func $putx64 (param $v i64) (call $fputx (i32.const 1) (local.get $v) (i32.const 16)))
  ;; "label value\n"
  (func $kv (param $label i32) (param $v i64)
    (call $puts (local.get $label)) (call $sp) (call $putu (local.get $v)) (call $nl))
  ;; a callee with a loop: migration points while the caller holds values on its operand stack
  (func $spin (param $x i32) (param $n i32) (result i32)
    (loop $l
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245)) (i32.const 12345)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (local.get $x))
  ;; ---- end of helpers -------------------------------------------------------------------

  ;; the NaN lives in a parameter while the loop crosses migration points
  (func $keep32 (param $v f32) (param $n i32) (result f32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (local.get $v))
  (func $keep64 (param $v f64) (param $n i32) (result f64)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (local.get $v))
  ;; multi-value result, swapped order, with a call in between
  (func $pair (param $a f32) (param $b f64) (param $k i32) (result f64 f32)
    (local.get $b)
    (drop (call $spin (local.get $k) (i32.const 3)))
    (local.get $a))
  ;; NaNs on the operand stack under a call that recurses a few levels
  (func $deep32 (param $v f32) (param $d i32) (result f32)
    (if (result f32) (i32.eqz (local.get $d))
      (then (call $keep32 (local.get $v) (i32.const 4)))
      (else
        (select
          (call $deep32 (local.get $v) (i32.sub (local.get $d) (i32.const 1)))
          (f32.const nan:0x155555)
          (i32.const 1)))))

  (func $dump (param $label i32) (param $n i32)
      (param $a f32) (param $b f32) (param $c f32) (param $d f32)
      (param $x f64) (param $y f64) (param $z f64) (param $w f64)
    (call $puts (local.get $label)) (call $sp) (call $putu (i64.extend_i32_u (local.get $n))) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (local.get $a))) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (local.get $b))) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (local.get $c))) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (local.get $d))) (call $sp)
    (call $putx64 (i64.reinterpret_f64 (local.get $x))) (call $sp)
    (call $putx64 (i64.reinterpret_f64 (local.get $y))) (call $sp)
    (call $putx64 (i64.reinterpret_f64 (local.get $z))) (call $sp)
    (call $putx64 (i64.reinterpret_f64 (local.get $w))) (call $nl))

  (func $main (export "_start")
    (local $a f32) (local $b f32) (local $c f32) (local $d f32)
    (local $x f64) (local $y f64) (local $z f64) (local $w f64)
    (local $i i32) (local $k i32) (local $t f32) (local $u f64)
    (call $puts (i32.const 1024)) (call $nl)
    (local.set $a (f32.reinterpret_i32 (i32.const 0x7f800001)))   ;; +sNaN, payload 1
    (local.set $b (f32.reinterpret_i32 (i32.const 0xffc12345)))   ;; -qNaN
    (local.set $c (f32.reinterpret_i32 (i32.const 0x7fa5a5a5)))   ;; +sNaN
    (local.set $d (f32.const -nan:0x3fffff))                      ;; -sNaN, all payload bits but quiet
    (local.set $x (f64.reinterpret_i64 (i64.const 0x7ff0000000000001)))   ;; +sNaN
    (local.set $y (f64.reinterpret_i64 (i64.const 0xfff8deadbeef0001)))   ;; -qNaN
    (local.set $z (f64.reinterpret_i64 (i64.const 0x7ff4000000000bad)))   ;; +sNaN
    (local.set $w (f64.const -nan:0x7ffffffffffff))                       ;; -sNaN
    ;; a copy of each in memory, restored from memory at the end
    (f32.store (i32.const 256) (local.get $c))
    (f64.store (i32.const 264) (local.get $z))
    (call $dump (i32.const 1088) (i32.const 0) (local.get $a) (local.get $b) (local.get $c) (local.get $d)
      (local.get $x) (local.get $y) (local.get $z) (local.get $w))
    (loop $l
      ;; rotate (a b c d) and (x y z w) through the operand stack, across calls
      local.get $a
      local.get $x
      (call $keep32 (local.get $b) (i32.and (local.get $i) (i32.const 3)))
      (call $keep64 (local.get $y) (i32.rem_u (local.get $i) (i32.const 5)))
      local.set $x
      local.set $a
      (local.set $b (local.get $c))
      (local.set $c (local.get $d))
      (local.set $y (local.get $z))
      (local.set $z (local.get $w))
      local.set $w
      local.set $d
      ;; NaNs as the parameters of a loop (on the stack at its header) and through a
      ;; multi-value call that swaps them
      (local.set $k (i32.const 3))
      local.get $c
      local.get $z
      loop $l2 (param f32 f64) (result f32 f64)
        local.set $u
        local.set $t
        (call $pair (local.get $t) (local.get $u) (local.get $k))
        local.set $t
        local.set $u
        local.get $t
        local.get $u
        (local.tee $k (i32.sub (local.get $k) (i32.const 1)))
        br_if $l2
      end
      local.set $z
      local.set $c
      ;; through globals, memory, select and a recursion, now and then
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 7)))
        (then
          (local.set $t (global.get $g32))
          (global.set $g32 (local.get $a))
          (local.set $a (local.get $t))
          (local.set $u (global.get $g64))
          (global.set $g64 (local.get $x))
          (local.set $x (local.get $u))))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 11)))
        (then
          (local.set $b (f32.neg (local.get $b)))
          (local.set $y (f64.copysign (local.get $y) (local.get $w)))
          (f32.store (i32.const 272) (local.get $d))
          (local.set $d (f32.load (i32.const 272)))
          (local.set $c (call $deep32 (local.get $c) (i32.and (local.get $i) (i32.const 15))))))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 13)))
        (then
          ;; a conditional swap of z and w
          (local.set $u (select (local.get $w) (local.get $z) (i32.and (local.get $i) (i32.const 1))))
          (local.set $w (select (local.get $z) (local.get $w) (i32.and (local.get $i) (i32.const 1))))
          (local.set $z (local.get $u))
          (local.set $a (f32.abs (local.get $a)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 25)))
        (then
          (call $dump (i32.const 1088) (local.get $i) (local.get $a) (local.get $b) (local.get $c) (local.get $d)
            (local.get $x) (local.get $y) (local.get $z) (local.get $w))))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 300))))
    (call $dump (i32.const 1152) (local.get $i) (local.get $a) (local.get $b) (local.get $c) (local.get $d)
      (local.get $x) (local.get $y) (local.get $z) (local.get $w))
    (call $puts (i32.const 1280)) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (global.get $g32))) (call $sp)
    (call $putx64 (i64.reinterpret_f64 (global.get $g64))) (call $nl)
    (call $puts (i32.const 1216)) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (f32.load (i32.const 256)))) (call $sp)
    (call $putx64 (i64.reinterpret_f64 (f64.load (i32.const 264)))) (call $sp)
    (call $putx32 (i32.reinterpret_f32 (f32.load (i32.const 272)))) (call $nl))
)
