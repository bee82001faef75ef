//go:build !linux

package host

import "time"

// procCPU is not measured outside Linux: benchmarks report 0.
func procCPU(int) time.Duration { return 0 }
