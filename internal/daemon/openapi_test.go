package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIMatchesResponses: every operation of the served OpenAPI document is called
// on the running daemon, and each JSON answer (successes, errors, unknown paths and
// methods) validates against the schema the document gives for its status.
func TestOpenAPIMatchesResponses(t *testing.T) {
	c := startCluster(t)
	h := startText(t, c, httpConfig(c.NameServerAddr(), instanceName(t), ""))
	ing, adm := "http://"+h.httpAddr, "http://"+h.adminAddr
	auth := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}

	_, served := adminDo(t, "GET", ing+"/openapi.json", "", nil)
	var doc map[string]any
	if err := json.Unmarshal([]byte(served), &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if _, fromAdmin := adminDo(t, "GET", adm+"/openapi.json", "", nil); fromAdmin != served {
		t.Fatal("the admin listener serves a different document")
	}
	v := &validator{doc: doc}

	cases := []struct {
		base, method, path, body string
		op                       string // the document's path when path is not in it
		want                     int
	}{
		{ing, "POST", "/v1/messages", `{"topic":"TopicTest","body":"one"}`, "", 200},
		{ing, "POST", "/v1/messages", `{"topic":"TopicTest","messages":[{"body":"a"},{"body":"b"}]}`, "", 200},
		{ing, "POST", "/v1/messages", `{"topic":"TopicTest","body":"x","mode":"oneway"}`, "", 202},
		{ing, "POST", "/v1/messages", `{"topic":"TopicTest","body":"x","delay_level":19}`, "", 400},
		{ing, "POST", "/v1/messages", `{"producer_group":"nope","topic":"TopicTest","body":"x"}`, "", 400},
		{ing, "POST", "/v1/messages", `{"topic":"bad topic!","body":"x"}`, "", 400},
		{ing, "GET", "/v1/messages", ``, "", 405},
		{ing, "GET", "/v2/nothing", ``, "/v1/messages", 404},
		{ing, "GET", "/healthz", ``, "", 200},
		{ing, "GET", "/readyz", ``, "", 200},
		{ing, "GET", "/openapi.json", ``, "", 200},
		{adm, "GET", "/healthz", ``, "", 200},
		{adm, "GET", "/readyz", ``, "", 200},
		{adm, "GET", "/metrics", ``, "", 200},
		{adm, "GET", "/v1/admin/status", ``, "", 200},
		{adm, "GET", "/v1/admin/strategies", ``, "", 200},
		{adm, "POST", "/v1/admin/strategies/swap", `{"name":"roundrobin"}`, "", 200},
		{adm, "POST", "/v1/admin/strategies/swap", `{"name":"no-such-strategy"}`, "", 0},
		{adm, "POST", "/v1/admin/reload", `{}`, "", 200},
		{adm, "POST", "/v1/admin/topics", `{"topic":"OpenAPITopic"}`, "", 200},
		{adm, "POST", "/v1/admin/drain", `{}`, "", 200},
		{adm, "POST", "/v1/admin/resume", `{}`, "", 200},
		{adm, "DELETE", "/v1/admin/status", ``, "", 405},
		{adm, "GET", "/v1/admin/nothing", ``, "/v1/admin/status", 404},
	}
	called := map[string]bool{}
	for _, tc := range cases {
		name := fmt.Sprintf("%s %s%s %s", tc.method, tc.base, tc.path, tc.body)
		req, err := http.NewRequest(tc.method, tc.base+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, val := range auth {
			req.Header.Set(k, val)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.want != 0 && resp.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d %s, want %d", name, resp.StatusCode, b, tc.want)
			continue
		}
		if tc.want == 0 && resp.StatusCode < 400 {
			t.Errorf("%s: HTTP %d, want an error", name, resp.StatusCode)
		}
		opPath := tc.path
		if tc.op != "" {
			opPath = tc.op
		}
		method := strings.ToLower(tc.method)
		if resp.StatusCode == 405 {
			if resp.Header.Get("Allow") == "" {
				t.Errorf("%s: 405 without Allow", name)
			}
			method = "get"
			if tc.method == "GET" {
				method = "post"
			}
		}
		if tc.op != "" {
			method = "post"
			if _, ok := v.path(opPath, method); !ok {
				method = "get"
			}
		}
		op, ok := v.path(opPath, method)
		if !ok {
			t.Errorf("%s: no operation %s %s in the document", name, method, opPath)
			continue
		}
		if tc.op == "" && resp.StatusCode != 405 {
			called[method+" "+opPath] = true
		}
		schema, ctype := v.response(op, resp.StatusCode)
		if schema == nil {
			t.Errorf("%s: the document has no answer %d", name, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, ctype) {
			t.Errorf("%s: Content-Type %q, the document says %q", name, got, ctype)
		}
		if ctype != "application/json" {
			continue
		}
		var body any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("%s: not JSON: %v: %s", name, err, b)
			continue
		}
		if err := v.validate(schema, body, "$"); err != nil {
			t.Errorf("%s: %v\n%s", name, err, b)
		}
		if resp.StatusCode >= 400 {
			msg := body.(map[string]any)["error"].(map[string]any)["message"].(string)
			if strings.Contains(msg, "core: ") || strings.Contains(msg, "daemon: ") {
				t.Errorf("%s: a Go package prefix in the message %q", name, msg)
			}
		}
	}
	for p, item := range doc["paths"].(map[string]any) {
		for m := range item.(map[string]any) {
			if !called[m+" "+p] {
				t.Errorf("operation %s %s of the document not exercised", m, p)
			}
		}
	}
}

// validator checks JSON values against the subset of JSON Schema the document uses.
type validator struct{ doc map[string]any }

func (v *validator) path(p, method string) (map[string]any, bool) {
	item, ok := v.doc["paths"].(map[string]any)[p].(map[string]any)
	if !ok {
		return nil, false
	}
	op, ok := item[method].(map[string]any)
	return op, ok
}

func (v *validator) response(op map[string]any, status int) (schema any, ctype string) {
	rs := op["responses"].(map[string]any)
	r, ok := rs[fmt.Sprint(status)].(map[string]any)
	if !ok {
		if r, ok = rs["default"].(map[string]any); !ok {
			return nil, ""
		}
	}
	for ct, m := range r["content"].(map[string]any) {
		return m.(map[string]any)["schema"], ct
	}
	return nil, ""
}

func (v *validator) validate(schema, val any, at string) error {
	s := schema.(map[string]any)
	if r, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(r, "#/components/schemas/")
		def, ok := v.doc["components"].(map[string]any)["schemas"].(map[string]any)[name]
		if !ok {
			return fmt.Errorf("%s: unresolved $ref %s", at, r)
		}
		return v.validate(def, val, at)
	}
	if alts, ok := s["oneOf"].([]any); ok {
		var errs []string
		for _, a := range alts {
			err := v.validate(a, val, at)
			if err == nil {
				return nil
			}
			errs = append(errs, err.Error())
		}
		return fmt.Errorf("%s: matches no alternative: %s", at, strings.Join(errs, "; "))
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || e == val
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", at, val, enum)
		}
	}
	switch s["type"] {
	case "null":
		if val != nil {
			return fmt.Errorf("%s: want null, got %v", at, val)
		}
	case "string":
		if _, ok := val.(string); !ok {
			return fmt.Errorf("%s: want a string, got %T %v", at, val, val)
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T %v", at, val, val)
		}
	case "integer", "number":
		f, ok := val.(float64)
		if !ok {
			return fmt.Errorf("%s: want a number, got %T %v", at, val, val)
		}
		if s["type"] == "integer" && f != float64(int64(f)) {
			return fmt.Errorf("%s: want an integer, got %v", at, f)
		}
	case "array":
		a, ok := val.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, val)
		}
		for i, e := range a {
			if err := v.validate(s["items"], e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "object":
		o, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, val)
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asSlice(s["required"]) {
			if _, ok := o[r.(string)]; !ok {
				return fmt.Errorf("%s: required %q missing", at, r)
			}
		}
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := props[k]
			if !ok {
				switch ap := s["additionalProperties"].(type) {
				case bool:
					if !ap {
						return fmt.Errorf("%s: property %q not in the document", at, k)
					}
					continue
				case map[string]any:
					ps = ap
				default:
					continue
				}
			}
			if err := v.validate(ps, o[k], at+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

func asSlice(v any) []any {
	a, _ := v.([]any)
	return a
}
