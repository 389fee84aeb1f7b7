package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/velohq/velo/internal/errdefs"
)

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		o    ExpiryOptions
		want time.Time
	}{
		{ExpiryOptions{TTL: "2h"}, now.Add(2 * time.Hour)},
		{ExpiryOptions{TTL: "90s"}, now.Add(90 * time.Second)},
		{ExpiryOptions{TTL: "1d"}, now.Add(24 * time.Hour)},
		{ExpiryOptions{TTL: "2 weeks"}, now.Add(14 * 24 * time.Hour)},
		{ExpiryOptions{ExpiresAt: "2026-01-02T05:00:00+01:00"}, time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)},
		{ExpiryOptions{ExpiresAt: "2026-01-03"}, time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)},
		{ExpiryOptions{Never: true}, time.Time{}},
	} {
		got, err := ParseExpiry(c.o, now)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseExpiry(%+v) = %s, %v; want %s", c.o, got, err, c.want)
		}
	}
	for _, o := range []ExpiryOptions{
		{TTL: "0h"}, {TTL: "-2h"}, {TTL: "2h ago"}, {TTL: "2"}, {TTL: "99999999999w"}, {TTL: "1e9d"},
		{ExpiresAt: "2026-01-01T00:00:00Z"}, {ExpiresAt: "2 hours ago"}, {ExpiresAt: "9999-01-01T00:00:00Z"}, {ExpiresAt: "soon"},
		{TTL: "2h", ExpiresAt: "2026-02-01"}, {TTL: "2h", Never: true},
	} {
		if _, err := ParseExpiry(o, now); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseExpiry(%+v) = %v; want an ErrInvalid refusal", o, err)
		}
	}
}
