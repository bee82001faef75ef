package remoting

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // RocketMQ's ACL signature is HMAC-SHA1 by protocol
	"encoding/base64"
	"fmt"
	"log/slog"
	"slices"
)

// ACL ext field names (spec §10.1).
const (
	extAccessKey     = "AccessKey"
	extSecurityToken = "SecurityToken"
	extSignature     = "Signature"
)

// Credentials sign every request for RocketMQ's ACL (AclClientRPCHook, spec §10.1): ACL
// 1.0 (plain_acl.yml) and 5.x authentication (ACL 2.0) over remoting both check the same
// signature. The SecretKey never leaves the process and never appears in the output of
// fmt, slog or encoding of a Credentials value.
type Credentials struct {
	// AccessKey is sent as the AccessKey ext field.
	AccessKey string
	// SecretKey is the HMAC-SHA1 key; never sent.
	SecretKey string
	// SecurityToken, when set, is sent as SecurityToken and signed like every field.
	SecurityToken string
}

// String shows the access key only.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AccessKey: %q, SecretKey: <redacted>, SecurityToken: %s}", c.AccessKey, redacted(c.SecurityToken))
}

// GoString is String, so %#v does not print the secret either.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps the secret out of structured logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key", c.AccessKey), slog.String("secret_key", "<redacted>"))
}

// MarshalText keeps the secret out of JSON and TOML encodings.
func (c Credentials) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "<redacted>"
}

// sign returns a copy of req whose ext fields carry AccessKey, SecurityToken (when set)
// and Signature: Base64(HMAC-SHA1(SecretKey, the values of every other ext field in
// key order, then the body)). req itself is not modified, so a caller may reuse it; every
// resend is signed afresh.
func (c *Credentials) sign(req *Command) *Command {
	ext := make(map[string]string, len(req.ExtFields)+len(req.Fields)+3)
	for k, v := range req.ExtFields {
		if k != extSignature {
			ext[k] = v
		}
	}
	for _, f := range req.Fields {
		if f.Key != extSignature {
			ext[f.Key] = f.Value
		}
	}
	ext[extAccessKey] = c.AccessKey
	if c.SecurityToken != "" {
		ext[extSecurityToken] = c.SecurityToken
	}
	ext[extSignature] = Signature(c.SecretKey, ext, req.Body)
	out := *req
	out.ExtFields, out.Fields = ext, nil
	return &out
}

// Signature computes the ACL signature of a request's ext fields (Signature excluded)
// and body with secretKey, as the Java client's AclUtils.combineRequestContent and
// AclSigner.calSignature do: values concatenated in byte order of their keys (Java's
// String order for ASCII names), no separators, then the body; HMAC-SHA1; standard
// Base64 with padding.
func Signature(secretKey string, ext map[string]string, body []byte) string {
	keys := make([]string, 0, len(ext))
	for k := range ext {
		if k != extSignature {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	mac := hmac.New(sha1.New, []byte(secretKey))
	for _, k := range keys {
		mac.Write([]byte(ext[k]))
	}
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
