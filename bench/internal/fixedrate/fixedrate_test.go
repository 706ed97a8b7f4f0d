package fixedrate

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/bench/internal/wrkout"
)

func TestRunSendsOnScheduleAndPrintsWhatWrkoutReads(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write([]byte(`{"error":{"code":"teapot"}}`))
			return
		}
		if r.Header.Get("X-Test") != "yes" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	cfg := Config{URL: srv.URL, Header: http.Header{"X-Test": {"yes"}}, Rate: 200, Duration: 500 * time.Millisecond}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 100 || res.Skipped != 0 || res.Errors != 0 || res.Non2xx != 10 || res.Refusals["418 teapot"] != 10 {
		t.Fatalf("%+v", res)
	}
	if res.Elapsed < 490*time.Millisecond || res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
		t.Fatalf("%+v", res)
	}
	var b bytes.Buffer
	res.WriteWrkFormat(&b, cfg)
	got, err := wrkout.Parse(&b)
	if err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if d := got.P99 - res.P99; got.Requests != 100 || got.Non2xx != 10 || d < -20 || d > 20 {
		t.Fatalf("parsed %+v from\n%s", got, b.String())
	}
}

func TestRunRefusesABadConfig(t *testing.T) {
	for _, c := range []Config{{}, {URL: "http://x", Rate: 0, Duration: time.Second}, {URL: "http://x", Rate: 1}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
