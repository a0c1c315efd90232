//go:build tools

// Package tools pins the helm command the test environment builds (helm lint/template in the install tests).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
