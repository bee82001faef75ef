package core_test

import (
	"context"
	"errors"
	"testing"

	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/devbroker"
	"github.com/producerd/producerd/remoting"
)

// TestACLDenialNotRetried: with credentials, NO_PERMISSION (the ACL's denial) ends the
// send after one attempt; without, it is retried as in Java.
func TestACLDenialNotRetried(t *testing.T) {
	t.Parallel()
	dev := startDev(t, devbroker.Config{})
	for _, b := range dev.Brokers() {
		setFault(t, b, devbroker.Fault{Errors: []devbroker.InjectedError{{Code: remoting.NoPermission, Rate: 1}}})
	}
	for _, tc := range []struct {
		name     string
		creds    *remoting.Credentials
		attempts int
	}{{"signed", &remoting.Credentials{AccessKey: "ak", SecretKey: "sk"}, 1}, {"unsigned", nil, 3}} {
		p := devProducer(t, dev, func(c *core.ProducerConfig) {
			c.Group += "_" + tc.name
			c.Client.InstanceName = tc.name
			c.Client.Remoting.Credentials = tc.creds
		})
		_, err := p.Send(context.Background(), &core.Message{Topic: "T", Body: []byte("x")})
		var se *core.SendError
		var re *remoting.Error
		if !errors.As(err, &se) || !errors.As(err, &re) || re.Code != remoting.NoPermission || se.Attempts != tc.attempts {
			t.Errorf("%s: %v, want NO_PERMISSION after %d attempt(s)", tc.name, err, tc.attempts)
		}
	}
}
