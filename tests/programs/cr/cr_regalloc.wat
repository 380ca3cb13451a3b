;; C/R test program: a function LLVM 19's greedy register allocator gave up on with the C/R
;; instrumentation ("ran out of registers during register allocation"; the compiler now retries
;; the module with deopt values stored to stack slots, see `target::emit_object`). $f173 is
;; function 173 of Sightglass `rust-compression` (wasm2wat, verbatim: 13 locals, loops, a call of
;; 12 arguments, 7 of them on the stack on x86_64); its callees are stand-ins of the same types that
;; LLVM does not inline (as the originals). Prints a line per round.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 40)
  (global $sp (mut i32) (i32.const 1048576))
  (func $f44 (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (if (i32.gt_u (local.get 2) (i32.const 1000)) (then (call $f44 (local.get 0) (local.get 1) (i32.sub (local.get 2) (i32.const 1)) (local.get 3) (local.get 4) (local.get 5) (local.get 6) (local.get 7) (local.get 8) (local.get 9) (local.get 10) (local.get 11))))
    (i32.store (local.get 1) (i32.add (local.get 0) (i32.add (local.get 11) (local.get 6)))))
  (func $f558 (param i32 i32 i32) (if (local.get 2) (then (call $f558 (local.get 0) (local.get 1) (i32.sub (local.get 2) (i32.const 1))))) unreachable)
  (func $f570 (param i32) (if (local.get 0) (then (call $f570 (i32.sub (local.get 0) (i32.const 1))))) unreachable)
  (func $f173 (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (local i32 i32 i32 i32)
    global.get $sp
    i32.const 1024
    i32.sub
    local.tee 9
    global.set $sp
    block  ;; label = @1
      i32.const 1024
      i32.eqz
      br_if 0 (;@1;)
      local.get 9
      i32.const 0
      i32.const 1024
      memory.fill
    end
    block  ;; label = @1
      block  ;; label = @2
        local.get 3
        i32.const 32768
        i32.lt_u
        br_if 0 (;@2;)
        i32.const 0
        local.set 10
        i32.const 0
        i32.load offset=1621676
        local.set 11
        loop  ;; label = @3
          block  ;; label = @4
            local.get 10
            local.get 2
            i32.lt_u
            br_if 0 (;@4;)
            local.get 10
            local.get 2
            i32.const 1072732
            call $f558
            unreachable
          end
          local.get 9
          local.get 1
          local.get 10
          i32.add
          i32.load8_u
          i32.const 2
          i32.shl
          i32.add
          local.tee 12
          local.get 12
          i32.load
          i32.const 1
          i32.add
          i32.store
          local.get 10
          local.get 11
          i32.add
          local.tee 10
          local.get 3
          i32.lt_u
          br_if 0 (;@3;)
        end
        block  ;; label = @3
          local.get 11
          i32.eqz
          br_if 0 (;@3;)
          local.get 3
          local.get 11
          i32.add
          i32.const -1
          i32.add
          local.get 11
          i32.div_u
          local.set 3
          i32.const 0
          local.set 10
          loop  ;; label = @4
            local.get 9
            local.get 10
            i32.add
            local.tee 12
            i32.const 23
            local.get 12
            i32.load
            local.tee 2
            i32.const 1
            i32.shl
            i32.const 1
            i32.or
            local.get 2
            i32.const 11
            i32.gt_u
            select
            local.tee 1
            local.get 2
            i32.add
            i32.store
            local.get 12
            i32.const 4
            i32.add
            local.tee 12
            i32.const 23
            local.get 12
            i32.load
            local.tee 12
            i32.const 1
            i32.shl
            i32.const 1
            i32.or
            local.get 12
            i32.const 11
            i32.gt_u
            select
            local.tee 2
            local.get 12
            i32.add
            i32.store
            local.get 2
            local.get 1
            local.get 3
            i32.add
            i32.add
            local.set 3
            local.get 10
            i32.const 8
            i32.add
            local.tee 10
            i32.const 1024
            i32.ne
            br_if 0 (;@4;)
            br 3 (;@1;)
          end
        end
        i32.const 1072716
        call $f570
        unreachable
      end
      block  ;; label = @2
        local.get 3
        i32.eqz
        br_if 0 (;@2;)
        i32.const 0
        local.set 10
        loop  ;; label = @3
          block  ;; label = @4
            local.get 2
            local.get 10
            i32.ne
            br_if 0 (;@4;)
            local.get 10
            local.get 2
            i32.const 1072764
            call $f558
            unreachable
          end
          local.get 9
          local.get 1
          local.get 10
          i32.add
          i32.load8_u
          i32.const 2
          i32.shl
          i32.add
          local.tee 12
          local.get 12
          i32.load
          i32.const 1
          i32.add
          i32.store
          local.get 3
          local.get 10
          i32.const 1
          i32.add
          local.tee 10
          i32.ne
          br_if 0 (;@3;)
        end
      end
      i32.const 0
      local.set 10
      loop  ;; label = @2
        local.get 9
        local.get 10
        i32.add
        local.tee 12
        local.get 12
        i32.load
        local.tee 2
        i32.const 11
        local.get 2
        i32.const 11
        i32.lt_u
        select
        i32.const 1
        i32.shl
        local.tee 1
        local.get 2
        i32.add
        i32.store
        local.get 12
        i32.const 4
        i32.add
        local.tee 12
        local.get 12
        i32.load
        local.tee 12
        i32.const 11
        local.get 12
        i32.const 11
        i32.lt_u
        select
        i32.const 1
        i32.shl
        local.tee 2
        local.get 12
        i32.add
        i32.store
        local.get 2
        local.get 1
        local.get 3
        i32.add
        i32.add
        local.set 3
        local.get 10
        i32.const 8
        i32.add
        local.tee 10
        i32.const 1024
        i32.ne
        br_if 0 (;@2;)
      end
    end
    local.get 0
    local.get 9
    i32.const 256
    local.get 3
    i32.const 8
    local.get 4
    i32.const 256
    local.get 5
    i32.const 256
    local.get 6
    local.get 7
    local.get 8
    call $f44
    i32.const 0
    local.set 10
    i32.const 0
    local.set 12
    loop  ;; label = @1
      block  ;; label = @2
        local.get 9
        local.get 10
        i32.add
        local.tee 2
        i32.load
        local.tee 1
        i32.eqz
        br_if 0 (;@2;)
        local.get 1
        local.get 4
        i32.load8_u
        i32.mul
        local.get 12
        i32.add
        local.set 12
      end
      block  ;; label = @2
        local.get 2
        i32.const 4
        i32.add
        i32.load
        local.tee 2
        i32.eqz
        br_if 0 (;@2;)
        local.get 2
        local.get 4
        i32.const 1
        i32.add
        i32.load8_u
        i32.mul
        local.get 12
        i32.add
        local.set 12
      end
      local.get 4
      i32.const 2
      i32.add
      local.set 4
      local.get 10
      i32.const 8
      i32.add
      local.tee 10
      i32.const 1024
      i32.ne
      br_if 0 (;@1;)
    end
    block  ;; label = @1
      local.get 3
      br_if 0 (;@1;)
      i32.const 1072748
      call $f570
      unreachable
    end
    local.get 9
    i32.const 1024
    i32.add
    global.set $sp
    local.get 12
    i32.const 125
    i32.mul
    local.get 3
    i32.div_u)

  ;; prints $v as 8 hex digits and a newline
  (func $hex (param $v i32) (local $i i32) (local $d i32)
    (local.set $i (i32.const 8))
    (loop $l
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (local.set $d (i32.and (local.get $v) (i32.const 15)))
      (i32.store8 (i32.add (i32.const 16) (local.get $i))
        (i32.add (local.get $d) (select (i32.const 87) (i32.const 48) (i32.gt_u (local.get $d) (i32.const 9)))))
      (local.set $v (i32.shr_u (local.get $v) (i32.const 4)))
      (br_if $l (local.get $i)))
    (i32.store8 (i32.const 24) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (local $r i32) (local $k i32)
    ;; input bytes at 4096: a pseudo-random sequence
    (loop $fill
      (i32.store8 (i32.add (i32.const 4096) (local.get $k)) (i32.shr_u (i32.mul (local.get $k) (i32.const 0x9e3779b1)) (i32.const 24)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $k) (i32.const 65536))))
    (local.set $k (i32.const 0))
    (i32.store (i32.const 1621676) (i32.const 7))
    (loop $rounds
      (local.set $r (i32.add (local.get $r)
        (call $f173 (local.get $k) (i32.const 4096) (i32.const 65536) (i32.add (i32.const 32768) (i32.mul (local.get $k) (i32.const 1000))) (i32.const 8192) (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4))))
      (call $hex (local.get $r))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $k) (i32.const 4)))))
)
