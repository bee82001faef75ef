package daemon

import (
	"errors"
	"strings"
	"testing"

	"github.com/producerd/producerd/core"
)

// TestDecodeHTTPRequestRefusesIgnoredAndAmbiguous: review findings 8 and 14. A field
// that encoding/json would take silently in another case, a key given twice (the last
// used to win), and a message field at the top level of a batch (it used to apply to
// no message, with 200) are refused with an error naming the field.
func TestDecodeHTTPRequestRefusesIgnoredAndAmbiguous(t *testing.T) {
	t.Parallel()
	batch := func(top string) string { return `{"topic":"T",` + top + `"messages":[{"body":"a"}]}` }
	for _, tc := range []struct{ name, body, want string }{
		{"case-mismatched topic", `{"topic":"TopicTest","Topic":"x","body":"b"}`, `"Topic": field names are case-sensitive, did you mean "topic"?`},
		{"upper-case only", `{"TOPIC":"x","body":"b"}`, `"TOPIC"`},
		{"case in a batch message", `{"topic":"T","messages":[{"Body":"a"}]}`, `"messages[0].Body"`},
		{"duplicate topic", `{"topic":"a","topic":"b","body":"x"}`, `field "topic" is given twice`},
		{"duplicate through an escape", `{"topic":"a","top\u0069c":"b","body":"x"}`, `field "topic" is given twice`},
		{"case through an escape", `{"\u0054opic":"b","body":"x"}`, `"Topic": field names are case-sensitive`},
		{"duplicate property", `{"topic":"a","body":"x","properties":{"k":"1","k":"2"}}`, `"properties.k" is given twice`},
		{"duplicate in a batch message", `{"topic":"T","messages":[{"body":"a","tags":"x","tags":"y"}]}`, `"messages[0].tags" is given twice`},
		{"batch sharding_key", batch(`"sharding_key":"k1",`), `"sharding_key" at the top level of a batch`},
		{"batch delay_level", batch(`"delay_level":3,`), `"delay_level"`},
		{"batch deliver_at", batch(`"deliver_at":"2030-01-01T00:00:00Z",`), `"deliver_at"`},
		{"batch delay", batch(`"delay":"5s",`), `"delay"`},
		{"batch tags", batch(`"tags":"t",`), `"tags"`},
		{"batch keys", batch(`"keys":["k"],`), `"keys"`},
		{"batch properties", batch(`"properties":{"a":"b"},`), `"properties"`},
		{"batch zero delay_level", batch(`"delay_level":0,`), `"delay_level"`},
		{"batch null tags", batch(`"tags":null,`), `"tags"`},
		{"batch body", batch(`"body":"x",`), `bodies in messages[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeHTTPRequest([]byte(tc.body))
			if !errors.Is(err, core.ErrInvalidMessage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode(%s) = %v, want ErrInvalidMessage with %q", tc.body, err, tc.want)
			}
		})
	}
	for _, body := range []string{
		`{"topic":"T","producer_group":"g","messages":[{"body":"a","tags":"x","sharding_key":"k"}]}`,
		`{"topic":"T","body":"x","properties":{"Topic":"p","topic":"q"}}`, // map keys are exact
		`{"topic":"T","body":"x","keys":["a","a"]}`,
		`{"topic":"T","body":"a \"quoted\" \\ body, with: {braces} [and] \u00e9","delay_level":0,"keys":[]}`,
		` { "topic" : "T" , "messages" : [ { "body" : "a" } , { "body_base64" : "Yg==" } ] } `,
		`null`,
	} {
		if _, err := decodeHTTPRequest([]byte(body)); err != nil {
			t.Errorf("decode(%s) = %v, want ok", body, err)
		}
	}
}
