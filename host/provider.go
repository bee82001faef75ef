package host

import "github.com/producerd/producerd/plugins/sdk"

// Provider hands out the strategy generation that one send uses for its whole retry
// loop. Host.Strategy implements it; core calls Acquire once per send and release when
// the send ends, so that a swap can wait for the old generation to drain.
type Provider interface {
	Acquire() (s sdk.Selector, release func())
}

// descriptorOf returns s's Descriptor, or the zero Descriptor when s does not implement
// sdk.Describer.
func descriptorOf(s sdk.Selector) sdk.Descriptor {
	if d, ok := s.(sdk.Describer); ok {
		return d.Describe()
	}
	return sdk.Descriptor{}
}
