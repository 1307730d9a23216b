/*
 * wordcount: a C reactor that counts the bytes, words and lines of its input
 * and returns them as JSON: {"bytes":12,"words":2,"lines":1}.
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -I guests/c -o wordcount.wasm wordcount.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static int wordcount(const uint8_t *in, size_t len) {
	uint32_t words = 0, lines = 0;
	int in_word = 0;
	for (uint32_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		if (c == '\n') lines++;
		int space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
		if (space) {
			in_word = 0;
		} else if (!in_word) {
			in_word = 1;
			words++;
		}
	}
	if (len > 0 && in[len - 1] != '\n') lines++;
	char out[96];
	int n = snprintf(out, sizeof out, "{\"bytes\":%zu,\"words\":%u,\"lines\":%u}", len, words, lines);
	sluice_output(out, (uint32_t)n);
	return SLUICE_OK;
}

SLUICE_HANDLER(wordcount)
