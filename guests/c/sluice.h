/*
 * sluice.h: the sluice guest ABI, version 1, for C reactors
 * (clang --target=wasm32-wasi -mexec-model=reactor). See abi/README.md.
 *
 * A reactor defines two functions with SLUICE_EXPORT:
 *
 *   SLUICE_EXPORT("sluice_alloc") void *sluice_alloc(uint32_t size);
 *   SLUICE_EXPORT("sluice_handle") uint32_t sluice_handle(uint8_t *in, uint32_t len);
 *
 * and reports its result with sluice_output or sluice_fail; behind an
 * HTTP trigger it reads the request with sluice_meta and
 * sluice_request_header and sets the response with sluice_http_status and
 * sluice_header (see examples/http-c).
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#define SLUICE_EXPORT(name) __attribute__((export_name(name)))
#define SLUICE_IMPORT(name) __attribute__((import_module("sluice"), import_name(name)))

enum { SLUICE_OK = 0, SLUICE_FAILED = 1 };
enum { SLUICE_DEBUG = 0, SLUICE_INFO = 1, SLUICE_WARN = 2, SLUICE_ERROR = 3 };

/* Set the call's output; the host copies the bytes at once. */
SLUICE_IMPORT("output") void sluice_output(const void *ptr, uint32_t len);
/* Set the call's error message; then return SLUICE_FAILED. */
SLUICE_IMPORT("fail") void sluice_fail(const char *msg, uint32_t len);
/* Write one log record. */
SLUICE_IMPORT("log") void sluice_log(int32_t level, const char *msg, uint32_t len);
/* Look up call metadata: -1 if absent, else the value's length (copies at most cap bytes). */
SLUICE_IMPORT("meta_get") int32_t sluice_meta_get(const char *key, uint32_t key_len, char *buf, uint32_t cap);

/*
 * ABI 1.1: the HTTP request and response (abi/README.md). A module that
 * never calls sluice_http_status or sluice_http_header does not import
 * them, and runs on a host of ABI 1.0 as well.
 */

/* Set the response's HTTP status (200-599); any other fails the call. */
SLUICE_IMPORT("http_status") void sluice_http_status(int32_t code);
/* Add one response header value; call again for several values of one
 * name (Set-Cookie). A name that is not an HTTP token, a value holding
 * CR, LF or NUL, or past 100 values / 64 KiB fails the call; framing and
 * hop-by-hop headers (Content-Length, Connection, ...) are dropped. */
SLUICE_IMPORT("http_header") void sluice_http_header(const char *name, uint32_t name_len, const char *value, uint32_t value_len);

#ifndef SLUICE_NO_HELPERS
#include <string.h>

/* sluice_meta reads metadata key into buf (NUL-terminated, cut to cap-1
 * bytes). Returns the value's full length, or -1 if the key is absent
 * (then buf is ""). */
static inline int32_t sluice_meta(const char *key, char *buf, uint32_t cap) {
	int32_t n = sluice_meta_get(key, (uint32_t)strlen(key), buf, cap ? cap - 1 : 0);
	if (cap) buf[n < 0 ? 0 : ((uint32_t)n < cap - 1 ? (uint32_t)n : cap - 1)] = 0;
	return n;
}

/* sluice_request_header reads a request header by name, in any case
 * ("Authorization"): its values joined with ", ". Same results as
 * sluice_meta. */
static inline int32_t sluice_request_header(const char *name, char *buf, uint32_t cap) {
	char key[256] = "http.header.";
	size_t p = strlen(key), n = strlen(name);
	if (p + n >= sizeof key) {
		if (cap) buf[0] = 0;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		key[p + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	key[p + n] = 0;
	return sluice_meta(key, buf, cap);
}

/* sluice_header adds a response header from NUL-terminated strings. */
static inline void sluice_header(const char *name, const char *value) {
	sluice_http_header(name, (uint32_t)strlen(name), value, (uint32_t)strlen(value));
}

/* sluice_output_str sets the output to a NUL-terminated string. */
static inline void sluice_output_str(const char *s) { sluice_output(s, (uint32_t)strlen(s)); }
#endif

#endif
