;; C/R test program: values live on the operand stack across calls.
;;
;; Nested calls whose callers hold i32/i64/f32/f64 operands (`(i32.add (local.get 0) (call ...))`
;; nested 8 deep), calls inside multi-value `block`/`if`/`loop` with params and results (a loop
;; whose parameters sit on the stack at its header), `call_indirect` through a table and `br_table`
;; carrying a value. Reference values too: a funcref local rotating across loop iterations, funcrefs
;; and a null externref on the operand stack under calls, a mutable funcref global, and a table slot
;; set at run time (`table.set`/`table.get`) and called through. Every callee reaches migration
;; points (a loop in `$spin`), so checkpoints land while the callers' operand stacks are full.
;; Prints a running transcript and the final sums.
(module
  (type $bin (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "cr_stack: operand stacks across calls\00")
  (data (i32.const 1088) "round\00")
  (data (i32.const 1152) "final acc\00")
  (data (i32.const 1216) "final acc64\00")
  (data (i32.const 1280) "final accf bits\00")
  (data (i32.const 1344) "final blocks\00")
  (data (i32.const 1408) "final dispatch\00")
  (data (i32.const 1472) "final refs\00")
  (global $gref (mut funcref) (ref.null func))

  ;; slot 8 is set at run time by $refs
  (table $t 9 funcref)
  (elem (table $t) (i32.const 0) func $op_add $op_mul $op_xor $op_rot $op_loop $op_nest $op_mix $op_blocks)

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

  (func $f (param $x i32) (result i32)
    (call $spin (local.get $x) (i32.add (i32.const 1) (i32.and (local.get $x) (i32.const 7)))))
  (func $g64 (param $x i64) (result i64)
    (i64.add (i64.rotl (local.get $x) (i64.const 13))
             (i64.extend_i32_u (call $f (i32.wrap_i64 (local.get $x))))))
  (func $gf (param $x f64) (result f64)
    (f64.add (f64.mul (local.get $x) (f64.const 0.5))
             (f64.convert_i32_u (i32.and (call $f (i32.trunc_sat_f64_u (local.get $x))) (i32.const 0xffff)))))

  ;; eight nested calls, each with a live operand below it
  (func $nest (param $x i32) (result i32)
    (i32.add (local.get $x)
      (call $f (i32.xor (i32.mul (local.get $x) (i32.const 3))
        (call $f (i32.add (i32.const 17)
          (call $f (i32.sub (local.get $x)
            (call $f (i32.rotl (i32.const 0x1234)
              (call $f (i32.or (local.get $x)
                (call $f (i32.mul (i32.const 7)
                  (call $f (i32.add (local.get $x) (call $f (local.get $x))))))))))))))))))

  ;; i32, i64, f32 and f64 values under call arguments
  (func $mix4 (param $a i32) (param $b i64) (param $c f32) (param $d f64) (result i64)
    (i64.add (i64.add (i64.extend_i32_u (local.get $a)) (local.get $b))
             (i64.add (i64.trunc_sat_f32_s (local.get $c)) (i64.trunc_sat_f64_s (local.get $d)))))
  (func $mixed (param $x i32) (result i64)
    (i64.xor
      (i64.mul (i64.extend_i32_u (local.get $x)) (i64.const 0x9e3779b97f4a7c15))
      (call $mix4
        (call $f (local.get $x))
        (call $g64 (i64.mul (i64.extend_i32_u (local.get $x)) (i64.const 0x100000001)))
        (f32.add (f32.convert_i32_s (local.get $x))
                 (f32.convert_i32_u (i32.and (call $f (i32.const 5)) (i32.const 0xfffff))))
        (call $gf (f64.convert_i32_u (local.get $x))))))

  ;; multi-value block, if and loop with params and results, calls inside
  (func $blocks (param $x i32) (result i32) (local $t i32) (local $w i64)
    local.get $x
    i64.const 1000
    block $b (param i32 i64) (result i32 i64)
      local.get $x
      call $f
      i64.extend_i32_u
      i64.add
      local.get $x
      i32.const 1
      i32.and
      br_if $b
      local.set $w
      call $f
      local.get $w
      i64.const 3
      i64.mul
    end
    local.set $w
    ;; stack: [i32]
    local.get $x
    local.get $x
    i32.const 2
    i32.and
    if (param i32) (result i32 i32)
      call $f
      local.get $x
      call $f
    else
      i32.const 99
      call $f
      i32.add
      i32.const 7
    end
    i32.xor
    i32.add
    ;; an i64 below a loop whose two i32 parameters are on the stack at every header
    local.set $t
    local.get $w
    i64.const 5
    i64.mul
    local.get $t
    i32.const 5
    loop $l (param i32 i32) (result i32 i32)
      local.set $t
      call $f
      local.get $t
      i32.const 1
      i32.sub
      local.get $t
      i32.const 1
      i32.gt_s
      br_if $l
    end
    drop
    local.set $t
    i32.wrap_i64
    local.get $t
    i32.add)

  ;; br_table carrying a value, then call_indirect; `$x` stays on the stack underneath
  (func $dispatch (param $x i32) (result i32)
    local.get $x
    block $b3 (result i32)
      block $b2 (result i32)
        block $b1 (result i32)
          block $b0 (result i32)
            local.get $x
            call $f
            local.get $x
            i32.const 3
            i32.and
            br_table $b0 $b1 $b2 $b3
          end
          local.get $x
          i32.const 0
          call_indirect $t (type $bin)
          br $b3
        end
        local.get $x
        i32.const 4
        call_indirect $t (type $bin)
        br $b3
      end
      local.get $x
      local.get $x
      i32.const 7
      i32.and
      call_indirect $t (type $bin)
    end
    i32.add)

  ;; funcrefs in a local across loop iterations and on the stack under calls; a null externref too
  (func $refs (param $x i32) (result i32) (local $r funcref) (local $e externref) (local $k i32)
    (local.set $r (ref.func $op_add))
    (loop $l
      (table.set $t (i32.const 8)
        (select (result funcref)
          (local.get $r)
          (ref.func $op_xor)
          (i32.and (call $f (i32.add (local.get $x) (local.get $k))) (i32.const 1))))
      (local.set $x (call_indirect $t (type $bin) (local.get $x) (local.get $k) (i32.const 8)))
      (local.set $r (table.get $t (i32.and (i32.add (local.get $k) (local.get $x)) (i32.const 7))))
      (drop (select (result externref)
        (ref.null extern) (local.get $e) (i32.and (call $f (local.get $k)) (i32.const 1))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.const 3))))
    (global.set $gref (local.get $r))
    (i32.add (local.get $x) (i32.add (ref.is_null (local.get $e)) (ref.is_null (local.get $r)))))

  (func $op_add (type $bin) (i32.add (local.get 0) (call $f (local.get 1))))
  (func $op_mul (type $bin) (i32.mul (i32.or (local.get 0) (i32.const 1)) (call $f (local.get 1))))
  (func $op_xor (type $bin) (i32.xor (local.get 1) (call $f (local.get 0))))
  (func $op_rot (type $bin) (i32.rotl (call $f (local.get 0)) (local.get 1)))
  (func $op_loop (type $bin)
    (call $spin (i32.add (local.get 0) (local.get 1)) (i32.add (i32.const 3) (i32.and (local.get 1) (i32.const 15)))))
  (func $op_nest (type $bin) (i32.sub (local.get 0) (call $nest (local.get 1))))
  (func $op_mix (type $bin) (i32.add (local.get 0) (i32.wrap_i64 (call $mixed (local.get 1)))))
  (func $op_blocks (type $bin) (i32.xor (local.get 0) (call $blocks (local.get 1))))

  (func $main (export "_start")
    (local $i i32) (local $acc i32) (local $acc64 i64) (local $accf f64) (local $bl i32) (local $di i32)
    (local $rf i32)
    (call $puts (i32.const 1024)) (call $nl)
    (loop $l
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (call $nest (local.get $i))))
      (local.set $acc64 (i64.add (local.get $acc64) (call $mixed (local.get $i))))
      (local.set $accf (f64.add (local.get $accf)
        (call $gf (f64.convert_i32_u (i32.and (local.get $i) (i32.const 255))))))
      (local.set $bl (i32.add (local.get $bl) (call $blocks (local.get $i))))
      (local.set $di (i32.xor (i32.rotl (local.get $di) (i32.const 5)) (call $dispatch (local.get $i))))
      (local.set $rf (i32.add (i32.mul (local.get $rf) (i32.const 7)) (call $refs (local.get $i))))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 50)))
        (then
          (call $puts (i32.const 1088)) (call $sp) (call $putu (i64.extend_i32_u (local.get $i))) (call $sp)
          (call $putx32 (local.get $acc)) (call $sp) (call $putx64 (local.get $acc64)) (call $sp)
          (call $putx64 (i64.reinterpret_f64 (local.get $accf))) (call $sp)
          (call $putx32 (local.get $bl)) (call $sp) (call $putx32 (local.get $di)) (call $sp)
          (call $putx32 (local.get $rf)) (call $nl)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 400))))
    (call $kv (i32.const 1152) (i64.extend_i32_u (local.get $acc)))
    (call $kv (i32.const 1216) (local.get $acc64))
    (call $kv (i32.const 1280) (i64.reinterpret_f64 (local.get $accf)))
    (call $kv (i32.const 1344) (i64.extend_i32_u (local.get $bl)))
    (call $kv (i32.const 1408) (i64.extend_i32_u (local.get $di)))
    ;; call through the funcref global, via the run-time table slot
    (table.set $t (i32.const 8) (global.get $gref))
    (call $kv (i32.const 1472)
      (i64.extend_i32_u (call_indirect $t (type $bin) (local.get $rf) (i32.const 3) (i32.const 8)))))
)
