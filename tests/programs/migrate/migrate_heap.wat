;; Migration test and benchmark program with a large heap (tests/tests/migrate.rs,
;; tools/migrate-bench.sh): fills its whole linear memory (beyond the first page) with
;; pseudo-random bytes, then for $ticks ticks (200: 4 s, so that a move under load ends before the program does) rewrites a working set of $ws bytes at the start of
;; the heap, prints `tick I HASH` and sleeps 20 ms; at the end it prints a checksum of the whole
;; heap and exits with code 7. The heap is the memory's size (`memory.size`): the benchmark
;; makes variants by changing the `(memory N)` line and the $ws and $ticks values only.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 512)
  (global $ws i32 (i32.const 1048576))
  (global $ticks i32 (i32.const 200))
  (data (i32.const 1024) "migrate_heap: pages\00")
  (data (i32.const 1120) "tick \00")
  (data (i32.const 1248) "heap checksum\00")

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
  ;; ---- end of helpers

  (func $sleep_ms (param $ms i64)
    ;; one clock subscription: userdata 0, tag 0 (clock), id 1 (monotonic), relative timeout
    (memory.fill (i32.const 256) (i32.const 0) (i32.const 48))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.mul (local.get $ms) (i64.const 1000000)))
    (drop (call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 352))))


  ;; fill [from, to) with an LCG stream seeded by $seed; returns a hash of what was written
  (func $fill (param $from i32) (param $to i32) (param $seed i64) (result i64) (local $h i64)
    (local.set $h (local.get $seed))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $from) (local.get $to)))
        (local.set $seed (i64.add (i64.mul (local.get $seed) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
        (i64.store (local.get $from) (local.get $seed))
        (local.set $h (i64.xor (i64.mul (local.get $h) (i64.const 0x100000001b3)) (local.get $seed)))
        (local.set $from (i32.add (local.get $from) (i32.const 8)))
        (br $l)))
    (local.get $h))

  (func $main (export "_start")
    (local $i i32) (local $end i32) (local $h i64) (local $k i32) (local $sum i64)
    (local.set $end (i32.shl (memory.size) (i32.const 16)))
    (call $kv (i32.const 1024) (i64.extend_i32_u (memory.size)))
    (drop (call $fill (i32.const 65536) (local.get $end) (i64.const 42)))
    (loop $l
      (local.set $h (call $fill (i32.const 65536)
        (i32.add (i32.const 65536) (global.get $ws)) (i64.extend_i32_u (i32.add (local.get $i) (i32.const 1000)))))
      (call $puts (i32.const 1120)) (call $putu (i64.extend_i32_u (local.get $i))) (call $sp)
      (call $putx64 (local.get $h)) (call $nl)
      (call $sleep_ms (i64.const 20))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (global.get $ticks))))
    (local.set $k (i32.const 65536))
    (loop $c
      (local.set $sum (i64.add (i64.rotl (local.get $sum) (i64.const 5)) (i64.load (local.get $k))))
      (local.set $k (i32.add (local.get $k) (i32.const 8)))
      (br_if $c (i32.lt_u (local.get $k) (local.get $end))))
    (call $puts (i32.const 1248)) (call $sp) (call $putx64 (local.get $sum)) (call $nl)
    (call $proc_exit (i32.const 7)))
)
