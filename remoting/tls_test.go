package remoting

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCA creates a self-signed CA and a server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) (pool *x509.CertPool, server tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "producerd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "broker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	pool, cert := testCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveListener(t, ln, func(fc *fakeConn) {
		// A client that rejects the certificate aborts the handshake; the read then fails.
		echo(fc)
	})

	t.Run("trusted CA", func(t *testing.T) {
		c := newClient(t, Config{TLS: &tls.Config{RootCAs: pool}})
		resp, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, []byte("over tls")))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body) != "over tls" {
			t.Errorf("body %q", resp.Body)
		}
		if conns := c.Conns(); len(conns) != 1 || !conns[0].TLS {
			t.Errorf("Conns = %+v, want one TLS connection", conns)
		}
	})
	t.Run("unknown CA is rejected by default", func(t *testing.T) {
		c := newClient(t, Config{TLS: &tls.Config{}})
		_, err := c.InvokeSync(ctxTimeout(t, 10*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil))
		var verr *tls.CertificateVerificationError
		if !errors.Is(err, ErrConnect) || !errors.As(err, &verr) {
			t.Fatalf("got %v, want ErrConnect with a certificate verification error", err)
		}
	})
	t.Run("plain client against TLS server fails", func(t *testing.T) {
		c := newClient(t, Config{})
		_, err := c.InvokeSync(ctxTimeout(t, 2*time.Second), srv.addr, NewRequest(HeartBeat, nil, nil))
		if err == nil {
			t.Fatal("plain request to a TLS server succeeded")
		}
	})
}
