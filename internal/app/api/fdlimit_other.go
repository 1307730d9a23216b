//go:build !unix

package api

// fileLimit is 0 where the descriptor limit cannot be read.
func fileLimit() int { return 0 }
