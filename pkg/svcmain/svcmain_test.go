package svcmain

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

type fakeApp struct {
	runErr error
	closed bool
}

func (f *fakeApp) Run(ctx context.Context) error { return f.runErr }
func (f *fakeApp) Close()                        { f.closed = true }

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		tr       envconf.Tracing
		startErr error
		runErr   error
		want     int
		closed   bool
		logged   string
	}{
		{"served until the context ended", envconf.Tracing{}, nil, nil, ExitOK, true, ""},
		{"start-up failed", envconf.Tracing{}, errors.New("postgres unreachable"), nil, ExitFailed, false, "start-up failed"},
		{"serving failed", envconf.Tracing{}, nil, errors.New("listen: address in use"), ExitFailed, true, "server failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			app := &fakeApp{runErr: tc.runErr}
			got := Run(t.Context(), Logger(&buf, "svc", zerolog.InfoLevel), "svc", tc.tr,
				func(ctx context.Context, log zerolog.Logger) (App, error) {
					if tc.startErr != nil {
						return nil, tc.startErr
					}
					return app, nil
				})
			if got != tc.want || app.closed != tc.closed || !strings.Contains(buf.String(), tc.logged) {
				t.Fatalf("code %d closed %t log %q; want %d %t %q", got, app.closed, buf.String(), tc.want, tc.closed, tc.logged)
			}
		})
	}
}

func TestConfigErrorIsOneLineNamingTheService(t *testing.T) {
	var buf bytes.Buffer
	if code := ConfigError(&buf, "media-api", errors.New("MEDIA_URL_SIGNING_KEY_FILE: required")); code != ExitConfig {
		t.Fatalf("code %d", code)
	}
	if buf.String() != "media-api: configuration error: MEDIA_URL_SIGNING_KEY_FILE: required\n" {
		t.Fatalf("%q", buf.String())
	}
}

func TestLoggerRedactsAndNamesTheService(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(&buf, "llm-api", zerolog.DebugLevel)
	log.Debug().Str("header", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl").Msg("x")
	if !strings.Contains(buf.String(), `"service":"llm-api"`) || strings.Contains(buf.String(), "eyJzdWIiOiJ4In0") {
		t.Fatalf("%s", buf.String())
	}
}

// A loader's joined faults are one line each, every line naming the
// service and its variable.
func TestConfigErrorWritesOneLinePerFault(t *testing.T) {
	var buf bytes.Buffer
	err := errors.Join(errors.New("DATABASE_URL_FILE: required"), errors.Join(errors.New("STRICT: \"maybe\" is not true or false")),
		errors.New("KEYCLOAK_URL: required"))
	if code := ConfigError(&buf, "llm-api", err); code != ExitConfig {
		t.Fatalf("code %d", code)
	}
	want := "llm-api: configuration error: DATABASE_URL_FILE: required\n" +
		"llm-api: configuration error: STRICT: \"maybe\" is not true or false\n" +
		"llm-api: configuration error: KEYCLOAK_URL: required\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
}
