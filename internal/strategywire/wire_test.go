package strategywire

import (
	"errors"
	"fmt"
	"testing"
)

type keyErr struct{ key string }

func (e *keyErr) Error() string { return e.key }

// TestErrorsOf: every matching error of a tree, through wrapping and joins.
func TestErrorsOf(t *testing.T) {
	a, b, c := &keyErr{"a"}, &keyErr{"b"}, &keyErr{"c"}
	err := fmt.Errorf("outer: %w", errors.Join(a, fmt.Errorf("mid: %w", errors.Join(b, errors.New("other"))), c))
	got := ErrorsOf[*keyErr](err)
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Fatalf("ErrorsOf = %v, want [a b c]", got)
	}
	if got := ErrorsOf[*keyErr](errors.New("none")); got != nil {
		t.Fatalf("ErrorsOf(no match) = %v", got)
	}
}
