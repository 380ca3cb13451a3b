;; C/R test program: files open across checkpoints.
;;
;; Creates /data/in.txt, then keeps it open for reading (13 bytes every third iteration,
;; rewinding with fd_seek at EOF) while writing /data/out.txt line by line in a 300-iteration
;; loop; every 50 iterations it rewrites a header field at offset 4 of out.txt (fd_tell,
;; fd_seek SET, write, fd_seek back). /data/log.txt is opened with the APPEND flag and written
;; every 10 iterations; every 25 iterations a small file part-X.txt is created, written and
;; closed (reusing a file descriptor number). Every iteration crosses migration points, so a
;; restored process must continue reading and writing at the right offsets. At the end it reads
;; out.txt back and prints its size and checksum.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $fd_tell (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; [64] opened fd, [72] i64 offset result, [80] read iovec, [88] nread, [2048..2304) read buffer
  (data (i32.const 1024) "cr_files: files open across checkpoints\00")
  (data (i32.const 1088) "open failed, errno\00")
  (data (i32.const 1152) "input line \00")
  (data (i32.const 1184) ": \00")
  (data (i32.const 1216) "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ\00")
  (data (i32.const 1280) "HDR 0000\0a\00")
  (data (i32.const 1312) "line \00")
  (data (i32.const 1344) "  in \00")
  (data (i32.const 1376) "log \00")
  (data (i32.const 1408) "progress\00")
  (data (i32.const 1440) "part \00")
  (data (i32.const 1472) "out.txt bytes\00")
  (data (i32.const 1504) "out.txt checksum\00")
  (data (i32.const 1536) "input rewinds\00")
  (data (i32.const 1568) "io failed, errno\00")
  (data (i32.const 1600) "in.txt\00")
  (data (i32.const 1632) "out.txt\00")
  (data (i32.const 1664) "log.txt\00")
  (data (i32.const 1696) "part-a.txt\00")

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

  (func $check (param $errno i32)
    (if (local.get $errno)
      (then
        (call $puts (i32.const 1568)) (call $sp) (call $putu (i64.extend_i32_u (local.get $errno))) (call $nl)
        (unreachable))))
  (func $open (param $path i32) (param $oflags i32) (param $fdflags i32) (param $rights i64) (result i32)
    (local $e i32)
    (local.set $e (call $path_open (i32.const 3) (i32.const 0)
      (local.get $path) (call $strlen (local.get $path))
      (local.get $oflags) (local.get $rights) (local.get $rights) (local.get $fdflags) (i32.const 64)))
    (if (local.get $e)
      (then
        (call $puts (i32.const 1088)) (call $sp) (call $putu (i64.extend_i32_u (local.get $e))) (call $nl)
        (unreachable)))
    (i32.load (i32.const 64)))
  (func $close (param $fd i32) (call $check (call $fd_close (local.get $fd))))
  (func $seek (param $fd i32) (param $off i64) (call $check (call $fd_seek (local.get $fd) (local.get $off) (i32.const 0) (i32.const 72))))
  ;; read up to $n bytes into the buffer, return the count
  (func $read (param $fd i32) (param $n i32) (result i32)
    (i32.store (i32.const 80) (i32.const 2048))
    (i32.store (i32.const 84) (local.get $n))
    (call $check (call $fd_read (local.get $fd) (i32.const 80) (i32.const 1) (i32.const 88)))
    (i32.load (i32.const 88)))

  (func $main (export "_start")
    (local $fd i32) (local $fin i32) (local $fout i32) (local $flog i32)
    (local $i i32) (local $k i32) (local $n i32) (local $v i32) (local $rewinds i32)
    (local $pos i64) (local $total i64) (local $h i64)
    (call $puts (i32.const 1024)) (call $nl)
    ;; the input file
    (local.set $fd (call $open (i32.const 1600) (i32.const 9) (i32.const 0) (i64.const 0x200064)))
    (loop $l
      (call $fputs (local.get $fd) (i32.const 1152))
      (call $fputu (local.get $fd) (i64.extend_i32_u (local.get $k)) (i32.const 2))
      (call $fputs (local.get $fd) (i32.const 1184))
      (call $write (local.get $fd) (i32.add (i32.const 1216) (i32.rem_u (local.get $k) (i32.const 20)))
        (i32.add (i32.const 6) (i32.rem_u (local.get $k) (i32.const 7))))
      (call $fputc (local.get $fd) (i32.const 10))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.const 40))))
    (call $close (local.get $fd))
    ;; in.txt open for reading, out.txt (truncated) and log.txt (append) for writing
    (local.set $fin (call $open (i32.const 1600) (i32.const 0) (i32.const 0) (i64.const 0x200026)))
    (local.set $fout (call $open (i32.const 1632) (i32.const 9) (i32.const 0) (i64.const 0x200064)))
    (call $fputs (local.get $fout) (i32.const 1280))
    (local.set $flog (call $open (i32.const 1664) (i32.const 1) (i32.const 1) (i64.const 0x200064)))
    (local.set $i (i32.const 0))
    (loop $l
      (local.set $v (call $spin (local.get $i) (i32.const 20)))
      (call $fputs (local.get $fout) (i32.const 1312))
      (call $fputu (local.get $fout) (i64.extend_i32_u (local.get $i)) (i32.const 1))
      (call $fputc (local.get $fout) (i32.const 32))
      (call $fputx (local.get $fout) (i64.extend_i32_u (local.get $v)) (i32.const 8))
      (call $fputc (local.get $fout) (i32.const 10))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 3)))
        (then
          (local.set $n (call $read (local.get $fin) (i32.const 13)))
          (if (i32.eqz (local.get $n))
            (then
              (call $seek (local.get $fin) (i64.const 0))
              (local.set $rewinds (i32.add (local.get $rewinds) (i32.const 1)))
              (local.set $n (call $read (local.get $fin) (i32.const 13)))))
          ;; newlines of the input become '/'
          (local.set $k (i32.const 0))
          (block $done
            (loop $m
              (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
              (if (i32.eq (i32.load8_u (i32.add (i32.const 2048) (local.get $k))) (i32.const 10))
                (then (i32.store8 (i32.add (i32.const 2048) (local.get $k)) (i32.const 47))))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br $m)))
          (call $fputs (local.get $fout) (i32.const 1344))
          (call $write (local.get $fout) (i32.const 2048) (local.get $n))
          (call $fputc (local.get $fout) (i32.const 10))))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 10)))
        (then
          (call $fputs (local.get $flog) (i32.const 1376))
          (call $fputu (local.get $flog) (i64.extend_i32_u (local.get $i)) (i32.const 1))
          (call $fputc (local.get $flog) (i32.const 10))))
      (if (i32.eq (i32.rem_u (local.get $i) (i32.const 50)) (i32.const 49))
        (then
          (call $check (call $fd_tell (local.get $fout) (i32.const 72)))
          (local.set $pos (i64.load (i32.const 72)))
          (call $seek (local.get $fout) (i64.const 4))
          (call $fputu (local.get $fout) (i64.extend_i32_u (i32.div_u (i32.add (local.get $i) (i32.const 1)) (i32.const 50))) (i32.const 4))
          (call $seek (local.get $fout) (local.get $pos))
          (call $puts (i32.const 1408)) (call $sp) (call $putu (i64.extend_i32_u (local.get $i))) (call $sp)
          (call $putu (local.get $pos)) (call $nl)))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 25)))
        (then
          (i32.store8 (i32.const 1701) (i32.add (i32.const 97) (i32.div_u (local.get $i) (i32.const 25))))
          (local.set $fd (call $open (i32.const 1696) (i32.const 9) (i32.const 0) (i64.const 0x200064)))
          (call $fputs (local.get $fd) (i32.const 1440))
          (call $fputu (local.get $fd) (i64.extend_i32_u (local.get $i)) (i32.const 1))
          (call $fputc (local.get $fd) (i32.const 10))
          (call $close (local.get $fd))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 300))))
    (call $close (local.get $fin))
    (call $close (local.get $fout))
    (call $close (local.get $flog))
    ;; read out.txt back
    (local.set $fd (call $open (i32.const 1632) (i32.const 0) (i32.const 0) (i64.const 0x200026)))
    (local.set $h (i64.const 0xcbf29ce484222325))
    (loop $l
      (local.set $n (call $read (local.get $fd) (i32.const 256)))
      (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (local.get $n))))
      (local.set $k (i32.const 0))
      (block $done
        (loop $m
          (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
          (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load8_u (i32.add (i32.const 2048) (local.get $k))))
                                 (i64.const 0x100000001b3)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $m)))
      (br_if $l (local.get $n)))
    (call $close (local.get $fd))
    (call $kv (i32.const 1472) (local.get $total))
    (call $puts (i32.const 1504)) (call $sp) (call $putx64 (local.get $h)) (call $nl)
    (call $kv (i32.const 1536) (i64.extend_i32_u (local.get $rewinds))))
)
