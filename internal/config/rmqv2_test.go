package config

import (
	"strings"
	"testing"
)

// TestRocketMQGRPCIngress: the apache.rocketmq.v2 listener is off by default, is set with
// its group, and its address is checked.
func TestRocketMQGRPCIngress(t *testing.T) {
	t.Parallel()
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\ngroup = \"g\"\n"
	c, err := Parse("t.toml", []byte(base), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Ingress.RocketMQGRPC != "" || c.Ingress.RocketMQGRPCGroup != "" {
		t.Errorf("default ingress %+v, want the v2 listener off", c.Ingress)
	}
	on := base + "[ingress]\nhttp = \"\"\nrocketmq_grpc_listen = \"127.0.0.1:8081\"\nrocketmq_grpc_group = \"g\"\n"
	c, err = Parse("t.toml", []byte(on), t.TempDir())
	if err != nil {
		t.Fatalf("the v2 listener: %v", err)
	}
	if c.Ingress.RocketMQGRPC != "127.0.0.1:8081" || c.Ingress.RocketMQGRPCGroup != "g" {
		t.Errorf("ingress %+v", c.Ingress)
	}
	for _, tt := range []struct{ ingress, want string }{
		{"rocketmq_grpc_listen = \"8081\"", "rocketmq_grpc_listen"},
		{"rocketmq_grpc_listen = \"0.0.0.0:8081\"", "not a loopback address"},
		{"rocketmq_grpc_listen = \"127.0.0.1:7380\"", "also the address of"},
	} {
		_, err := Parse("t.toml", []byte(base+"[ingress]\n"+tt.ingress+"\n"), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one naming %q", tt.ingress, err, tt.want)
		}
	}
}

// TestRocketMQGRPCAuth: [ingress.rocketmq_grpc_auth] holds the one credential the v2
// listener checks; its problems are reported without the secret.
func TestRocketMQGRPCAuth(t *testing.T) {
	t.Parallel()
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n[[producer]]\ngroup = \"g\"\n[ingress]\nrocketmq_grpc_listen = \"127.0.0.1:8081\"\n"
	c, err := Parse("t.toml", []byte(base+"[ingress.rocketmq_grpc_auth]\naccess_key = \"ak\"\nsecret_key = \"s3cr3t\"\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Ingress.RocketMQGRPCAuth; a == nil || a.AccessKey != "ak" || a.SecretKey != "s3cr3t" {
		t.Fatalf("auth %v", a)
	}
	for _, tt := range []struct{ table, want string }{
		{"access_key = \"ak\"\n", "needs one of secret_key"},
		{"secret_key = \"s3cr3t\"\n", "access_key"},
		{"access_key = \"ak\"\nsecret_key = \"s3cr3t\"\nsecurity_token = \"tok3n\"\n", "not checked"},
		{"access_key = \"ak\"\nsecret_key = \"s3cr3t\"\nsecret = 1\n", "secret"},
	} {
		_, err := Parse("t.toml", []byte(base+"[ingress.rocketmq_grpc_auth]\n"+tt.table), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one naming %q", tt.table, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "tok3n")) {
			t.Errorf("%q: error %v shows a secret", tt.table, err)
		}
	}
}
