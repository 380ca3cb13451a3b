;; C/R test program: every way out of a loop.
;;
;; Compiled code keeps the migration-point count in a local inside loops and in
;; `wanco_cr_counter` outside them, and lays out a loop without calls as two nested loops (see
;; crates/wanco-compiler/src/codegen/func/cr.rs): the count must be stored back wherever
;; control leaves the outermost loop, and a checkpoint at any point must see the same state as
;; the interpreter's. This program leaves loops by falling out of them, by `br` and `br_if` to
;; labels one and several loops out, by `br_table` with targets inside and outside the loops,
;; by `return` from nested loops, by `br_if` to the header of an enclosing loop that calls,
;; and by a trap check; it has call-free loops (vectorizable
;; fills and reductions over memory), loops with calls, loops with parameters and results
;; (multi-value), and calls between loops. Every result is printed; the count of migration
;; points is compared by the matrix with the interpreter's.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "cr_loops: every way out of a loop\00")
  (data (i32.const 1088) "round\00")
  (data (i32.const 1152) "final\00")
  (global $g (mut i32) (i32.const 7))

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

  ;; call-free: fill [p, p+n) with (k + i) & 255, then count the bytes that differ
  (func $fill (param $p i32) (param $n i32) (param $k i32) (local $i i32)
    (block $out
      (br_if $out (i32.eqz (local.get $n)))
      (loop $l
        (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.add (local.get $k) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n))))))
  (func $check (param $p i32) (param $n i32) (param $k i32) (result i32) (local $i i32) (local $bad i32)
    (block $out
      (br_if $out (i32.eqz (local.get $n)))
      (loop $l
        (local.set $bad (i32.add (local.get $bad)
          (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                  (i32.and (i32.add (local.get $k) (local.get $i)) (i32.const 255)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
    (local.get $bad))
  ;; call-free sum of i32s, a reduction
  (func $sum (param $p i32) (param $n i32) (result i64) (local $acc i64)
    (block $out
      (br_if $out (i32.eqz (local.get $n)))
      (loop $l
        (local.set $acc (i64.add (local.get $acc) (i64.load32_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br_if $l (local.get $n))))
    (local.get $acc))
  ;; nested call-free loops; the inner `br` leaves both (first index whose row sum exceeds $lim)
  (func $find (param $lim i32) (result i32) (local $r i32) (local $c i32) (local $s i32)
    (block $found
      (loop $rows
        (local.set $c (i32.const 0))
        (local.set $s (i32.const 0))
        (loop $cols
          (local.set $s (i32.add (local.get $s) (i32.mul (local.get $r) (local.get $c))))
          (br_if $found (i32.gt_u (local.get $s) (local.get $lim)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br_if $cols (i32.lt_u (local.get $c) (i32.const 16))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br_if $rows (i32.lt_u (local.get $r) (i32.const 1000))))
      (return (i32.const -1)))
    (i32.add (i32.mul (local.get $r) (i32.const 100)) (local.get $c)))
  ;; `return` from two loops deep, with a call in the outer loop only
  (func $ret (param $n i32) (result i32) (local $i i32) (local $j i32)
    (loop $a
      (global.set $g (call $spin (global.get $g) (i32.const 3)))
      (local.set $j (i32.const 0))
      (loop $b
        (if (i32.eq (i32.add (local.get $i) (local.get $j)) (local.get $n))
          (then (return (i32.add (i32.mul (local.get $i) (i32.const 1000)) (local.get $j)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $b (i32.lt_u (local.get $j) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $a))
    (unreachable))
  ;; br_table: case 0 continues the inner loop, 1 the outer one, 2 leaves both, 3 (default)
  ;; leaves the inner one only
  (func $table (param $seed i32) (result i32) (local $x i32) (local $steps i32) (local $outer i32)
    (local.set $x (local.get $seed))
    (block $done
      (loop $o
        (local.set $outer (i32.add (local.get $outer) (i32.const 1)))
        (block $inner_out
          (loop $i
            (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245)) (i32.const 12345)))
            (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
            (br_if $done (i32.gt_u (local.get $steps) (i32.const 5000)))
            (br_table $i $o $done $inner_out (i32.rem_u (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 7)))))
        (br $o)))
    (i32.add (i32.mul (local.get $outer) (i32.const 10000)) (local.get $steps)))
  ;; loops with parameters and results: a Collatz walk carried on the operand stack
  (func $collatz (param $n i64) (result i64 i64)
    (i64.const 0) (local.get $n)
    (loop $l (param i64 i64) (result i64 i64)
      ;; [steps, n]
      (local.set $n)
      (i64.add (i64.const 1))
      (if (param i64) (result i64 i64) (i64.eq (local.get $n) (i64.const 1))
        (then (local.get $n))
        (else
          (if (param i64) (result i64 i64) (i64.eqz (i64.and (local.get $n) (i64.const 1)))
            (then (i64.shr_u (local.get $n) (i64.const 1)))
            (else (i64.add (i64.mul (local.get $n) (i64.const 3)) (i64.const 1))))
          (br $l)))))
  ;; a call-free loop inside a loop that calls, continued from inside the inner one (`br_if` to
;; the outer loop's label: it leaves the call-free loop for a loop header)
  (func $skip (param $n i32) (result i32) (local $i i32) (local $j i32) (local $acc i32)
    (block $done
      (loop $outer
        (local.set $acc (call $spin (local.get $acc) (i32.const 2)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $done (i32.gt_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (loop $inner
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $outer (i32.eq (local.get $j) (i32.rem_u (local.get $i) (i32.const 5))))
          (local.set $acc (i32.add (local.get $acc) (local.get $j)))
          (br_if $inner (i32.lt_u (local.get $j) (i32.const 10))))
        (br $outer)))
    (local.get $acc))
  ;; a call-free loop whose trap check is never taken (division by a nonzero divisor)
  (func $divs (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (i32.div_u (i32.const 1000000) (local.get $n))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $acc))

  (func (export "_start") (local $round i32) (local $steps i64) (local $top i64)
    (call $puts (i32.const 1024)) (call $nl)
    (loop $rounds
      (call $fill (i32.const 4096) (i32.add (i32.const 100) (i32.mul (local.get $round) (i32.const 37))) (local.get $round))
      (call $puts (i32.const 1088)) (call $sp) (call $putu (i64.extend_i32_u (local.get $round)))
      (call $sp) (call $putu (i64.extend_i32_u
        (call $check (i32.const 4096) (i32.add (i32.const 100) (i32.mul (local.get $round) (i32.const 37))) (local.get $round))))
      (call $sp) (call $putu (call $sum (i32.const 4096) (i32.add (i32.const 20) (local.get $round))))
      (call $sp) (call $putu (i64.extend_i32_u (call $find (i32.mul (local.get $round) (i32.const 50)))))
      (call $sp) (call $putu (i64.extend_i32_u (call $ret (i32.add (local.get $round) (i32.const 3)))))
      (call $sp) (call $putu (i64.extend_i32_u (call $table (local.get $round))))
      (call $collatz (i64.extend_i32_u (i32.add (local.get $round) (i32.const 27))))
      (local.set $top) (local.set $steps)
      (call $sp) (call $putu (local.get $steps)) (call $sp) (call $putu (local.get $top))
      (call $sp) (call $putu (i64.extend_i32_u (call $divs (i32.add (local.get $round) (i32.const 50)))))
      (call $sp) (call $putu (i64.extend_i32_u (call $skip (i32.add (local.get $round) (i32.const 4)))))
      (call $nl)
      (local.set $round (i32.add (local.get $round) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $round) (i32.const 12))))
    (call $puts (i32.const 1152)) (call $sp) (call $putu (i64.extend_i32_u (global.get $g))) (call $nl))
)
