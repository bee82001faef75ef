package config

import (
	"net"
	"strconv"
)

// bindsOverlap reports whether listeners at a and b (host:port, valid, same port
// number) could not both bind. A wildcard host ("", 0.0.0.0, ::) binds every address of
// both families (Go listens dual-stack), so it overlaps any other host; "localhost" is
// 127.0.0.1, the address Go's listener picks for it; other IP literals overlap when
// they are the same address, and other host names when they are spelled alike.
func bindsOverlap(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return false
	}
	na, errA := strconv.Atoi(pa)
	nb, errB := strconv.Atoi(pb)
	if errA != nil || errB != nil || na != nb || na == 0 {
		return false
	}
	ha, hb = bindHost(ha), bindHost(hb)
	return ha == "*" || hb == "*" || ha == hb
}

// bindHost is the address a listener's host binds: "*" for every address, an IP in
// canonical form, or the host name as written.
func bindHost(h string) string {
	if h == "localhost" {
		return "127.0.0.1"
	}
	if h == "" {
		return "*"
	}
	ip := net.ParseIP(h)
	switch {
	case ip == nil:
		return h
	case ip.IsUnspecified():
		return "*"
	default:
		return ip.String()
	}
}

// portInRange reports whether the port of a NameServer address is a number in
// 1..65535.
func portInRange(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}
