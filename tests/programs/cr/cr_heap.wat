;; C/R test program: heap growth, bulk memory, tables.
;;
;; Grows the memory (declared maximum: 64 pages) in a loop (`memory.grow` by 1-3 pages, to 49),
;; writes a pattern into every new page, copies and fills ranges (`memory.copy`/`memory.fill`)
;; and checksums the whole memory after each step. Before that it initializes memory and a
;; grown table from passive segments (`memory.init`/`table.init`) and drops them
;; (`data.drop`/`elem.drop`), so the snapshot's `data_dropped`/`elem_dropped` and the table
;; contents matter; the grown table is used by `call_indirect` in every step. A mutable i64
;; global accumulates across the run. At the end the memory grows to its maximum, and one more
;; page must fail (the maximum survives a restore).
(module
  (type $mixer (func (param i64) (result i64)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 64)
  (data (i32.const 1024) "cr_heap: memory.grow, bulk memory, tables\00")
  (data (i32.const 1088) "step\00")
  (data (i32.const 1152) "table size\00")
  (data (i32.const 1216) "passive data\00")
  (data (i32.const 1280) "final global\00")
  (data (i32.const 1344) "grow too much\00")
  (data (i32.const 1408) "final pages\00")
  (data (i32.const 1472) "grow to the maximum\00")
  (data (i32.const 1536) "grow past the maximum\00")
  (data $pdata "passive-data-segment:0123456789abcdef")
  (table $t 2 funcref)
  (elem $pelem func $mx0 $mx1 $mx2 $mx3)
  (global $total (mut i64) (i64.const 0))

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

  (func $mx0 (type $mixer) (i64.rotl (local.get 0) (i64.const 7)))
  (func $mx1 (type $mixer) (i64.xor (local.get 0) (i64.const 0x5bd1e995)))
  (func $mx2 (type $mixer) (i64.mul (local.get 0) (i64.const 0x100000001b3)))
  (func $mx3 (type $mixer) (i64.add (local.get 0) (i64.extend_i32_u (call $spin (i32.wrap_i64 (local.get 0)) (i32.const 9)))))

  ;; fill [from, to) with a position-dependent pattern, one i32 per iteration
  (func $pattern (param $from i32) (param $to i32) (param $seed i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $from) (local.get $to)))
        (i32.store (local.get $from)
          (i32.xor (i32.mul (local.get $from) (i32.const 2654435761)) (local.get $seed)))
        (local.set $from (i32.add (local.get $from) (i32.const 4)))
        (br $l))))

  ;; checksum of the whole memory, one i64 every 64 bytes
  (func $checksum (result i64) (local $p i32) (local $end i32) (local $h i64)
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (local.set $h (i64.const 0xcbf29ce484222325))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load (local.get $p))) (i64.const 0x100000001b3)))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br $l)))
    (local.get $h))

  (func $main (export "_start")
    (local $s i32) (local $old i32) (local $new i32) (local $h i64)
    (call $puts (i32.const 1024)) (call $nl)
    ;; table: grow by 4 and fill from the passive element segment, then drop it
    (drop (table.grow $t (ref.null func) (i32.const 4)))
    (table.init $t $pelem (i32.const 2) (i32.const 0) (i32.const 4))
    (elem.drop $pelem)
    (call $kv (i32.const 1152) (i64.extend_i32_u (table.size $t)))
    ;; memory from the passive data segment, then drop it
    (memory.init $pdata (i32.const 4096) (i32.const 0) (i32.const 37))
    (data.drop $pdata)
    (call $puts (i32.const 1216)) (call $sp)
    (call $write (i32.const 1) (i32.const 4096) (i32.const 37)) (call $nl)
    (loop $l
      (local.set $old (memory.grow (i32.add (i32.const 1) (i32.rem_u (local.get $s) (i32.const 3)))))
      (local.set $new (memory.size))
      (call $pattern (i32.mul (local.get $old) (i32.const 65536)) (i32.mul (local.get $new) (i32.const 65536))
        (i32.mul (local.get $s) (i32.const 0x01010101)))
      ;; copy a slice of the first page into the new pages and punch a hole with fill
      (memory.copy (i32.add (i32.mul (local.get $old) (i32.const 65536)) (i32.const 100))
                   (i32.const 4096) (i32.const 37))
      (memory.fill (i32.add (i32.mul (local.get $old) (i32.const 65536)) (i32.mul (local.get $s) (i32.const 300)))
                   (local.get $s) (i32.const 1000))
      (local.set $h (call $checksum))
      (local.set $h (call_indirect $t (type $mixer) (local.get $h) (i32.add (i32.const 2) (i32.and (local.get $s) (i32.const 3)))))
      (global.set $total (i64.add (global.get $total) (local.get $h)))
      (call $puts (i32.const 1088)) (call $sp) (call $putu (i64.extend_i32_u (local.get $s))) (call $sp)
      (call $putu (i64.extend_i32_u (local.get $old))) (call $sp) (call $putu (i64.extend_i32_u (local.get $new))) (call $sp)
      (call $putx64 (local.get $h)) (call $nl)
      (local.set $s (i32.add (local.get $s) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $s) (i32.const 24))))
    (call $kv (i32.const 1344) (i64.extend_i32_s (memory.grow (i32.const 70000))))
    (call $kv (i32.const 1472) (i64.extend_i32_s (memory.grow (i32.sub (i32.const 64) (memory.size)))))
    (call $kv (i32.const 1536) (i64.extend_i32_s (memory.grow (i32.const 1))))
    (call $kv (i32.const 1408) (i64.extend_i32_u (memory.size)))
    (call $kv (i32.const 1280) (global.get $total)))
)
