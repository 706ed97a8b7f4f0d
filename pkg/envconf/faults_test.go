package envconf

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestFaultsJoinInOrder(t *testing.T) {
	var f Faults
	if f.Err() != nil {
		t.Fatal("no faults, yet an error")
	}
	if !f.Add(nil) {
		t.Fatal("a nil error counted as a fault")
	}
	a, b := errors.New("A: bad"), errors.New("B: bad")
	if f.Add(a) || f.Add(b) {
		t.Fatal("a fault reported as usable")
	}
	err := f.Err()
	if !errors.Is(err, a) || !errors.Is(err, b) || err.Error() != "A: bad\nB: bad" {
		t.Fatalf("%q", err)
	}
}

// faultVars are the variables named by err's faults, one per line.
func faultVars(err error) []string {
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		name, _, _ := strings.Cut(line, ":")
		out = append(out, name)
	}
	return out
}

// Service reports every fault of its variables at once, each naming its
// variable; an unreadable STRICT keeps the checks strict.
func TestServiceReportsEveryFaultAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"one fault", map[string]string{"LOG_LEVEL": "loud"}, []string{"LOG_LEVEL"}},
		{"every variable wrong", map[string]string{
			"STRICT": "maybe", "LISTEN_ADDR": ":9000", "INTERNAL_LISTEN_ADDR": ":9000", "TRUSTED_PROXIES": "*",
			"SECRETS_SOURCES": "consul", "SECRETS_REFRESH_INTERVAL": "10ms", "LOG_LEVEL": "loud",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "OTEL_SERVICE_NAME": "LLM API",
			"OTEL_TRACES_SAMPLER": "sometimes", "OTEL_TRACES_SAMPLER_ARG": "1.5",
		}, []string{"STRICT", "INTERNAL_LISTEN_ADDR", "TRUSTED_PROXIES", "SECRETS_SOURCES", "SECRETS_REFRESH_INTERVAL",
			"LOG_LEVEL", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER"}},
		{"endpoint and sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:p@collector/", "OTEL_TRACES_SAMPLER": "x"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := loader(tc.env, nil, false)
			_, err := l.Service()
			if err == nil {
				t.Fatal("accepted")
			}
			if got := faultVars(err); !slices.Equal(got, tc.want) {
				t.Fatalf("faults %q, want %q (%v)", got, tc.want, err)
			}
			if strings.Contains(err.Error(), "u:p") {
				t.Fatalf("credentials in %q", err)
			}
			if _, bad := tc.env["STRICT"]; bad && !l.Strict {
				t.Fatal("an unreadable STRICT turned strict mode off")
			}
		})
	}
}
