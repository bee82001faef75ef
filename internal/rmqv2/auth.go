package rmqv2

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the SDKs' signature algorithm (MQv2-HMAC-SHA1)
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc/metadata"

	pb "github.com/producerd/producerd/api/rmqv2"
)

// signatureAlgorithm is the only scheme the SDKs sign with (spec §2).
const signatureAlgorithm = "MQv2-HMAC-SHA1"

// checkCall checks, in the Proxy's order, what every call must carry: the SDK's signature
// when the listener has credentials (UNAUTHORIZED, 40100, as the Proxy answers every
// authentication failure), the x-mq-client-id header (CLIENT_ID_REQUIRED; also when
// longer than maxClientIDLength), and a
// namespace this listener serves, in the x-mq-namespace header and in res (FORBIDDEN).
func (s *Service) checkCall(ctx context.Context, res *pb.Resource) *pb.Status {
	if s.opts.Auth != nil {
		if why := s.authenticate(ctx); why != "" {
			return newStatus(pb.Code_UNAUTHORIZED, "authentication failed: %s", why)
		}
	}
	switch id := clientID(ctx); {
	case id == "":
		return errNoClientID()
	case len(id) > maxClientIDLength:
		return newStatus(pb.Code_CLIENT_ID_REQUIRED, "the x-mq-client-id header is %d bytes; the limit is %d", len(id), maxClientIDLength)
	}
	if st := s.checkNamespace(header(ctx, "x-mq-namespace")); st != nil {
		return st
	}
	return s.checkNamespace(res.GetResourceNamespace())
}

// checkNamespace accepts the namespace the listener serves (its producer group's) and ""
// (SDKs before 5.0.6 send none; the group's namespace applies to them too).
func (s *Service) checkNamespace(ns string) *pb.Status {
	if ns == "" || ns == s.opts.Namespace {
		return nil
	}
	if s.opts.Namespace == "" {
		return newStatus(pb.Code_FORBIDDEN, "namespace %q is not served here: this producerd endpoint serves no namespace", ns)
	}
	return newStatus(pb.Code_FORBIDDEN, "namespace %q is not served here: this producerd endpoint serves namespace %q", ns, s.opts.Namespace)
}

// authenticate checks the authorization header as the Proxy does: "MQv2-HMAC-SHA1
// Credential=AK[/...], SignedHeaders=x-mq-date-time, Signature=HEX", where HEX (either
// case) is HMAC-SHA1(secret, x-mq-date-time). It returns why a call fails, never naming
// the secret or the signature; "" when it passes.
func (s *Service) authenticate(ctx context.Context) string {
	h := header(ctx, "authorization")
	if h == "" {
		return "the call carries no authorization header; set the SDK's credentials"
	}
	algo, rest, _ := strings.Cut(h, " ")
	if algo != signatureAlgorithm {
		return "the authorization header is not " + signatureAlgorithm
	}
	fields := map[string]string{}
	for _, item := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(item), "=")
		fields[k] = v
	}
	ak, _, _ := strings.Cut(fields["Credential"], "/")
	sig, err := hex.DecodeString(fields["Signature"])
	if err != nil || len(sig) == 0 {
		return "the authorization header carries no hex signature"
	}
	date := header(ctx, "x-mq-date-time")
	if date == "" {
		return "the call carries no x-mq-date-time header to check the signature against"
	}
	mac := hmac.New(sha1.New, []byte(s.opts.Auth.SecretKey))
	mac.Write([]byte(date))
	akOK := subtle.ConstantTimeCompare([]byte(ak), []byte(s.opts.Auth.AccessKey)) == 1
	if !hmac.Equal(sig, mac.Sum(nil)) || !akOK {
		return "unknown access key or wrong signature"
	}
	return ""
}

// header returns the first value of an incoming metadata key (lowercase), "" when absent.
// metadata.FromIncomingContext would copy the whole map on every call.
func header(ctx context.Context, k string) string {
	if v := metadata.ValueFromIncomingContext(ctx, k); len(v) > 0 {
		return v[0]
	}
	return ""
}
