package envconf

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestServiceDefaults(t *testing.T) {
	l := loader(nil, nil, false)
	s, err := l.Service()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Strict || !l.Strict || s.ListenAddr != ":8080" || s.InternalListenAddr != ":8081" || s.TrustedProxies != nil || s.LogLevel != zerolog.InfoLevel {
		t.Fatalf("defaults: %+v (loader strict %v)", s, l.Strict)
	}
}

func TestServiceRefusals(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"STRICT": "maybe"}, "STRICT: "},
		{map[string]string{"LISTEN_ADDR": ":9000", "INTERNAL_LISTEN_ADDR": ":9000"}, "INTERNAL_LISTEN_ADDR: "},
		{map[string]string{"TRUSTED_PROXIES": "10.0.0.1,*"}, "TRUSTED_PROXIES: "},
		{map[string]string{"TRUSTED_PROXIES": "0.0.0.0/0"}, "TRUSTED_PROXIES: "},
		{map[string]string{"TRUSTED_PROXIES": "::/0"}, "TRUSTED_PROXIES: "},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL: "},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: "},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:pw@collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: "},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/?token=x"}, "OTEL_EXPORTER_OTLP_ENDPOINT: "},
		{map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER: "},
		{map[string]string{"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG: "},
		{map[string]string{"OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG: "},
		{map[string]string{"OTEL_SERVICE_NAME": "LLM API"}, "OTEL_SERVICE_NAME: "},
	}
	for _, tc := range tests {
		_, err := loader(tc.env, nil, true).Service()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want prefix %q", tc.env, err, tc.want)
		}
	}
}

func TestTracingIsOffByDefaultAndReadsTheStandardVariables(t *testing.T) {
	s, err := loader(nil, nil, true).Service()
	if err != nil {
		t.Fatal(err)
	}
	if s.Tracing.Enabled() || s.Tracing.Sampler != "parentbased_always_on" || s.Tracing.SamplerArg != 1 {
		t.Fatalf("default tracing: %+v", s.Tracing)
	}
	s, err = loader(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
		"OTEL_SERVICE_NAME": "llm-api-eu", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG": "0.25"}, nil, true).Service()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Tracing.Enabled() || s.Tracing.Endpoint != "http://otel-collector:4318" || s.Tracing.ServiceName != "llm-api-eu" ||
		s.Tracing.Sampler != "parentbased_traceidratio" || s.Tracing.SamplerArg != 0.25 {
		t.Fatalf("tracing: %+v", s.Tracing)
	}
}

func TestStrictFalseReachesTheLoader(t *testing.T) {
	l := loader(map[string]string{"STRICT": "false", "TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2", "LOG_LEVEL": "debug"}, nil, true)
	s, err := l.Service()
	if err != nil {
		t.Fatal(err)
	}
	if s.Strict || l.Strict || len(s.TrustedProxies) != 2 || s.LogLevel != zerolog.DebugLevel {
		t.Fatalf("got %+v (loader strict %v)", s, l.Strict)
	}
}

func TestHTTPURLAndServiceName(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://kc.example/realms/jan": true, "http://127.0.0.1:8080": true,
		"ftp://x": false, "https://": false, "/relative": false, "https://u:p@kc.example": false,
		"https://kc.example/?q=1": false, "https://kc.example/#f": false, "::": false,
	} {
		if err := HTTPURL(u); (err == nil) != ok {
			t.Errorf("HTTPURL(%q) = %v", u, err)
		}
	}
	for n, ok := range map[string]bool{
		"llm-api": true, "a": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "LLM": false, "llm_api": false, "llm api": false,
	} {
		if ServiceName(n) != ok {
			t.Errorf("ServiceName(%q) != %v", n, ok)
		}
	}
}
