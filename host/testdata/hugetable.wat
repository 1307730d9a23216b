;; A reactor with a funcref table of 9,000,000 elements: 72 MB in the host
;; (8 bytes per element) for a module of about 100 bytes. Tables count
;; against the memory limit: it needs --memory of at least 69 MiB.
(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (table 9000000 funcref)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (call $output (local.get $ptr) (local.get $len))
    (i32.const 0))
)
