;; http-wat: a reactor that answers HTTP requests with the ABI 1.1 imports
;; (http_status, http_header). The first byte of the body chooses:
;;
;;   b   400, Content-Type: application/json, {"error":"bad input"}
;;   f   sets 418, then fails the call ("refused")
;;   r   a header value holding CR LF (the call must fail)
;;   s   status 1000 (the call must fail)
;;   n   10,000 header values (the call must fail)
;;   else 201, Location: /items/ID (the route's {id}) or /files/REST (its
;;        *), Set-Cookie: a=1 and b=2, Content-Type: text/plain; the body
;;        is the request's Authorization, Content-Type and X-Multi
;;        headers joined with "|".
(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (import "sluice" "fail" (func $fail (param i32 i32)))
  (import "sluice" "meta_get" (func $meta_get (param i32 i32 i32 i32) (result i32)))
  (import "sluice" "http_status" (func $status (param i32)))
  (import "sluice" "http_header" (func $header (param i32 i32 i32 i32)))
  (memory (export "memory") 2)
  ;; the input buffers: a bump allocator from the second page
  (global $next (mut i32) (i32.const 65536))
  ;; where $put appends in the output buffer (4096 up to 65536)
  (global $pos (mut i32) (i32.const 4096))

  (data (i32.const 0)    "Content-Type")          ;; 12
  (data (i32.const 16)   "application/json")      ;; 16
  (data (i32.const 32)   "{\"error\":\"bad input\"}") ;; 21
  (data (i32.const 64)   "refused")               ;; 7
  (data (i32.const 80)   "X-Evil")                ;; 6
  (data (i32.const 96)   "a\r\nSet-Cookie: pwned=1") ;; 22
  (data (i32.const 128)  "X-N")                   ;; 3
  (data (i32.const 136)  "1")                     ;; 1
  (data (i32.const 144)  "Location")              ;; 8
  (data (i32.const 160)  "Set-Cookie")            ;; 10
  (data (i32.const 176)  "a=1")                   ;; 3
  (data (i32.const 184)  "b=2")                   ;; 3
  (data (i32.const 192)  "text/plain")            ;; 10
  (data (i32.const 208)  "/items/")               ;; 7
  (data (i32.const 224)  "/files/")               ;; 7
  (data (i32.const 240)  "http.param.id")         ;; 13
  (data (i32.const 256)  "http.path.rest")        ;; 14
  (data (i32.const 272)  "http.header.authorization") ;; 25
  (data (i32.const 304)  "http.header.content-type")  ;; 24
  (data (i32.const 336)  "http.header.x-multi")       ;; 19
  (data (i32.const 360)  "|")                     ;; 1

  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $next))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
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

  ;; $lit appends n bytes from ptr to the output buffer.
  (func $lit (param $ptr i32) (param $n i32)
    (memory.copy (global.get $pos) (local.get $ptr) (local.get $n))
    (global.set $pos (i32.add (global.get $pos) (local.get $n))))

  ;; $meta appends the value of a metadata key; returns 0 if it is absent.
  (func $meta (param $key i32) (param $klen i32) (result i32)
    (local $n i32)
    (local.set $n (call $meta_get (local.get $key) (local.get $klen)
      (global.get $pos) (i32.sub (i32.const 65536) (global.get $pos))))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 0))))
    (global.set $pos (i32.add (global.get $pos) (local.get $n)))
    (i32.const 1))

  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $c i32) (local $i i32) (local $start i32)
    (global.set $pos (i32.const 4096))
    (if (i32.gt_u (local.get $len) (i32.const 0))
      (then (local.set $c (i32.load8_u (local.get $ptr)))))
    ;; b: 400 with a JSON error
    (if (i32.eq (local.get $c) (i32.const 98))
      (then
        (call $status (i32.const 400))
        (call $header (i32.const 0) (i32.const 12) (i32.const 16) (i32.const 16))
        (call $output (i32.const 32) (i32.const 21))
        (return (i32.const 0))))
    ;; f: a status, then a failure
    (if (i32.eq (local.get $c) (i32.const 102))
      (then
        (call $status (i32.const 418))
        (call $fail (i32.const 64) (i32.const 7))
        (return (i32.const 1))))
    ;; r: a header that would split the response
    (if (i32.eq (local.get $c) (i32.const 114))
      (then
        (call $header (i32.const 80) (i32.const 6) (i32.const 96) (i32.const 22))
        (return (i32.const 0))))
    ;; s: no such status
    (if (i32.eq (local.get $c) (i32.const 115))
      (then
        (call $status (i32.const 1000))
        (return (i32.const 0))))
    ;; n: 10,000 headers
    (if (i32.eq (local.get $c) (i32.const 110))
      (then
        (loop $more
          (call $header (i32.const 128) (i32.const 3) (i32.const 136) (i32.const 1))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $more (i32.lt_u (local.get $i) (i32.const 10000))))
        (return (i32.const 0))))
    ;; else: 201 with a Location, two cookies and the request's headers
    (call $status (i32.const 201))
    (local.set $start (global.get $pos))
    (call $lit (i32.const 208) (i32.const 7))
    (if (i32.eqz (call $meta (i32.const 240) (i32.const 13)))
      (then
        (global.set $pos (local.get $start))
        (call $lit (i32.const 224) (i32.const 7))
        (drop (call $meta (i32.const 256) (i32.const 14)))))
    (call $header (i32.const 144) (i32.const 8) (local.get $start) (i32.sub (global.get $pos) (local.get $start)))
    (call $header (i32.const 160) (i32.const 10) (i32.const 176) (i32.const 3))
    (call $header (i32.const 160) (i32.const 10) (i32.const 184) (i32.const 3))
    (call $header (i32.const 0) (i32.const 12) (i32.const 192) (i32.const 10))
    (local.set $start (global.get $pos))
    (drop (call $meta (i32.const 272) (i32.const 25)))
    (call $lit (i32.const 360) (i32.const 1))
    (drop (call $meta (i32.const 304) (i32.const 24)))
    (call $lit (i32.const 360) (i32.const 1))
    (drop (call $meta (i32.const 336) (i32.const 19)))
    (call $output (local.get $start) (i32.sub (global.get $pos) (local.get $start)))
    (i32.const 0))
)
