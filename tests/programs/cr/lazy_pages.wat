;; For lazy restore (wanco-rt's pager): pages 2-6 hold data at the
;; checkpoint (migration point 9: the second back-edge of $wait); after it
;; the program touches exactly pages 5 (stored), 7 (zero) and 1 (zero,
;; where it builds its output) before its first host call, grows the memory
;; and uses the new page, and prints "3\n" (page 5's 103, minus 100).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
  (func (export "_start") (local $i i32) (local $sum i64)
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (i32.const 5)))
        (i64.store
          (i32.add (i32.const 131072) (i32.mul (local.get $i) (i32.const 65536)))
          (i64.extend_i32_u (i32.add (local.get $i) (i32.const 100))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    (local.set $i (i32.const 0))
    (loop $wait
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $wait (i32.lt_u (local.get $i) (i32.const 3))))
    ;; page 5 (stored: 103) + page 7 (zero)
    (local.set $sum (i64.add (i64.load (i32.const 327680)) (i64.load (i32.const 458752))))
    ;; a page grown after the restore
    (drop (memory.grow (i32.const 1)))
    (i64.store (i32.const 524288) (i64.const 7))
    (local.set $sum (i64.sub (i64.add (local.get $sum) (i64.load (i32.const 524288))) (i64.const 7)))
    ;; "3\n" at 65552, its iovec at 65536
    (i32.store8 (i32.const 65552) (i32.add (i32.wrap_i64 (i64.sub (local.get $sum) (i64.const 100))) (i32.const 48)))
    (i32.store8 (i32.const 65553) (i32.const 10))
    (i32.store (i32.const 65536) (i32.const 65552))
    (i32.store (i32.const 65540) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 65536) (i32.const 1) (i32.const 65544)))))
