/*
 * sluice.h: the sluice guest ABI, version 1, for C reactors
 * (clang --target=wasm32-wasi -mexec-model=reactor). See abi/README.md.
 *
 * A function is a handler and nothing else:
 *
 *   #include "sluice.h"
 *
 *   static int handle(const uint8_t *in, size_t len) {
 *       if (len == 0) return sluice_fail_code("empty_input", "empty input");
 *       sluice_info("got %zu bytes", len);
 *       sluice_output(in, len);
 *       return SLUICE_OK;
 *   }
 *
 *   SLUICE_HANDLER(handle)
 *
 * SLUICE_HANDLER defines the exports the host calls: sluice_handle, which
 * runs the handler, and the allocator for the input buffers,
 * sluice_alloc and sluice_free, on wasi-libc's malloc and free (the host
 * keeps an input buffer across calls and frees it itself, so a per-call
 * bump allocator would not do). The handler returns SLUICE_OK, or
 * SLUICE_FAILED after sluice_fail / sluice_fail_str / sluice_fail_code;
 * the input is only valid during the call. Behind an HTTP trigger it reads
 * the request with sluice_meta and sluice_request_header and sets the
 * response with sluice_http_status and sluice_header (see examples/http-c).
 *
 * Native tests: compiled with -DSLUICE_NATIVE by the machine's own C
 * compiler, the imports are stubs that record what the handler did, and
 * sluice_test_call runs it. The test file includes the handler's file, so
 * that they are one translation unit:
 *
 *   #include "handler.c"
 *   int main(void) {
 *       struct sluice_result r = sluice_test_call("Ada", 3);
 *       return r.failed || strcmp(r.output, "hello, Ada") != 0;
 *   }
 *
 * A module that defines the exports itself (without SLUICE_HANDLER) uses
 * SLUICE_EXPORT, as examples did before.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SLUICE_NATIVE
#define SLUICE_EXPORT(name) __attribute__((unused))
#define SLUICE_IMPORT(name) static __attribute__((unused))
#else
#define SLUICE_EXPORT(name) __attribute__((export_name(name)))
#define SLUICE_IMPORT(name) __attribute__((import_module("sluice"), import_name(name)))
#endif

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

/*
 * ABI 1.2: the code of the call's failure, beside its message (a lowercase
 * letter, then up to 63 of a-z, 0-9, _ . -, like card_declined): what a
 * workflow's retry filters and catch see instead of function_error. Call
 * it before returning SLUICE_FAILED (or use sluice_fail_code).
 */
SLUICE_IMPORT("error_code") void sluice_error_code(const char *code, uint32_t len);

/*
 * SLUICE_HANDLER(fn) makes fn, an int fn(const uint8_t *in, size_t len),
 * the function's handler: it defines sluice_handle, sluice_alloc and
 * sluice_free. Use it once, in one file.
 */
#define SLUICE_HANDLER(fn)                                                              \
	SLUICE_EXPORT("sluice_alloc") void *sluice_alloc(uint32_t size) {                   \
		return malloc(size ? size : 1);                                                 \
	}                                                                                   \
	SLUICE_EXPORT("sluice_free") void sluice_free(void *ptr, uint32_t size) {           \
		(void)size;                                                                     \
		free(ptr);                                                                      \
	}                                                                                   \
	SLUICE_EXPORT("sluice_handle") uint32_t sluice_handle(uint8_t *in, uint32_t len) { \
		return fn(in, (size_t)len) == SLUICE_OK ? SLUICE_OK : SLUICE_FAILED;            \
	}

#ifndef SLUICE_NO_HELPERS

/* sluice_output_str sets the output to a NUL-terminated string. */
static inline void sluice_output_str(const char *s) { sluice_output(s, (uint32_t)strlen(s)); }

/* sluice_fail_str fails the call with a NUL-terminated message:
 * return sluice_fail_str("no name given"); */
static inline int sluice_fail_str(const char *msg) {
	sluice_fail(msg, (uint32_t)strlen(msg));
	return SLUICE_FAILED;
}

/* sluice_fail_code fails the call with a code and a message:
 * return sluice_fail_code("card_declined", "the card was declined"); */
static inline int sluice_fail_code(const char *code, const char *msg) {
	sluice_error_code(code, (uint32_t)strlen(code));
	sluice_fail(msg, (uint32_t)strlen(msg));
	return SLUICE_FAILED;
}

/* sluice_logf writes one log record, formatted as printf does:
 * sluice_logf(SLUICE_INFO, "got %zu bytes", len). sluice_debug,
 * sluice_info, sluice_warn and sluice_error are it at their level. */
