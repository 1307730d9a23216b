// Package extismbench measures sluice against Extism's own Go host SDK
// (github.com/extism/go-sdk) on the same Extism plugins, in one process
// and one run: a fresh instance and its first call, and a call on a kept
// instance. It is a module of its own so that neither the daemon's module
// nor its go.mod gains the SDK; it has no code but its tests and
// benchmarks (extism_test.go, and bench/README.md for the method).
package extismbench
