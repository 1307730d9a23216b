//go:build !wasip1

package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/guests/go/sluicehttp"
)

// The mux runs natively through sluicehttp.Do, as it runs in a guest.
func TestItems(t *testing.T) {
	req := func(method, path, body string) *http.Request {
		r, err := http.NewRequest(method, "http://example.com"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	resp, err := sluicehttp.Do(req("POST", "/items/7", `{"name":"lamp"}`), "/items/{id}")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/items/7" || len(resp.Header["Set-Cookie"]) != 2 {
		t.Fatalf("POST: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if !strings.Contains(string(body), `"name":"lamp"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST body %s, header %v", body, resp.Header)
	}
	resp, err = sluicehttp.Do(req("GET", "/items/7", ""), "/items/{id}")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"7"`) {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	resp, err = sluicehttp.Do(req("POST", "/items/8", `not json`), "/items/{id}")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("bad POST: %d %s", resp.StatusCode, body)
	}
}
