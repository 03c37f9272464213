package motoserver

import (
	"context"
	"testing"
)

func TestStartServesHTTPS(t *testing.T) {
	s := Start(t)
	resp, err := s.HTTPClient.Get(s.URL + "/moto-api/")
	if err != nil {
		t.Fatalf("GET %s: %v", s.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /moto-api/: status %d, want 200", resp.StatusCode)
	}
	if err := s.Reset(context.Background()); err != nil {
		t.Fatalf("reset: %v", err)
	}
}
