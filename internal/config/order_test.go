package config

import (
	"strings"
	"testing"
)

func TestOrderingAndHash(t *testing.T) {
	t.Parallel()
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"
	c, err := Parse("t.toml", []byte(base), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Producers[0]; p.Ordering != "strict" || p.Hash != "java" {
		t.Errorf("defaults: ordering %q hash %q", p.Ordering, p.Hash)
	}
	c, err = Parse("t.toml", []byte(base+"ordering = \"relaxed\"\nhash = \"fnv\"\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Producers[0]; p.Ordering != "relaxed" || p.Hash != "fnv" {
		t.Errorf("set: ordering %q hash %q", p.Ordering, p.Hash)
	}
	_, err = Parse("t.toml", []byte(base+"ordering = \"loose\"\n"), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "t.toml:4") || !strings.Contains(err.Error(), "ordering") {
		t.Errorf("bad ordering: %v", err)
	}
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"
	c, err := Parse("t.toml", []byte(base+"namespace = \"ns1\"\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Producers[0].Namespace != "ns1" {
		t.Errorf("namespace %q", c.Producers[0].Namespace)
	}
	if _, err := Parse("t.toml", []byte(base+"namespace = \"a%b\"\n"), t.TempDir()); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("bad namespace: %v", err)
	}
}

func TestMaxDelayLevelKey(t *testing.T) {
	t.Parallel()
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\n"
	c, err := Parse("t.toml", []byte(base+"max_delay_level = 24\n"), t.TempDir())
	if err != nil || c.Producers[0].MaxDelayLevel != 24 {
		t.Fatalf("max_delay_level: %v %+v", err, c)
	}
	if _, err := Parse("t.toml", []byte(base+"max_delay_level = 0\n"), t.TempDir()); err == nil {
		t.Error("max_delay_level = 0 accepted")
	}
}
