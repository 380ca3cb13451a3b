;; Compile-only fixture: LLVM 19's greedy register allocator runs out of registers on x86_64 with
;; the C/R instrumentation's deopt values in registers ("ran out of registers during register
;; allocation"); the compiler builds such a part again with them in stack slots
;; (`parts::compile`). $f101 is function 101 of Sightglass `regex` (wasm2wat --generate-names,
;; verbatim: a 12-parameter function with a loop around calls of 9 to 11 arguments); the
;; functions it calls are imports here (in regex they sit in other parts of a `-j 64` compile,
;; equally opaque), the rest of regex is left out. Found by compiling regex with
;; WANCO_PARTS_TIMING=1 (the part "built twice"), then halving the part. Not a program to run.
(module
  (type $t0 (func))
  (type $t1 (func (param i32)))
  (type $t2 (func (param i32) (result i32)))
  (type $t3 (func (param i32 i32 i32 i32 i32 i32)))
  (type $t4 (func (param i32 i32 i32) (result i32)))
  (type $t5 (func (param i32 i32)))
  (type $t6 (func (param i32 i32 i32 i32 i32 i32 i32)))
  (type $t7 (func (param i32 i32) (result i32)))
  (type $t8 (func (param i32 i32 i32)))
  (type $t9 (func (param i32 i32 i32 i32)))
  (type $t10 (func (param i32 i32 i32 i32) (result i32)))
  (type $t11 (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (type $t12 (func (result i32)))
  (type $t13 (func (param i32 i32 i32 i32 i32)))
  (type $t14 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t15 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t16 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t17 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t18 (func (param i32 i32) (result i64)))
  (type $t19 (func (param i32 i32 i32 i32 i32) (result i32)))
  (type $t20 (func (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (type $t21 (func (param i32 i32 i32 i32 i32 i32 i64 i64 i32)))
  (type $t22 (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t23 (func (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t24 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t25 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (type $t26 (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "f133" (func $f133 (type $t15)))
  (import "env" "f135" (func $f135 (type $t16)))
  (import "env" "f137" (func $f137 (type $t17)))
  (import "env" "f140" (func $f140 (type $t16)))
  (table $T0 295 295 funcref)
  (memory $memory 22)
  (global $g0 (mut i32) (i32.const 1048576))
  (func $f101 (type $t14) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32) (param $p4 i32) (param $p5 i32) (param $p6 i32) (param $p7 i32) (param $p8 i32) (param $p9 i32) (param $p10 i32) (param $p11 i32) (result i32)
    (local $l12 i32) (local $l13 i32)
    global.get $g0
    i32.const 16
    i32.sub
    local.tee $l12
    global.set $g0
    block $B0
      local.get $p1
      i32.const 255
      i32.and
      br_if $B0
      i32.const 1
      i32.const 2
      local.get $p0
      i32.load
      i32.load
      i32.load offset=488
      local.get $p9
      i32.const 1
      i32.add
      i32.mul
      i32.const 31
      i32.add
      i32.const -32
      i32.and
      i32.const 2097160
      i32.lt_u
      select
      local.set $p1
    end
    block $B1
      block $B2
        block $B3
          local.get $p7
          br_if $B3
          local.get $p1
          i32.const 255
          i32.and
          i32.const 2
          i32.ne
          br_if $B2
        end
        local.get $p0
        i32.load
        i32.load
        local.tee $p1
        i32.const 8
        i32.add
        local.set $l13
        block $B4
          local.get $p1
          i32.load8_u offset=541
          br_if $B4
          local.get $p1
          i32.load8_u offset=542
          br_if $B4
          local.get $l13
          local.get $p0
          i32.load offset=8
          local.tee $p1
          local.get $p0
          i32.load offset=4
          i32.const 24
          i32.add
          local.get $p1
          select
          local.get $p2
          local.get $p3
          local.get $p4
          local.get $p5
          local.get $p6
          local.get $p8
          local.get $p9
          local.get $p10
          local.get $p11
          call $f137
          local.set $p0
          br $B1
        end
        local.get $p0
        i32.load offset=8
        local.set $p7
        local.get $p0
        i32.load offset=4
        local.set $p0
        local.get $l12
        local.get $p9
        i32.store offset=8
        local.get $l12
        local.get $p8
        i32.store offset=4
        local.get $l12
        local.get $p1
        i32.load8_u offset=540
        i32.store8 offset=12
        local.get $l13
        local.get $p7
        local.get $p0
        i32.const 24
        i32.add
        local.get $p7
        select
        local.get $p2
        local.get $p3
        local.get $p4
        local.get $p5
        local.get $p6
        local.get $l12
        i32.const 4
        i32.add
        local.get $p10
        local.get $p11
        call $f140
        local.set $p0
        br $B1
      end
      local.get $p0
      i32.load
      i32.load
      local.tee $p1
      i32.const 8
      i32.add
      local.set $p6
      block $B5
        local.get $p1
        i32.load8_u offset=541
        br_if $B5
        local.get $p1
        i32.load8_u offset=542
        br_if $B5
        local.get $p6
        local.get $p0
        i32.load offset=8
        local.tee $p1
        local.get $p0
        i32.load offset=4
        i32.const 24
        i32.add
        local.get $p1
        select
        local.get $p2
        local.get $p3
        local.get $p4
        local.get $p5
        local.get $p8
        local.get $p9
        local.get $p10
        local.get $p11
        call $f135
        local.set $p0
        br $B1
      end
      local.get $p0
      i32.load offset=8
      local.set $p7
      local.get $p0
      i32.load offset=4
      local.set $p0
      local.get $l12
      local.get $p9
      i32.store offset=8
      local.get $l12
      local.get $p8
      i32.store offset=4
      local.get $l12
      local.get $p1
      i32.load8_u offset=540
      i32.store8 offset=12
      local.get $p6
      local.get $p7
      local.get $p0
      i32.const 24
      i32.add
      local.get $p7
      select
      local.get $p2
      local.get $p3
      local.get $p4
      local.get $p5
      local.get $l12
      i32.const 4
      i32.add
      local.get $p10
      local.get $p11
      call $f133
      local.set $p0
    end
    local.get $l12
    i32.const 16
    i32.add
    global.set $g0
    local.get $p0)
)
