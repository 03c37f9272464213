//go:build tools

// Package tools pins the Dagger code generator used by hack/dagger/check.sh.
package tools

import (
	_ "dagger.io/dagger"
	_ "github.com/dagger/dagger/cmd/codegen"
)
