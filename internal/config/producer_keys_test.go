package config

import (
	"strings"
	"testing"
	"time"
)

// Issue 11: attempt_timeout can be turned off; retries and async_retries are independent
// and 0 means 0; the route sanity bounds are read and range-checked.
func TestProducerSendKeys(t *testing.T) {
	base := "[client]\nname_servers = [\"127.0.0.1:9876\"]\n\n[[producer]]\n"
	for _, tc := range []struct {
		src   string
		check func(p Producer) bool
	}{
		{`attempt_timeout = "off"`, func(p Producer) bool { return p.AttemptTimeout < 0 }},
		{`attempt_timeout = "750ms"`, func(p Producer) bool { return p.AttemptTimeout == 750*time.Millisecond }},
		{`async_retries = 0`, func(p Producer) bool { return p.NoAsyncRetries && !p.NoRetries && p.AsyncRetries == 0 }},
		{`retries = 0`, func(p Producer) bool { return p.NoRetries && !p.NoAsyncRetries }},
		{"retries = 1\nasync_retries = 3", func(p Producer) bool {
			return p.Retries == 1 && p.AsyncRetries == 3 && !p.NoRetries && !p.NoAsyncRetries
		}},
		{"max_queues_per_broker = 64\nmax_brokers_per_route = 8\nmax_queues_per_route = 100", func(p Producer) bool {
			return p.MaxQueuesPerBroker == 64 && p.MaxBrokersPerRoute == 8 && p.MaxQueuesPerRoute == 100
		}},
		{`compress_threshold = 0`, func(p Producer) bool { return p.CompressThreshold == 1 }}, // every (non-empty) body
		{`compress_threshold = "8KiB"`, func(p Producer) bool { return p.CompressThreshold == 8<<10 }},
		{``, func(p Producer) bool {
			return p.AttemptTimeout == 0 && !p.NoRetries && !p.NoAsyncRetries && p.MaxQueuesPerBroker == 0 && p.CompressThreshold == 0
		}},
	} {
		c, err := Parse("t.toml", []byte(base+tc.src+"\n"), t.TempDir())
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if !tc.check(c.Producers[0]) {
			t.Errorf("%q: producer %+v", tc.src, c.Producers[0])
		}
	}
	for src, want := range map[string]string{
		`attempt_timeout = "on"`:     "invalid duration",
		`attempt_timeout = "0s"`:     "below the minimum",
		`max_queues_per_broker = 0`:  "max_queues_per_broker",
		`max_brokers_per_route = -1`: "max_brokers_per_route",
		`max_queues_per_route = 0`:   "max_queues_per_route",
		`attempt_timeout = "-1s"`:    "below the minimum",
	} {
		_, err := Parse("t.toml", []byte(base+src+"\n"), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want an error with %q", src, err, want)
		}
	}
}
