;; A reactor that loops forever on any input but "ok".
(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    ;; input "ok" (0x6b6f little-endian) returns at once
    (if (i32.and (i32.eq (local.get $len) (i32.const 2))
                 (i32.eq (i32.load16_u (local.get $ptr)) (i32.const 0x6b6f)))
      (then
        (call $output (local.get $ptr) (local.get $len))
        (return (i32.const 0))))
    (loop $forever (br $forever))
    (i32.const 0))
)
