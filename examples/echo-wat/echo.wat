;; echo: the smallest sluice reactor. It returns its input unchanged.
;;
;; Memory layout: a bump allocator from 1024 upwards. The host calls
;; sluice_alloc only when an input does not fit the buffer it already has,
;; so the allocator never needs to free.
(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))

  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $next))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    ;; grow memory when the buffer does not fit
    (local.set $pages
      (i32.sub
        (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $next (local.get $end))
    (local.get $ptr))

  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (call $output (local.get $ptr) (local.get $len))
    (i32.const 0))
)
