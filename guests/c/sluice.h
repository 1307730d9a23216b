/*
 * sluice.h: the sluice guest ABI, version 1, for C reactors
 * (clang --target=wasm32-wasi -mexec-model=reactor). See abi/README.md.
 *
 * A reactor defines two functions with SLUICE_EXPORT:
 *
 *   SLUICE_EXPORT("sluice_alloc") void *sluice_alloc(uint32_t size);
 *   SLUICE_EXPORT("sluice_handle") uint32_t sluice_handle(uint8_t *in, uint32_t len);
 *
 * and reports its result with sluice_output or sluice_fail.
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

#endif
