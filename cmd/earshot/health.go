package main

import (
	"encoding/json"
	"net/http"
	"sync"
)

// health is what /healthz reports: each component that is not ready yet
// (or no longer) with the reason, so that an orchestrator's probe and an
// operator's curl see why a process is up but not working.
type health struct {
	mu       sync.Mutex
	problems map[string]string
}

func newHealth() *health { return &health{problems: map[string]string{}} }

// set records component's problem; an empty problem clears it.
func (h *health) set(component, problem string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if problem == "" {
		delete(h.problems, component)
		return
	}
	h.problems[component] = problem
}

// ServeHTTP answers 200 {"status":"ok"} when nothing is wrong, else 503
// with the problems by component.
func (h *health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	body := struct {
		Status   string            `json:"status"`
		Problems map[string]string `json:"problems,omitempty"`
	}{Status: "ok"}
	if len(h.problems) > 0 {
		body.Status = "unavailable"
		body.Problems = make(map[string]string, len(h.problems))
		for k, v := range h.problems {
			body.Problems[k] = v
		}
	}
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if body.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}
