package codec

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	testToken  = "codec-server-token"
	testOrigin = "http://127.0.0.1:8233"
)

func newTestServer(t *testing.T, o ServerOptions, keys ...Key) (*httptest.Server, *Codec) {
	t.Helper()
	c := mustNew(t, keys...)
	srv := httptest.NewServer(Handler(c, o))
	t.Cleanup(srv.Close)
	return srv, c
}

func remote(srv *httptest.Server, token string) converter.PayloadCodec {
	return converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL,
		ModifyRequest: func(r *http.Request) error {
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			r.Header.Set("X-Namespace", "default")
			return nil
		},
	})
}

func payloadsBody(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func do(t *testing.T, method, url string, body []byte, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestServerRoundTrip(t *testing.T) {
	for _, token := range []string{"", testToken} {
		name := "no token"
		if token != "" {
			name = "token"
		}
		t.Run(name, func(t *testing.T) {
			a, _, _ := testKey(t, "A")
			b, raw, b64 := testKey(t, "B")
			srv, c := newTestServer(t, ServerOptions{Token: token, Origins: []string{testOrigin}}, a, b)
			rc := remote(srv, token)

			in := []*commonpb.Payload{
				toPayload(t, certBundle{Name: "srv.example.com", KeyPEM: pemKey(t)}),
				toPayload(t, "second"),
			}
			enc, err := rc.Encode(in)
			if err != nil {
				t.Fatalf("remote Encode: %v", err)
			}
			if len(enc) != len(in) {
				t.Fatalf("got %d payloads, want %d", len(enc), len(in))
			}
			for _, p := range enc {
				if got := string(p.Metadata[converter.MetadataEncoding]); got != MetadataEncoding {
					t.Fatalf("encoding = %q", got)
				}
				if got := string(p.Metadata[MetadataKeyID]); got != "B" {
					t.Fatalf("key id = %q, want B", got)
				}
				assertNoLeak(t, "Data", p.Data, []byte("PRIVATE KEY"), []byte("srv.example.com"))
			}

			// The server's output decodes locally, and remotely.
			local, err := c.Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := rc.Decode(enc)
			if err != nil {
				t.Fatalf("remote Decode: %v", err)
			}
			for i := range in {
				if !proto.Equal(local[i], in[i]) || !proto.Equal(dec[i], in[i]) {
					t.Fatalf("payload %d: local %v remote %v, want %v", i, local[i], dec[i], in[i])
				}
			}

			// A payload encoded locally under the older key decodes remotely.
			old, err := mustNew(t, a).Encode(in[:1])
			if err != nil {
				t.Fatal(err)
			}
			dec, err = rc.Decode(old)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(dec[0], in[0]) {
				t.Fatal("payload under the older key does not decode remotely")
			}

			// A tampered payload: an error, no key bytes in it.
			bad := proto.Clone(enc[0]).(*commonpb.Payload)
			bad.Data[len(bad.Data)-1] ^= 1
			_, err = rc.Decode([]*commonpb.Payload{bad})
			if err == nil {
				t.Fatal("tampered payload decoded remotely")
			}
			assertNoLeak(t, "error", []byte(err.Error()), raw, []byte(b64))

			// Raw HTTP, with the JSON body the Web UI posts.
			h := map[string]string{"Content-Type": "application/json", "X-Namespace": "default"}
			if token != "" {
				h["Authorization"] = "Bearer " + token
			}
			resp := do(t, http.MethodPost, srv.URL+"/decode", payloadsBody(t, enc...), h)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /decode: %d %s", resp.StatusCode, body)
			}
			var got commonpb.Payloads
			if err := protojson.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Payloads) != len(in) || !proto.Equal(got.Payloads[0], in[0]) {
				t.Fatalf("POST /decode returned %v", got.Payloads)
			}

			// Not POST: not found.
			resp = do(t, http.MethodGet, srv.URL+"/decode", nil, h)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /decode: %d, want 404", resp.StatusCode)
			}
			// Bad body: 400.
			resp = do(t, http.MethodPost, srv.URL+"/encode", []byte("{not json"), h)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("POST /encode with a bad body: %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestServerPathPrefix(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	mux := http.NewServeMux()
	mux.Handle("/codec/", http.StripPrefix("/codec", Handler(c, ServerOptions{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rc := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: srv.URL + "/codec"})
	in := []*commonpb.Payload{toPayload(t, "prefixed")}
	enc, err := rc.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := rc.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(dec[0], in[0]) {
		t.Fatal("round trip mismatch")
	}
}

func TestServerToken(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	srv, c := newTestServer(t, ServerOptions{Token: testToken, Origins: []string{testOrigin}}, k)
	in := []*commonpb.Payload{toPayload(t, certBundle{Name: "auth", KeyPEM: "-----BEGIN PRIVATE KEY-----"})}
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}

	// Through the SDK client.
	for _, tok := range []string{"", "wrong", testToken + "x", testToken[:len(testToken)-1]} {
		rc := remote(srv, tok)
		if _, err := rc.Encode(in); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("Encode with token %q: %v, want Unauthorized", tok, err)
		}
		out, err := rc.Decode(enc)
		if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("Decode with token %q: %v, want Unauthorized", tok, err)
		}
		if err != nil && len(out) == 1 && !proto.Equal(out[0], enc[0]) {
			t.Errorf("Decode with token %q returned decrypted payloads", tok)
		}
	}

	// Raw requests: every header that is not "Bearer <token>" is refused.
	body := payloadsBody(t, enc...)
	for _, auth := range []string{
		"",
		"Bearer",
		"Bearer ",
		"Bearer wrong",
		"Bearer  " + testToken,
		"Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+testToken)),
		testToken,
		"Token " + testToken,
	} {
		for _, path := range []string{"/encode", "/decode"} {
			h := map[string]string{"Content-Type": "application/json", "Origin": testOrigin}
			if auth != "" {
				h["Authorization"] = auth
			}
			resp := do(t, http.MethodPost, srv.URL+path, body, h)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("POST %s with Authorization %q: %d, want 401", path, auth, resp.StatusCode)
			}
			if bytes.Contains(b, []byte("auth")) && bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Errorf("401 body carries the payload: %s", b)
			}
			// The browser may read the refusal.
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != testOrigin {
				t.Errorf("401 Access-Control-Allow-Origin = %q, want %q", got, testOrigin)
			}
		}
	}

	// The right token, also with the scheme in another case.
	for _, auth := range []string{"Bearer " + testToken, "bearer " + testToken} {
		resp := do(t, http.MethodPost, srv.URL+"/decode", body, map[string]string{"Authorization": auth})
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("Authorization %q: %d %s, want 200", auth, resp.StatusCode, b)
		}
	}
}

