// http-go: an ordinary net/http ServeMux run as a sluice function with
// package sluicehttp. Deploy it and route to it:
//
//	sluice fn deploy items build/wasm/http-go.wasm
//	sluice trigger create items-one --function items --http-path '/items/{id}'
//	sluice trigger create items-files --function items --http-path '/files/*'
//	curl -i -X POST localhost:8080/fn/items/7 -H 'Content-Type: application/json' -d '{"name":"lamp"}'
//
// POST /items/{id} takes {"name": "..."} and answers 201 Created with a
// Location, two cookies and the item as JSON; a body that is not such
// JSON gets 400 and a JSON error. GET /items/{id} answers the item (a
// reactor keeps its memory between calls, so items live as long as the
// instance: this is an example, not a store). /files/{path...} answers
// 201 with a Location to the file.
package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/guests/go/sluicehttp"
)

// item is what POST /items/{id} takes and what the routes answer.
type item struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// What the request carried, so that a client sees it arrived.
	Auth        string `json:"auth,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Multi       string `json:"multi,omitempty"`
}

var (
	mu    sync.Mutex
	items = map[string]item{}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func create(w http.ResponseWriter, r *http.Request) {
	var it item
	if err := json.NewDecoder(r.Body).Decode(&it); err != nil || it.Name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad input: want {\"name\": \"...\"}"})
		return
	}
	it.ID = r.PathValue("id")
	it.Auth = r.Header.Get("Authorization")
	it.ContentType = r.Header.Get("Content-Type")
	it.Multi = strings.Join(r.Header.Values("X-Multi"), ", ")
	mu.Lock()
	items[it.ID] = it
	mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
	http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
	w.Header().Set("Location", "/items/"+it.ID)
	writeJSON(w, http.StatusCreated, it)
}

func get(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	it, ok := items[r.PathValue("id")]
	mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no item " + r.PathValue("id")})
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func file(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "bad") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad input"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
	http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
	w.Header().Set("Location", "/files/"+r.PathValue("path"))
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(r.Header.Get("Authorization") + "|" + r.Header.Get("Content-Type") + "|" + strings.Join(r.Header.Values("X-Multi"), ", ")))
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items/{id}", create)
	mux.HandleFunc("GET /items/{id}", get)
	mux.HandleFunc("/files/{path...}", file)
	sluicehttp.Handle(mux)
}

func main() {}
