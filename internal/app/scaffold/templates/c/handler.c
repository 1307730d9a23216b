/*
 * {{.Name}}: a sluice function in C{{if .HTTP}}, behind an HTTP trigger{{end}}.
{{- if .HTTP}}
 * It answers a request with "hello, " and the request's body, or 400 to
 * an empty body.
{{- else}}
 * It answers its input with "hello, " and the input, and fails on an
 * empty one.
{{- end}}
 *
 *   make                                   builds {{.Name}}.wasm
 *   sluice fn deploy {{.Name}} {{.Name}}.wasm
 */
#include "sluice.h"

static const char greeting[] = "hello, ";

/* handle handles one call: the input is only valid during it. */
static int handle(const uint8_t *in, size_t len) {
{{- if .HTTP}}
	sluice_header("Content-Type", "text/plain; charset=utf-8");
	if (len == 0) {
		sluice_http_status(400);
		sluice_output_str("empty input");
		return SLUICE_OK;
	}
{{- else}}
	if (len == 0) return sluice_fail_code("empty_input", "empty input");
{{- end}}
	sluice_info("greeting %zu bytes", len);
	size_t n = sizeof greeting - 1;
	uint8_t *out = malloc(n + len);
	if (!out) return sluice_fail_str("out of memory");
	memcpy(out, greeting, n);
	memcpy(out + n, in, len);
	sluice_output(out, (uint32_t)(n + len)); /* the host copies it at once */
	free(out);
	return SLUICE_OK;
}

SLUICE_HANDLER(handle)
