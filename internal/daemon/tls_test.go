package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/internal/config"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "producerd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSListeners serves ingress and admin over TLS: gRPC send and admin status with
// a verifying client, HTTP POST over HTTPS.
func TestTLSListeners(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	text := configText(c.NameServerAddr(), "TestTLSListeners", "rr", 100)
	text = strings.Replace(text, "[ingress]\n", "[ingress]\ntls_cert = \"server.crt\"\ntls_key = \"server.key\"\n", 1)
	text = strings.Replace(text, "[admin]\n", "[admin]\ntls_cert = \""+certFile+"\"\ntls_key = \""+keyFile+"\"\n", 1)
	path := filepath.Join(dir, "producer.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Logger: hclog.NewNullLogger(), PluginCommand: []string{os.Args[0], "plugin"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	g, h, a := d.Addrs()
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	dial := func(addr string) *grpc.ClientConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	if _, err := producerdpb.NewIngressClient(dial(g)).Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: testTopic, Body: []byte("tls")}}); err != nil {
		t.Fatalf("send over TLS: %v", err)
	}
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken)
	if _, err := producerdpb.NewAdminClient(dial(a)).Status(actx, &producerdpb.StatusRequest{}); err != nil {
		t.Fatalf("admin status over TLS: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := hc.Post("https://"+h+"/v1/messages", "application/json", strings.NewReader(`{"topic":"TopicTest","body":"tls"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS POST: %d", resp.StatusCode)
	}
	// A plaintext client is refused.
	if resp, err := http.Post("http://"+h+"/v1/messages", "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plaintext POST accepted on a TLS listener")
		}
	}
}
