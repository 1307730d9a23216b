{{- if .HTTP -}}
// {{.Name}}: a sluice function behind an HTTP trigger. It answers
// "hello, " and the request's body, or 400 to an empty body.

import { handleHTTP, log, bytes, concat, Request, Response } from "sluice-sdk";
export * from "sluice-sdk/exports"; // the ABI's exports: keep this line

const HELLO = bytes("hello, ");

handleHTTP((req: Request): Response => {
  if (req.body.length == 0) return Response.text(400, "empty input");
  log.info("greeting " + req.body.length.toString() + " bytes");
  return new Response(200, concat(HELLO, req.body)).header("Content-Type", "text/plain; charset=utf-8");
});
{{- else -}}
// {{.Name}}: a sluice function. It answers "hello, " and its input, and
// fails on an empty input.

import { handle, fail, log, bytes, concat } from "sluice-sdk";
export * from "sluice-sdk/exports"; // the ABI's exports: keep this line

const HELLO = bytes("hello, ");

handle((input: Uint8Array): Uint8Array => {
  if (input.length == 0) return fail("empty input", "empty_input");
  log.info("greeting " + input.length.toString() + " bytes");
  return concat(HELLO, input);
});
{{- end}}
