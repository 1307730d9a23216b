/*
 * http-c: a C reactor that speaks HTTP (sluice ABI 1.1). Behind an HTTP
 * trigger on /items/{id} (or on a prefix route, /files/ and a star):
 *
 *   body "bad..."  400, Content-Type: application/json, {"error":"bad input"}
 *   any other      201, Location: /items/ID (or /files/REST),
 *                  Set-Cookie: a=1 and b=2, Content-Type: text/plain,
 *                  the body being the request's Authorization, Content-Type
 *                  and X-Multi headers joined with "|"
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -I guests/c -o http-c.wasm http.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static char out[8192];

static int handle(const uint8_t *in, size_t len) {
	if (len >= 3 && memcmp(in, "bad", 3) == 0) {
		sluice_http_status(400);
		sluice_header("Content-Type", "application/json");
		sluice_output_str("{\"error\":\"bad input\"}");
		return SLUICE_OK;
	}
	char id[256], loc[300];
	if (sluice_meta("http.param.id", id, sizeof id) >= 0) {
		snprintf(loc, sizeof loc, "/items/%s", id);
	} else {
		sluice_meta("http.path.rest", id, sizeof id);
		snprintf(loc, sizeof loc, "/files/%s", id);
	}
	char auth[1024], type[256], multi[256];
	sluice_request_header("Authorization", auth, sizeof auth);
	sluice_request_header("Content-Type", type, sizeof type);
	sluice_request_header("X-Multi", multi, sizeof multi);
	int n = snprintf(out, sizeof out, "%s|%s|%s", auth, type, multi);
	sluice_http_status(201);
	sluice_header("Location", loc);
	sluice_header("Set-Cookie", "a=1");
	sluice_header("Set-Cookie", "b=2");
	sluice_header("Content-Type", "text/plain");
	sluice_output(out, (uint32_t)(n < (int)sizeof out ? n : (int)sizeof out - 1));
	return SLUICE_OK;
}

SLUICE_HANDLER(handle)
