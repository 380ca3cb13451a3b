;; C/R test program: deep recursion (thousands of frames).
;;
;; `$down` recurses a few thousand levels; every level runs a small loop on the way down and
;; keeps an i64 operand (and an f64 local) live across the recursive call, so a checkpoint
;; captures thousands of frames with distinct values. Also mutual recursion ($even/$odd) and
;; recursion through `call_indirect`. Prints one result per recursion.
(module
  (type $rec (func (param i32 i64) (result i64)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "cr_deep: deep recursion\00")
  (data (i32.const 1088) "down\00")
  (data (i32.const 1152) "even/odd\00")
  (data (i32.const 1216) "indirect\00")
  (data (i32.const 1280) "depth\00")
  (table $t 2 funcref)
  (elem (table $t) (i32.const 0) func $ind_a $ind_b)

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

  (func $down (param $d i32) (param $acc i64) (result i64) (local $f f64)
    (local.set $f (f64.convert_i32_u (call $spin (local.get $d) (i32.and (local.get $d) (i32.const 3)))))
    (if (result i64) (i32.eqz (local.get $d))
      (then
        (i64.add (local.get $acc)
                 (i64.extend_i32_u (call $spin (i32.wrap_i64 (local.get $acc)) (i32.const 50)))))
      (else
        (i64.add
          (i64.mul (local.get $acc) (i64.const 3))
          (i64.xor
            (call $down (i32.sub (local.get $d) (i32.const 1))
                        (i64.add (i64.mul (local.get $acc) (i64.const 31)) (i64.extend_i32_u (local.get $d))))
            (i64.trunc_sat_f64_u (f64.mul (local.get $f) (f64.const 1.25))))))))

  (func $even (param $n i32) (param $acc i32) (result i32) (local $g f32)
    (local.set $g (f32.convert_i32_u (local.get $n)))
    (if (result i32) (i32.eqz (local.get $n))
      (then (local.get $acc))
      (else
        (i32.add (i32.trunc_sat_f32_u (local.get $g))
          (call $odd (i32.sub (local.get $n) (i32.const 1))
                     (call $spin (local.get $acc) (i32.const 2)))))))
  (func $odd (param $n i32) (param $acc i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.xor (local.get $acc) (i32.const 0x55555555)))
      (else
        (i32.xor (local.get $n)
          (call $even (i32.sub (local.get $n) (i32.const 1))
                      (i32.rotl (local.get $acc) (i32.const 3)))))))

  (func $ind_a (type $rec)
    (if (result i64) (i32.eqz (local.get 0))
      (then (local.get 1))
      (else
        (i64.sub (i64.extend_i32_u (local.get 0))
          (call_indirect $t (type $rec)
            (i32.sub (local.get 0) (i32.const 1))
            (i64.add (local.get 1) (i64.const 7))
            (i32.and (local.get 0) (i32.const 1)))))))
  (func $ind_b (type $rec)
    (if (result i64) (i32.eqz (local.get 0))
      (then (local.get 1))
      (else
        (i64.rotl
          (call_indirect $t (type $rec)
            (i32.sub (local.get 0) (i32.const 1))
            (i64.mul (local.get 1) (i64.const 5))
            (i32.and (call $spin (local.get 0) (i32.const 1)) (i32.const 1)))
          (i64.const 1)))))

  (func $main (export "_start") (local $i i32) (local $d i32)
    (call $puts (i32.const 1024)) (call $nl)
    (loop $l
      (local.set $d (i32.load16_u (i32.add (i32.const 512) (i32.shl (local.get $i) (i32.const 1)))))
      (call $puts (i32.const 1280)) (call $sp) (call $putu (i64.extend_i32_u (local.get $d))) (call $nl)
      (call $puts (i32.const 1088)) (call $sp)
      (call $putx64 (call $down (local.get $d) (i64.extend_i32_u (local.get $i)))) (call $nl)
      (call $puts (i32.const 1152)) (call $sp)
      (call $putx32 (call $even (local.get $d) (local.get $d))) (call $nl)
      (call $puts (i32.const 1216)) (call $sp)
      (call $putx64 (call $ind_a (local.get $d) (i64.const 1))) (call $nl)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4)))))
  ;; the depths, as little-endian u16: 1000, 3000, 2500, 4000
  (data (i32.const 512) "\e8\03\b8\0b\c4\09\a0\0f")
)
