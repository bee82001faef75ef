package daemon

import (
	"github.com/producerd/producerd/core"
)

// namespaceStripper returns the function that shows a client's topic and group names
// without the namespace of the groups sharing that client (a client shared by groups of
// different namespaces strips each of them).
func (d *Daemon) namespaceStripper(c *core.Client) func(string) string {
	var nss []string
	for _, g := range d.groupList() {
		if g.prod.Client() == c && g.cfg.Namespace != "" {
			nss = append(nss, g.cfg.Namespace)
		}
	}
	return func(name string) string {
		for _, ns := range nss {
			if s := core.WithoutNamespace(ns, name); s != name {
				return s
			}
		}
		return name
	}
}

func stripAll(strip func(string) string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strip(n)
	}
	return out
}