static inline void sluice_logf(int32_t level, const char *format, ...) {
	char small[512];
	va_list ap;
	va_start(ap, format);
	int n = vsnprintf(small, sizeof small, format, ap);
	va_end(ap);
	if (n < 0) return;
	if ((size_t)n < sizeof small) {
		sluice_log(level, small, (uint32_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		sluice_log(level, small, sizeof small - 1);
		return;
	}
	va_start(ap, format);
	vsnprintf(big, (size_t)n + 1, format, ap);
	va_end(ap);
	sluice_log(level, big, (uint32_t)n);
	free(big);
}
#define sluice_debug(...) sluice_logf(SLUICE_DEBUG, __VA_ARGS__)
#define sluice_info(...) sluice_logf(SLUICE_INFO, __VA_ARGS__)
#define sluice_warn(...) sluice_logf(SLUICE_WARN, __VA_ARGS__)
#define sluice_error(...) sluice_logf(SLUICE_ERROR, __VA_ARGS__)

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
#endif /* SLUICE_NO_HELPERS */

#ifdef SLUICE_NATIVE
/*
 * The native stubs: the imports record what the handler does, for
 * sluice_test_call to return. One call at a time, like an instance.
 */

/* sluice_result is what a native call did. Its strings are NUL-terminated
 * and valid until the next call. */
struct sluice_result {
	int failed;           /* the handler returned SLUICE_FAILED */
	const char *output;   /* the output (output_len bytes) */
	size_t output_len;
	const char *error;    /* the fail message, or "" */
	const char *code;     /* the error code, or "" */
	int status;           /* the HTTP status set, or 0 */
	const char *headers;  /* one "Name: value\n" per header value set */
	const char *logs;     /* one "LEVEL message\n" per log record (INFO got 3 bytes) */
};

/* sluice_buf_ is a growing buffer of the stubs. */
struct sluice_buf_ {
	char *p;
	size_t len, cap;
};

static struct {
	struct sluice_buf_ output, error, code, headers, logs, meta;
	int status;
} sluice_native_;

static void sluice_buf_put_(struct sluice_buf_ *b, const void *p, size_t n) {
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (b->len + n + 1 > cap) cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) abort();
		b->p = q;
		b->cap = cap;
	}
	if (n) memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sluice_buf_reset_(struct sluice_buf_ *b) {
	b->len = 0;
	sluice_buf_put_(b, "", 0);
}

static void sluice_output(const void *ptr, uint32_t len) {
	sluice_buf_reset_(&sluice_native_.output);
	sluice_buf_put_(&sluice_native_.output, ptr, len);
}

static void sluice_fail(const char *msg, uint32_t len) {
	sluice_buf_reset_(&sluice_native_.error);
	sluice_buf_put_(&sluice_native_.error, msg, len);
}

static void sluice_error_code(const char *code, uint32_t len) {
	sluice_buf_reset_(&sluice_native_.code);
	sluice_buf_put_(&sluice_native_.code, code, len);
}

static void sluice_log(int32_t level, const char *msg, uint32_t len) {
	static const char *const names[] = {"DEBUG ", "INFO ", "WARN ", "ERROR "};
	const char *name = level >= 0 && level <= 3 ? names[level] : "ERROR ";
	sluice_buf_put_(&sluice_native_.logs, name, strlen(name));
	sluice_buf_put_(&sluice_native_.logs, msg, len);
	sluice_buf_put_(&sluice_native_.logs, "\n", 1);
}

static void sluice_http_status(int32_t code) { sluice_native_.status = code; }

static void sluice_http_header(const char *name, uint32_t name_len, const char *value, uint32_t value_len) {
	sluice_buf_put_(&sluice_native_.headers, name, name_len);
	sluice_buf_put_(&sluice_native_.headers, ": ", 2);
	sluice_buf_put_(&sluice_native_.headers, value, value_len);
	sluice_buf_put_(&sluice_native_.headers, "\n", 1);
}

/* The metadata is kept as key NUL value NUL pairs; the last pair of a
 * key is its value. */
static int32_t sluice_meta_get(const char *key, uint32_t key_len, char *buf, uint32_t cap) {
	struct sluice_buf_ *m = &sluice_native_.meta;
	const char *found = NULL;
	for (size_t i = 0; i < m->len;) {
		const char *k = m->p + i, *v = k + strlen(k) + 1;
		if (strlen(k) == key_len && memcmp(k, key, key_len) == 0) found = v;
		i = (size_t)(v - m->p) + strlen(v) + 1;
	}
	if (!found) return -1;
	size_t n = strlen(found);
	memcpy(buf, found, n < cap ? n : cap);
	return (int32_t)n;
}

/* sluice_test_meta sets a metadata key for the following calls
 * ("http.method", "POST"); sluice_test_meta(NULL, NULL) clears them all. */
static __attribute__((unused)) void sluice_test_meta(const char *key, const char *value) {
	if (!key) {
		sluice_native_.meta.len = 0;
		return;
	}
	sluice_buf_put_(&sluice_native_.meta, key, strlen(key) + 1);
	sluice_buf_put_(&sluice_native_.meta, value ? value : "", strlen(value ? value : "") + 1);
}

uint32_t sluice_handle(uint8_t *in, uint32_t len);

/* sluice_test_call runs the handler on the input, as the host would. */
static __attribute__((unused)) struct sluice_result sluice_test_call(const void *in, size_t len) {
	sluice_buf_reset_(&sluice_native_.output);
	sluice_buf_reset_(&sluice_native_.error);
	sluice_buf_reset_(&sluice_native_.code);
	sluice_buf_reset_(&sluice_native_.headers);
	sluice_buf_reset_(&sluice_native_.logs);
	sluice_native_.status = 0;
	/* a copy, so that the handler sees its own buffer as in a guest */
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) abort();
	if (len) memcpy(copy, in, len);
	uint32_t rc = sluice_handle(copy, (uint32_t)len);
	free(copy);
	struct sluice_result r = {
	    .failed = rc != SLUICE_OK,
	    .output = sluice_native_.output.p,
	    .output_len = sluice_native_.output.len,
	    .error = sluice_native_.error.p,
	    .code = rc != SLUICE_OK ? sluice_native_.code.p : "",
	    .status = sluice_native_.status,
	    .headers = sluice_native_.headers.p,
	    .logs = sluice_native_.logs.p,
	};
	return r;
}
#endif /* SLUICE_NATIVE */

#endif
