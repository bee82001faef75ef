package strategywire

import "errors"

// Errors that cross the process. A Go error cannot cross as a value: the plugin side
// turns it into a code (CodeOf), the host side back into an error wrapping one of these
// sentinels with the plugin's message (ErrOf), so callers classify it with errors.Is.
var (
	// ErrSelectFailed: the plugin's Select returned an error.
	ErrSelectFailed = errors.New("strategywire: plugin select failed")
	// ErrSelectPanic: the plugin's Select panicked (the plugin recovered and reported it).
	ErrSelectPanic = errors.New("strategywire: plugin select panicked")
	// ErrRouteUnknown: the plugin no longer held the queue list a selection referred to;
	// the host sends it again with the next selection for that topic.
	ErrRouteUnknown = errors.New("strategywire: plugin does not hold the route version")
	// ErrDecisionTimeout: no answer within the decision timeout.
	ErrDecisionTimeout = errors.New("strategywire: plugin decision timed out")
	// ErrInvalidSettings: the strategy's constructor rejected its settings. Package sdk
	// exports it as sdk.ErrInvalidSettings, the sentinel plugin authors wrap.
	ErrInvalidSettings = errors.New("sdk: invalid strategy settings")
	// ErrUnsupportedVersion: host and plugin share no strategy protocol version.
	ErrUnsupportedVersion = errors.New("strategywire: unsupported strategy protocol version")
	// ErrRemote: the plugin reported a failure this build does not classify.
	ErrRemote = errors.New("strategywire: plugin error")
)

// ErrorsOf returns every error of type T in err's tree (depth first, through Unwrap()
// error and Unwrap() []error), without looking inside the ones it returns: each
// *sdk.SettingError of a joined constructor error, for example.
func ErrorsOf[T error](err error) []T {
	var out []T
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if t, ok := e.(T); ok {
			out = append(out, t)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}
