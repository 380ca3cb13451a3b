;; C/R test program: a long-running loop (about 2-3 s natively) for the SIGUSR1 test.
;;
;; Mixes a hash through a small table in linear memory, with a call and an inner loop per
;; iteration (migration points all along). Prints a progress line at every tenth of the run
;; (the test sends SIGUSR1 after seeing one) and the final hash and table checksum.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "cr_long: a long loop\00")
  (data (i32.const 1088) "progress\00")
  (data (i32.const 1104) "/10\00")
  (data (i32.const 1152) "final hash\00")
  (data (i32.const 1216) "table checksum\00")
  (global $iterations i32 (i32.const 80000000))

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

  ;; one step: an inner loop that mixes $h through a 4 KiB table at 8192
  (func $step (param $h i64) (param $i i32) (result i64) (local $j i32) (local $p i32)
    (loop $l
      (local.set $p (i32.add (i32.const 8192) (i32.and (i32.wrap_i64 (local.get $h)) (i32.const 0xff8))))
      (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load (local.get $p))) (i64.const 0x100000001b3)))
      (i64.store (local.get $p) (i64.add (local.get $h) (i64.extend_i32_u (local.get $j))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $j) (i32.const 8))))
    (i64.xor (local.get $h) (i64.extend_i32_u (local.get $i))))

  (func $main (export "_start") (local $i i32) (local $h i64) (local $tenth i32) (local $p i32) (local $c i64)
    (call $puts (i32.const 1024)) (call $nl)
    (local.set $tenth (i32.div_u (global.get $iterations) (i32.const 10)))
    (local.set $h (i64.const 0xcbf29ce484222325))
    (loop $l
      (local.set $h (call $step (local.get $h) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.eqz (i32.rem_u (local.get $i) (local.get $tenth)))
        (then
          (call $puts (i32.const 1088)) (call $sp)
          (call $putu (i64.extend_i32_u (i32.div_u (local.get $i) (local.get $tenth))))
          (call $puts (i32.const 1104))
          (call $nl)))
      (br_if $l (i32.lt_u (local.get $i) (global.get $iterations))))
    (call $puts (i32.const 1152)) (call $sp) (call $putx64 (local.get $h)) (call $nl)
    (local.set $p (i32.const 8192))
    (loop $l
      (local.set $c (i64.add (i64.rotl (local.get $c) (i64.const 5)) (i64.load (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $p) (i32.const 12288))))
    (call $puts (i32.const 1216)) (call $sp) (call $putx64 (local.get $c)) (call $nl))
)
