;; A reactor that calls the host's imports with whatever pointers, lengths
;; and levels its input gives it, for the ABI fuzz target. The input is a
;; sequence of 17-byte records: an operation byte, then four little-endian
;; i32 arguments a, b, c, d.
;;
;;   op % 6 = 0  sluice.output(a, b)
;;            1  sluice.fail(a, b)
;;            2  sluice.log(a, b, c)
;;            3  sluice.meta_get(a, b, c, d)
;;            4  wasi fd_write(1 + a % 2, b, c, d)   (stdout or stderr)
;;            5  memory.grow(a % 4)
;;
;; After the last record it returns d of the last record (0 success, any
;; other value failure). The input lives at the address sluice_alloc gave,
;; which is past the first page, so small pointers read what the guest
;; itself wrote there.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "output" (func $output (param i32 i32)))
  (import "sluice" "fail" (func $fail (param i32 i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (import "sluice" "meta_get" (func $meta_get (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2 8)
  (data (i32.const 0) "function\00version\00invocation\00a line of text\n")
  (func (export "sluice_alloc") (param $n i32) (result i32)
    ;; one page of scratch, then the input; grow if it does not fit
    (local $need i32)
    (local.set $need (i32.add (i32.const 65536) (local.get $n)))
    (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.sub
                (i32.shr_u (i32.add (local.get $need) (i32.const 65535)) (i32.const 16))
                (memory.size)))
              (i32.const 0))
          (then (return (i32.const 0))))))
    (i32.const 65536))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $p i32) (local $end i32) (local $op i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32)
    (local.set $p (local.get $ptr))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $p) (i32.const 17)) (local.get $end)))
        (local.set $op (i32.rem_u (i32.load8_u (local.get $p)) (i32.const 6)))
        (local.set $a (i32.load (i32.add (local.get $p) (i32.const 1))))
        (local.set $b (i32.load (i32.add (local.get $p) (i32.const 5))))
        (local.set $c (i32.load (i32.add (local.get $p) (i32.const 9))))
        (local.set $d (i32.load (i32.add (local.get $p) (i32.const 13))))
        (local.set $p (i32.add (local.get $p) (i32.const 17)))
        (block $op5 (block $op4 (block $op3 (block $op2 (block $op1 (block $op0
          (br_table $op0 $op1 $op2 $op3 $op4 $op5 (local.get $op)))
          (call $output (local.get $a) (local.get $b))
          (br $next))
          (call $fail (local.get $a) (local.get $b))
          (br $next))
          (call $log (local.get $a) (local.get $b) (local.get $c))
          (br $next))
          (drop (call $meta_get (local.get $a) (local.get $b) (local.get $c) (local.get $d)))
          (br $next))
          (drop (call $fd_write
            (i32.add (i32.const 1) (i32.rem_u (local.get $a) (i32.const 2)))
            (local.get $b) (local.get $c) (local.get $d)))
          (br $next))
        (drop (memory.grow (i32.rem_u (local.get $a) (i32.const 4))))
        (br $next)))
    (local.get $d))
)
