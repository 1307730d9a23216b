package abi

import "errors"

// Errors returned by Detect. Each is wrapped with a message that says what
// to change in the module.
var (
	// ErrNoABI means the module implements neither a WASI command nor the
	// sluice reactor ABI, or not the one that was asked for.
	ErrNoABI = errors.New("module implements no sluice ABI")
	// ErrImport means the module imports something the host does not provide.
	ErrImport = errors.New("unsupported import")
	// ErrSignature means an ABI export or import has the wrong type.
	ErrSignature = errors.New("wrong signature")
)
