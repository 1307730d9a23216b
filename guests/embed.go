// Package guests holds the guest SDKs' sources, for `sluice new` to copy
// into the projects it writes: FS has each SDK under its language's
// folder (c/sluice.h, go/*.go, ...), as in this repository.
package guests

import "embed"

// FS is the SDKs' sources: only what a guest compiles, no tests. Each
// language's files are listed by explicit patterns, so that a test file
// or a build product next to them is never copied into a project.
//
//go:embed c/sluice.h
//go:embed go/doc.go go/guest_other.go go/guest_wasip1.go
//go:embed go/sluicehttp/sluicehttp.go go/sluicehttp/native.go
//go:embed rust/Cargo.toml rust/src/*.rs
//go:embed assemblyscript/package.json assemblyscript/asconfig.json assemblyscript/abi.ts assemblyscript/index.ts assemblyscript/exports.ts assemblyscript/wasi.ts assemblyscript/harness.js assemblyscript/README.md
var FS embed.FS