func TestServerCORS(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	srv, _ := newTestServer(t, ServerOptions{Token: testToken, Origins: []string{testOrigin, "https://ui.example.com/"}}, k)

	preflight := func(origin string) *http.Response {
		return do(t, http.MethodOptions, srv.URL+"/decode", nil, map[string]string{
			"Origin":                         origin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type,x-namespace,authorization",
		})
	}

	for _, origin := range []string{testOrigin, "https://ui.example.com"} {
		t.Run("allowed "+origin, func(t *testing.T) {
			resp := preflight(origin)
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("preflight: %d, want 204", resp.StatusCode)
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, origin)
			}
			allowedHeaders := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
			for _, want := range []string{"x-namespace", "content-type", "authorization"} {
				if !strings.Contains(allowedHeaders, want) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowedHeaders, want)
				}
			}
			if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
				t.Errorf("Access-Control-Allow-Methods = %q", h.Get("Access-Control-Allow-Methods"))
			}
			if h.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("Access-Control-Allow-Credentials = %q", h.Get("Access-Control-Allow-Credentials"))
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want Origin", h.Values("Vary"))
			}
		})
	}

	for _, origin := range []string{"http://evil.example.com", "http://127.0.0.1:8234", "null", testOrigin + ".evil.com"} {
		t.Run("disallowed "+origin, func(t *testing.T) {
			resp := preflight(origin)
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("preflight: Access-Control-Allow-Origin = %q, want none", got)
			}
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("preflight: Access-Control-Allow-Credentials = %q, want none", got)
			}
			// Nor on the request itself.
			resp = do(t, http.MethodPost, srv.URL+"/encode", payloadsBody(t, toPayload(t, "x")), map[string]string{
				"Origin": origin, "Authorization": "Bearer " + testToken, "Content-Type": "application/json",
			})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("POST: Access-Control-Allow-Origin = %q, want none", got)
			}
		})
	}

	t.Run("no origins configured", func(t *testing.T) {
		srv, _ := newTestServer(t, ServerOptions{}, k)
		resp := do(t, http.MethodOptions, srv.URL+"/decode", nil, map[string]string{"Origin": testOrigin, "Access-Control-Request-Method": "POST"})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
		}
	})

	t.Run("allowed POST", func(t *testing.T) {
		resp := do(t, http.MethodPost, srv.URL+"/encode", payloadsBody(t, toPayload(t, "x")), map[string]string{
			"Origin": testOrigin, "Authorization": "Bearer " + testToken, "Content-Type": "application/json", "X-Namespace": "default",
		})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != testOrigin {
			t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, testOrigin)
		}
	})
}
