;; {{.Name}}: a sluice function in WebAssembly text{{if .HTTP}}, behind an HTTP trigger{{end}}.
{{- if .HTTP}}
;; It answers a request with "hello, " and the request's body, or 400 to
;; an empty body.
{{- else}}
;; It answers its input with "hello, " and the input, and fails on an
;; empty one.
{{- end}}
;;
;; A reactor of the sluice ABI (abi/README.md of sluice): it exports its
;; memory, sluice_alloc and sluice_handle, and imports what it uses from
;; the host's module "sluice".
;;
;; Memory: constants below 256, the log line at 256, the heap from 1024.
;; sluice_alloc is a bump allocator: the host asks for an input buffer
;; only when an input does not fit the one it has, and keeps it, so it
;; never needs freeing. The output is built in a scratch buffer on top of
;; the heap, given back at the end of the call.
(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (import "sluice" "fail" (func $fail (param i32 i32)))
{{- if .HTTP}}
  (import "sluice" "http_status" (func $http_status (param i32)))
  (import "sluice" "http_header" (func $http_header (param i32 i32 i32 i32)))
{{- else}}
  (import "sluice" "error_code" (func $error_code (param i32 i32)))
{{- end}}
  (memory (export "memory") 1)

  (data (i32.const 16) "hello, ")                       ;; 7 bytes
  (data (i32.const 32) "empty input")                   ;; 11
  (data (i32.const 48) "empty_input")                   ;; 11
  (data (i32.const 64) "greeting ")                     ;; 9
  (data (i32.const 80) " bytes")                        ;; 6
  (data (i32.const 96) "Content-Type")                  ;; 12
  (data (i32.const 112) "text/plain; charset=utf-8")    ;; 25
  (data (i32.const 144) "out of memory")                ;; 13

  (global $heap (mut i32) (i32.const 1024))

  ;; sluice_alloc returns size writable bytes, or 0 if memory cannot grow.
  (func $alloc (export "sluice_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr))
      (then (return (i32.const 0))))                    ;; past 4 GiB
    (local.set $pages
      (i32.sub
        (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; $decimal writes v in decimal at dst and returns how many digits.
  (func $decimal (param $v i32) (param $dst i32) (result i32)
    (local $n i32) (local $rest i32) (local $i i32)
    (local.set $n (i32.const 1))
    (local.set $rest (local.get $v))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $rest) (i32.const 10)))
        (local.set $rest (i32.div_u (local.get $rest) (i32.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $count)))
    (local.set $i (local.get $n))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $write (local.get $i)))
    (local.get $n))

  ;; $log_greeting logs "greeting N bytes" at level info (1).
  (func $log_greeting (param $len i32)
    (local $n i32)
    (memory.copy (i32.const 256) (i32.const 64) (i32.const 9))
    (local.set $n (call $decimal (local.get $len) (i32.const 265)))
    (memory.copy (i32.add (i32.const 265) (local.get $n)) (i32.const 80) (i32.const 6))
    (call $log (i32.const 1) (i32.const 256) (i32.add (local.get $n) (i32.const 15))))

  ;; sluice_handle handles one call: the len bytes at ptr are its input.
  ;; It returns 0 on success, 1 on failure.
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $mark i32) (local $out i32)
{{- if .HTTP}}
    (call $http_header (i32.const 96) (i32.const 12) (i32.const 112) (i32.const 25))
    (if (i32.eqz (local.get $len))
      (then
        (call $http_status (i32.const 400))
        (call $output (i32.const 32) (i32.const 11))
        (return (i32.const 0))))
{{- else}}
    (if (i32.eqz (local.get $len))
      (then
        (call $error_code (i32.const 48) (i32.const 11))
        (call $fail (i32.const 32) (i32.const 11))
        (return (i32.const 1))))
{{- end}}
    (call $log_greeting (local.get $len))
    (local.set $mark (global.get $heap))
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 7))))
    (if (i32.eqz (local.get $out))
      (then
        (call $fail (i32.const 144) (i32.const 13))
        (return (i32.const 1))))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $ptr) (local.get $len))
    (call $output (local.get $out) (i32.add (local.get $len) (i32.const 7)))
    (global.set $heap (local.get $mark))                ;; the scratch buffer is free again
    (i32.const 0))
)
