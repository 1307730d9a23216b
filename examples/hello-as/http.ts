// http-as: a sluice function in AssemblyScript behind an HTTP trigger.
//
//   sluice fn deploy http-as build/wasm/http-as.wasm
//   sluice trigger create hi --fn http-as --http-path /hi --method post
//   curl -d Ada localhost:8080/fn/hi           # hello, Ada

import { handleHTTP, log, bytes, concat, Request, Response } from "sluice-sdk";
export * from "sluice-sdk/exports";

const HELLO = bytes("hello, ");

handleHTTP((req: Request): Response => {
  if (req.body.length == 0) return Response.text(400, "empty input");
  log.info("greeting " + req.body.length.toString() + " bytes");
  const resp = new Response(200, concat(HELLO, req.body)).header("Content-Type", "text/plain; charset=utf-8");
  const lang = req.header("Accept-Language");
  if (lang != null) resp.header("Content-Language", lang);
  return resp.header("X-Method", req.method);
});
