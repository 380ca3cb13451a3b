;; The program of tools/smoke-installed.sh (README's "Using it", as written).
;; `app.wasm` is this file through `wat2wasm app.wat -o app.wasm` (committed:
;; the installed tools are tried without wabt).
;;
;; 40 rounds; each makes 2,000 calls of a function with a loop (about 18,000
;; migration points a round, 720,000 in all: `--checkpoint-after-points
;; 100000` stops it in round 6), prints `round K hash H`, then sleeps 25 ms
;; (poll_oneoff), so the compiled program runs for about a second: long
;; enough to be sent SIGUSR1 after its second round, even on a busy machine. Output does not depend on arguments,
;; environment or time, so runs cut by a checkpoint add up to a whole run.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "round \00")
  (data (i32.const 1040) " hash \00")
  (data (i32.const 1056) "done\0a\00")

  ;; memory: [0,8) iovec, [8,12) nwritten, [16,48) digit buffer
  (func $write (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $puts (param $p i32) (local $q i32)
    (local.set $q (local.get $p))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (i32.load8_u (local.get $q))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $l)))
    (call $write (local.get $p) (i32.sub (local.get $q) (local.get $p))))
  ;; unsigned decimal
  (func $putu (param $v i64) (local $p i32)
    (local.set $p (i32.const 48))
    (loop $l
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $l (i64.ne (local.get $v) (i64.const 0))))
    (call $write (local.get $p) (i32.sub (i32.const 48) (local.get $p))))
  (func $nl
    (i32.store8 (i32.const 48) (i32.const 10))
    (call $write (i32.const 48) (i32.const 1)))

  ;; sleep 25 ms: one relative clock subscription at 4096, its event at 4160
  (func $sleep
    (i64.store (i32.const 4096) (i64.const 7))          ;; userdata
    (i32.store8 (i32.const 4104) (i32.const 0))         ;; tag: clock
    (i32.store (i32.const 4112) (i32.const 1))          ;; clock id: monotonic
    (i64.store (i32.const 4120) (i64.const 25000000))   ;; timeout, ns
    (i64.store (i32.const 4128) (i64.const 0))          ;; precision
    (i32.store16 (i32.const 4136) (i32.const 0))        ;; flags: relative
    (drop (call $poll_oneoff (i32.const 4096) (i32.const 4160) (i32.const 1) (i32.const 4200))))

  ;; mixes $h through a 4 KiB table at 8192 (8 loop iterations)
  (func $step (param $h i64) (param $i i32) (result i64) (local $j i32) (local $p i32)
    (loop $l
      (local.set $p (i32.add (i32.const 8192) (i32.and (i32.wrap_i64 (local.get $h)) (i32.const 0xff8))))
      (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load (local.get $p))) (i64.const 0x100000001b3)))
      (i64.store (local.get $p) (i64.add (local.get $h) (i64.extend_i32_u (local.get $j))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $j) (i32.const 8))))
    (i64.xor (local.get $h) (i64.extend_i32_u (local.get $i))))

  (func $main (export "_start") (local $round i32) (local $i i32) (local $h i64)
    (local.set $h (i64.const 0xcbf29ce484222325))
    (loop $rounds
      (local.set $i (i32.const 0))
      (loop $steps
        (local.set $h (call $step (local.get $h) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $steps (i32.lt_u (local.get $i) (i32.const 2000))))
      (local.set $round (i32.add (local.get $round) (i32.const 1)))
      (call $puts (i32.const 1024)) (call $putu (i64.extend_i32_u (local.get $round)))
      (call $puts (i32.const 1040)) (call $putu (local.get $h)) (call $nl)
      (call $sleep)
      (br_if $rounds (i32.lt_u (local.get $round) (i32.const 40))))
    (call $puts (i32.const 1056)))
)
