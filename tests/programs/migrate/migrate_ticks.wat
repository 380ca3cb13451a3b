;; Migration test program (tests/tests/migrate.rs): runs for a few seconds, printing and
;; writing a file as it goes, so that `wanco migrate` moves it mid-run.
;;
;; 60 iterations; each mixes a hash through a 4 KiB table in linear memory (migration points
;; all along), prints `tick I HASH` on stdout, appends `line I HASH` to /data/out.txt (kept
;; open across the move: its offset must continue) and sleeps 50 ms (poll_oneoff on the
;; monotonic clock). Every 10th iteration also writes `at I` to stderr. At the end it prints
;; the final hash and the table's checksum and exits with code 7 (proc_exit).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; [64] opened fd, [256..304) subscription, [320..352) event, [352] nevents, [4096..8192) table
  (data (i32.const 1024) "migrate_ticks: start\00")
  (data (i32.const 1088) "open failed, errno\00")
  (data (i32.const 1120) "tick \00")
  (data (i32.const 1152) "line \00")
  (data (i32.const 1184) "at \00")
  (data (i32.const 1216) "final hash\00")
  (data (i32.const 1248) "table checksum\00")
  (data (i32.const 1600) "out.txt\00")

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

  (func $mix (param $h i64) (param $i i32) (result i64) (local $k i32) (local $a i32)
    (local.set $k (i32.const 0))
    (loop $l
      (local.set $a (i32.add (i32.const 4096) (i32.and (i32.mul (i32.add (local.get $k) (local.get $i)) (i32.const 8)) (i32.const 4088))))
      (local.set $h (i64.xor (i64.mul (local.get $h) (i64.const 0x100000001b3)) (i64.load (local.get $a))))
      (i64.store (local.get $a) (i64.add (i64.load (local.get $a)) (i64.rotl (local.get $h) (i64.const 17))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.const 20000))))
    (local.get $h))

  (func $main (export "_start")
    (local $i i32) (local $fout i32) (local $h i64) (local $k i32) (local $sum i64) (local $e i32)
    (call $puts (i32.const 1024)) (call $nl)
    (local.set $e (call $path_open (i32.const 3) (i32.const 0) (i32.const 1600) (i32.const 7)
      (i32.const 9) (i64.const 0x200064) (i64.const 0x200064) (i32.const 0) (i32.const 64)))
    (if (local.get $e)
      (then
        (call $puts (i32.const 1088)) (call $sp) (call $putu (i64.extend_i32_u (local.get $e))) (call $nl)
        (unreachable)))
    (local.set $fout (i32.load (i32.const 64)))
    (local.set $h (i64.const 0xcbf29ce484222325))
    (loop $l
      (local.set $h (call $mix (local.get $h) (local.get $i)))
      (call $puts (i32.const 1120)) (call $putu (i64.extend_i32_u (local.get $i))) (call $sp)
      (call $putx64 (local.get $h)) (call $nl)
      (call $fputs (local.get $fout) (i32.const 1152))
      (call $fputu (local.get $fout) (i64.extend_i32_u (local.get $i)) (i32.const 1))
      (call $fputc (local.get $fout) (i32.const 32))
      (call $fputx (local.get $fout) (local.get $h) (i32.const 16))
      (call $fputc (local.get $fout) (i32.const 10))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 10)))
        (then
          (call $fputs (i32.const 2) (i32.const 1184))
          (call $fputu (i32.const 2) (i64.extend_i32_u (local.get $i)) (i32.const 1))
          (call $fputc (i32.const 2) (i32.const 10))))
      (call $sleep_ms (i64.const 50))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 60))))
    (local.set $k (i32.const 4096))
    (loop $c
      (local.set $sum (i64.add (i64.rotl (local.get $sum) (i64.const 5)) (i64.load (local.get $k))))
      (local.set $k (i32.add (local.get $k) (i32.const 8)))
      (br_if $c (i32.lt_u (local.get $k) (i32.const 8192))))
    (call $kv (i32.const 1216) (local.get $h))
    (call $puts (i32.const 1248)) (call $sp) (call $putx64 (local.get $sum)) (call $nl)
    (call $proc_exit (i32.const 7)))
)
