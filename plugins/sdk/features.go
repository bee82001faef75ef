package sdk

// Features lists the optional interfaces of the contract a strategy implements. A
// plugin declares them in Describe, since a type assertion cannot cross a process.
type Features struct {
	Observer       bool
	HealthReporter bool
	HealthSeeder   bool
	// Configurable: the strategy takes settings (every Constructor-built one does).
	Configurable bool
	Describer    bool
}

// FeatureDeclarer is implemented by wrapper selectors that have the methods of more
// optional interfaces than they really support (for example one that delegates to a
// strategy built later, on Configure). FeaturesOf, and so Serve, then use the
// declaration instead of type assertions.
type FeatureDeclarer interface {
	Features() Features
}

// FeaturesOf reports which optional interfaces s implements (or declares, see
// FeatureDeclarer).
func FeaturesOf(s Selector) Features {
	if d, ok := s.(FeatureDeclarer); ok {
		return d.Features()
	}
	_, obs := s.(Observer)
	_, hr := s.(HealthReporter)
	_, hs := s.(HealthSeeder)
	_, d := s.(Describer)
	return Features{Observer: obs, HealthReporter: hr, HealthSeeder: hs, Describer: d}
}

// DescriptorOf returns s's Descriptor, or the zero Descriptor when s does not implement
// Describer.
func DescriptorOf(s Selector) Descriptor {
	if d, ok := s.(Describer); ok {
		return d.Describe()
	}
	return Descriptor{}
}
