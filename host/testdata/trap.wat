;; A reactor whose every call traps.
(module
  (memory (export "memory") 1)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func $boom (unreachable))
  (func (export "sluice_handle") (param i32 i32) (result i32)
    (call $boom)
    (i32.const 0))
)
