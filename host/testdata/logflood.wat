;; A reactor that logs nothing but empty lines: 100,000 "\n" to stderr,
;; then 100,000 calls of sluice.log with length 0. Each empty record must
;; count against the per-call log limit.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\n")
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    ;; iovec at 0: {buf=16, len=1}
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 1))
    (loop $lines
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $lines (i32.lt_u (local.get $i) (i32.const 100000))))
    (local.set $i (i32.const 0))
    (loop $records
      (call $log (i32.const 1) (i32.const 16) (i32.const 0))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $records (i32.lt_u (local.get $i) (i32.const 100000))))
    (call $output (i32.const 16) (i32.const 0))
    (i32.const 0))
)
