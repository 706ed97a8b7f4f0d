package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBadFlagsStopStartUpWithTheReason(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--trusted-proxies", "10.0.0.0/8,not-an-ip"}, "--trusted-proxies"},
		{[]string{"--rewrite", "=x"}, "rewrite"},
		{[]string{"--upstream", "llm-api"}, "NAME=URL"},
		{[]string{"--upstream", "llm-api=ftp://x"}, "http(s)"},
		{[]string{"--config", "/nonexistent/kong.yml"}, "read kong config"},
		{[]string{"--config", "../../kong/kong.yml", "--upstream", "no-such-service=http://127.0.0.1:1"}, "no such service"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--no-such-flag"}, "not defined"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := run(tt.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}
